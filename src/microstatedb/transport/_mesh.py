"""Nodes behind a service-mesh sidecar: the client transport and the server side of a hop.

:class:`MeshTransport` is a ``Transport`` that sends what ``HTTPTransport`` sends, plus the
headers a mesh lives on: the trace context (W3C and B3) and ``x-request-id`` of the work that
caused the message, the remaining deadline, and the retry-owner rule. It keeps one circuit
breaker per peer and honours ``Retry-After``, ``429`` and ``x-envoy-overloaded`` by not sending
to that peer until the pause is over. The server side (:func:`mesh_middleware`) reads those
headers on every request, refuses work whose deadline has passed, and makes the request's
context current, so every message the handler causes (the node sends them from tasks, which
copy the context) carries the same trace, request id and what is left of the budget.
"""

from __future__ import annotations

import asyncio
import contextvars
import random
import time
from collections import deque
from collections.abc import Awaitable, Callable, Iterator, Mapping
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass, replace
from typing import Any
from urllib.parse import urlsplit

import aiohttp
from aiohttp import web

from microstatedb import observability as obs
from microstatedb.errors import (
    ConfigurationError,
    DeadlineExceeded,
    DecodeError,
    Unavailable,
)
from microstatedb.resilience import CircuitBreaker, Deadline, current_deadline
from microstatedb.transport._budget import (
    DEADLINE_HEADER,
    deadline_from_headers,
    deadline_headers,
)
from microstatedb.transport._policy import (
    ENVOY_MAX_RETRIES,
    IDEMPOTENCY_HEADER,
    OUTCOME_HEADER,
    REPLAYED_HEADER,
    IdempotencyCache,
    Outcome,
    RetryOwner,
    classify,
    retry_after,
    should_retry,
)
from microstatedb.transport._trace import REQUEST_ID, TraceContext, extract_trace
from microstatedb.transport._types import Request, Response


@dataclass(frozen=True, slots=True)
class MeshContext:
    """The trace and deadline of the request being handled (or of a round this node began)."""

    trace: TraceContext
    """The trace this work belongs to."""
    deadline: Deadline | None
    """The budget the caller gave, if any."""


_context: contextvars.ContextVar[MeshContext | None] = contextvars.ContextVar(
    "microstatedb_mesh_context", default=None
)


def current_mesh_context() -> MeshContext | None:
    """The mesh context of the work in progress, if a request started it."""
    return _context.get()


@dataclass(frozen=True, slots=True)
class MeshStats:
    """Counts of one :class:`MeshTransport`."""

    sent: int
    """Requests put on the wire (retries included)."""
    succeeded: int
    """Requests answered with a success."""
    failed: int
    """Requests that failed in the transport (unreachable, reset, gateway errors)."""
    refused: int
    """Answers that refused the request on its merits or its form (business, 4xx)."""
    backoffs: int
    """Answers that asked to back off (429, overloaded, Retry-After)."""
    retries: int
    """Attempts the library made again (only when it owns retries)."""
    short_circuited: int
    """Requests not sent: breaker open, backing off, or deadline already spent."""


class MeshTransport:
    """POSTs to peers through the egress sidecar with trace, deadline and retry headers.

    ``owner`` decides who retries (see :class:`RetryOwner`); ``timeout`` is the budget of a
    request that no caller gave a deadline; ``breaker`` makes the circuit breaker of one peer
    (default: opens at 50% failures over the last 10 calls, probes after 1 s); ``rng`` makes
    span ids, request ids and idempotency keys.
    """

    def __init__(
        self,
        *,
        timeout: float = 2.0,
        owner: RetryOwner = RetryOwner.SIDECAR,
        max_attempts: int = 3,
        backoff: float = 0.05,
        default_pause: float = 1.0,
        breaker: Callable[[str], CircuitBreaker] | None = None,
        sidecar: bool = True,
        rng: random.Random | None = None,
        clock: Callable[[], float] = time.monotonic,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not timeout > 0:
            raise ConfigurationError(f"timeout must be > 0 seconds, got {timeout!r}")
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        if not isinstance(owner, RetryOwner):
            raise ConfigurationError(f"owner must be a RetryOwner, got {owner!r}")
        self.timeout = float(timeout)
        self.owner = owner
        self.max_attempts = max_attempts
        self.backoff = backoff
        self.default_pause = default_pause
        self.sidecar = sidecar
        self._make_breaker = breaker if breaker is not None else _default_breaker
        self._breakers: dict[str, CircuitBreaker] = {}
        self._paused: dict[str, float] = {}
        self._rng = rng if rng is not None else random.Random()
        self._clock = clock
        self._sleep = sleep
        self._session: aiohttp.ClientSession | None = None
        self._sent = self._ok = self._failed = self._refused = 0
        self._backoffs = self._retries = self._short = 0

    @staticmethod
    def peer_of(url: str) -> str:
        """The key of the peer that ``url`` reaches (scheme, host, port and first path part)."""
        parts = urlsplit(url)
        first = parts.path.strip("/").split("/")[0]
        return f"{parts.scheme}://{parts.netloc}/{first}"

    def breaker(self, url: str) -> CircuitBreaker:
        """The circuit breaker of the peer ``url`` reaches."""
        peer = self.peer_of(url)
        found = self._breakers.get(peer)
        if found is None:
            found = self._breakers[peer] = self._make_breaker(peer)
        return found

    def headers(self, *, idempotency_key: str | None = None) -> dict[str, str]:
        """The mesh headers for a request made now, in the current context."""
        ctx = _context.get()
        # this hop's span is the parent of the next (no client span of its own), so with
        # tracing on, the next hop's parent is a span the tracer exported
        trace = ctx.trace if ctx is not None else TraceContext.new(self._rng)
        out = trace.to_headers()
        out.update(deadline_headers(self._deadline(ctx), sidecar=self.sidecar))
        if self.owner is RetryOwner.LIBRARY and self.sidecar:
            out[ENVOY_MAX_RETRIES] = "0"
        if idempotency_key is not None:
            out[IDEMPOTENCY_HEADER] = idempotency_key
        return out

    def _deadline(self, ctx: MeshContext | None) -> Deadline:
        found = Deadline.after(self.timeout)
        for other in (ctx.deadline if ctx is not None else None, current_deadline()):
            if other is not None and other.at < found.at:
                found = Deadline(other.at)
        return found

    async def handle(self, request: Request) -> Response:
        """Deliver one node message (idempotent: a node applies a message at most once)."""
        return await self.post(request.url, request.body, idempotent=True)

    async def post(
        self,
        url: str,
        body: bytes,
        *,
        idempotent: bool = False,
        idempotency_key: str | None = None,
        content_type: str = "application/octet-stream",
    ) -> Response:
        """POST ``body`` to ``url``; raises ``Unavailable`` (or a subclass) when it cannot.

        A request with an ``idempotency_key`` counts as idempotent: the receiver answers a
        replay from its cache instead of running it twice.
        """
        peer = self.peer_of(url)
        paused = self._paused.get(peer, 0.0) - self._clock()
        if paused > 0:
            self._short += 1
            raise Unavailable(f"{peer} asked us to back off; {paused:.3f}s left, retried later")
        again = idempotent or idempotency_key is not None
        attempt = 1
        while True:
            headers = self.headers(idempotency_key=idempotency_key)
            headers["Content-Type"] = content_type
            outcome, response, answered = await self._once(url, body, headers)
            if outcome is Outcome.BACKOFF:
                # never an immediate retry: this peer gets nothing until the pause is over
                self._pause(peer, answered)
            if not should_retry(
                outcome,
                attempt=attempt,
                max_attempts=self.max_attempts,
                owner=self.owner,
                idempotent=again,
            ):
                if response is None:
                    raise Unavailable(f"peer at {url} unreachable; retried next round")
                return response
            self._retries += 1
            attempt += 1
            await self._sleep(self._rng.uniform(0, self.backoff * 2**attempt))

    async def _once(
        self, url: str, body: bytes, headers: dict[str, str]
    ) -> tuple[Outcome, Response | None, dict[str, str]]:
        breaker = self.breaker(url)
        permit = breaker.try_acquire()
        if not permit:
            self._short += 1
            raise permit.error()
        budget = int(headers[DEADLINE_HEADER]) / 1000
        if budget <= 0:
            permit.release()
            self._short += 1
            raise DeadlineExceeded(f"no time left to send to {url}; the work was not started")
        if self._session is None:
            self._session = aiohttp.ClientSession()
        self._sent += 1
        try:
            async with self._session.post(
                url, data=body, headers=headers, timeout=aiohttp.ClientTimeout(total=budget)
            ) as resp:
                response = Response(resp.status, await resp.read())
                answered = dict(resp.headers)
        except (TimeoutError, aiohttp.ClientError, OSError):
            self._failed += 1
            permit.failure()
            return Outcome.TRANSPORT, None, {}
        outcome = classify(response.status, answered)
        if outcome is Outcome.OK:
            self._ok += 1
            permit.success()
        elif outcome is Outcome.BACKOFF:
            self._backoffs += 1
            permit.failure()
        elif outcome in (Outcome.TRANSPORT, Outcome.DEADLINE):
            self._failed += 1
            permit.failure()
        else:
            self._refused += 1
            permit.success()  # the peer answered on the merits: the link works
        return outcome, response, answered

    def _pause(self, peer: str, headers: Mapping[str, str]) -> None:
        try:
            hint = retry_after(headers)
        except DecodeError:
            hint = None
        self._paused[peer] = self._clock() + (hint if hint is not None else self.default_pause)

    def stats(self) -> MeshStats:
        """Counts since this transport was made."""
        return MeshStats(
            self._sent,
            self._ok,
            self._failed,
            self._refused,
            self._backoffs,
            self._retries,
            self._short,
        )

    def breaker_states(self) -> dict[str, str]:
        """The state of each peer's breaker, by peer key."""
        return {peer: b.state.name for peer, b in sorted(self._breakers.items())}

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


def _default_breaker(peer: str) -> CircuitBreaker:
    return CircuitBreaker(
        peer,
        failure_rate_threshold=50.0,
        sliding_window_size=10,
        minimum_calls=5,
        wait_in_open=1.0,
        permitted_calls_in_half_open=2,
        automatic_transition=True,
    )


@dataclass(frozen=True, slots=True)
class HopRecord:
    """What one incoming request carried, as this node read it."""

    path: str
    """The request path."""
    trace_id: str
    """The trace it belongs to."""
    parent_id: str | None
    """The caller's span."""
    span_id: str
    """This hop's span."""
    request_id: str
    """Its ``x-request-id``."""
    tracestate: str
    """Its ``tracestate``."""
    budget_ms: int | None
    """The budget it arrived with, if any."""


Handler = Callable[[web.Request], Awaitable[web.StreamResponse]]


def mesh_middleware(
    *,
    rng: random.Random | None = None,
    record: deque[HopRecord] | None = None,
    idempotency: IdempotencyCache | None = None,
    skip: frozenset[str] = frozenset(),
) -> Any:
    """An aiohttp middleware that reads trace and deadline headers on each request.

    A request whose budget is already spent is answered ``504`` with ``x-msdb-outcome:
    deadline`` and never reaches its handler. A ``POST`` with an ``Idempotency-Key`` is run
    once; a replay gets the first answer with ``x-msdb-replayed: true``. Paths in ``skip``
    (health probes) pass straight through. ``record``, when given, keeps a :class:`HopRecord`
    of each request.
    """
    source = rng if rng is not None else random.Random()

    @web.middleware
    async def middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
        if request.path in skip:
            return await handler(request)
        trace = extract_trace(request.headers, source)
        try:
            deadline = deadline_from_headers(request.headers)
        except DecodeError as exc:
            return web.json_response({"error": str(exc)}, status=400)
        if record is not None:
            budget = None if deadline is None else int(deadline.remaining() * 1000)
            record.append(
                HopRecord(
                    request.path,
                    trace.trace_id,
                    trace.parent_id,
                    trace.span_id,
                    trace.request_id,
                    trace.tracestate,
                    budget,
                )
            )
        echo = {REQUEST_ID: trace.request_id, "traceparent": trace.to_headers()["traceparent"]}
        if deadline is not None and deadline.expired:
            return web.json_response(
                {"error": "the request's deadline passed before the work started"},
                status=504,
                headers={**echo, OUTCOME_HEADER: "deadline"},
            )
        key = request.headers.get(IDEMPOTENCY_HEADER) if request.method == "POST" else None
        body = await request.read() if key is not None and idempotency is not None else b""
        if key is not None and idempotency is not None:
            try:
                found = idempotency.lookup(key, body)
            except DecodeError as exc:
                return web.json_response({"error": str(exc)}, status=400, headers=echo)
            if found is not None:
                extra = {REPLAYED_HEADER: "true"}
                if found.status in (409, 412, 422):
                    extra[OUTCOME_HEADER] = "business"
                return web.Response(
                    status=found.status,
                    body=found.body,
                    headers={**echo, **extra},
                    content_type="application/json",
                )
        with _hop_span(trace, request.path) as hop:
            token = _context.set(MeshContext(hop, deadline))
            try:
                with deadline.scope() if deadline is not None else nullcontext():
                    response = await handler(request)
            finally:
                _context.reset(token)
        answer = response.body if isinstance(response, web.Response) else None
        done = response.status < 500 and isinstance(answer, bytes)
        if key is not None and idempotency is not None and done:
            assert isinstance(answer, bytes)
            idempotency.store(key, body, response.status, answer)
        response.headers.update(echo)
        return response

    return middleware


SPAN_MESH_HOP = "msdb.mesh.hop"
"""The span of one request a node serves, a child of the caller's span."""


@contextmanager
def _hop_span(trace: TraceContext, path: str) -> Iterator[TraceContext]:
    """With tracing enabled, an OpenTelemetry span for this hop in the caller's trace (B3
    callers included); the context then takes the span's id, so the next hop's parent is a
    span the tracer really exported."""
    if not obs.tracing_enabled():
        yield trace
        return
    parent = None
    if trace.parent_id is not None:
        flags = "00" if trace.sampled is False else "01"
        carrier = {"traceparent": f"00-{trace.trace_id}-{trace.parent_id}-{flags}"}
        if trace.tracestate:
            carrier["tracestate"] = trace.tracestate
        parent = obs.extract(carrier)
    attributes = {"url.path": path, "msdb.request_id": trace.request_id}
    with obs.span(SPAN_MESH_HOP, attributes, context=parent):
        trace_id, span_id = obs.current_ids()
        yield replace(trace, trace_id=trace_id, span_id=span_id) if span_id else trace


def business(message: str, kind: str = "conflict") -> web.Response:
    """A business refusal: its status is not one a mesh retry policy replays."""
    from microstatedb.transport._policy import BUSINESS_STATUS

    return web.json_response(
        {"error": message}, status=BUSINESS_STATUS[kind], headers={OUTCOME_HEADER: "business"}
    )


def lower_headers(headers: Mapping[str, str]) -> dict[str, str]:
    """A plain dict of ``headers`` with lower-case names (the echo endpoint's view)."""
    return {k.lower(): v for k, v in headers.items()}
