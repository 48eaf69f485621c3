"""MeshTransport and MeshServer over real loopback sockets, without a sidecar in between."""

from __future__ import annotations

import asyncio
import json
import random
import time
from collections.abc import AsyncIterator, Callable
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from aiohttp import web

from microstatedb.errors import CircuitOpen, ConfigurationError, DeadlineExceeded, Unavailable
from microstatedb.protocols import AntiEntropyConfig
from microstatedb.replica import Store
from microstatedb.resilience import CircuitBreaker, Deadline
from microstatedb.runtime import Node
from microstatedb.transport import (
    ECHO_PATH,
    HOPS_PATH,
    LIVE_PATH,
    MESSAGE_PATH,
    READY_PATH,
    ROUND_PATH,
    STATUS_PATH,
    WRITE_PATH,
    MeshServer,
    MeshTransport,
    PeersFile,
    ReadinessPolicy,
    Request,
    RetryOwner,
    current_mesh_context,
    serve,
)

KEY = bytes(range(32))


class Upstream:
    """A small real HTTP server that answers from a script and keeps what it received."""

    def __init__(self) -> None:
        self.seen: list[dict[str, str]] = []
        self.script: list[tuple[int, dict[str, str]]] = []
        self.runner: web.AppRunner | None = None
        self.port = 0

    async def start(self) -> None:
        async def answer(request: web.Request) -> web.Response:
            self.seen.append({k.lower(): v for k, v in request.headers.items()})
            status, headers = self.script.pop(0) if self.script else (204, {})
            return web.Response(status=status, headers=headers)

        app = web.Application()
        app.router.add_post("/{tail:.*}", answer)
        self.runner, self.port = await serve(app, "127.0.0.1", 0)

    def url(self, path: str = MESSAGE_PATH) -> str:
        return f"http://127.0.0.1:{self.port}/peer{path}"


@pytest.fixture
async def upstream() -> AsyncIterator[Upstream]:
    up = Upstream()
    await up.start()
    yield up
    assert up.runner is not None
    await up.runner.cleanup()


async def no_sleep(_: float) -> None:
    return None


def lenient(peer: str) -> CircuitBreaker:
    return CircuitBreaker(peer, minimum_calls=100)  # these tests look at retries, not trips


def transport(**kwargs: Any) -> MeshTransport:
    kwargs.setdefault("breaker", lenient)
    kwargs.setdefault("rng", random.Random(5))
    kwargs.setdefault("sleep", no_sleep)
    return MeshTransport(**kwargs)


async def test_every_message_carries_trace_deadline_and_retry_owner(upstream: Upstream) -> None:
    t = transport(owner=RetryOwner.LIBRARY, timeout=1.5)
    try:
        resp = await t.handle(Request(upstream.url(), b"x"))
        assert resp.status == 204
        h = upstream.seen[0]
        assert h["traceparent"].startswith("00-")
        assert h["x-request-id"]
        assert 0 < int(h["x-msdb-deadline-ms"]) <= 1500
        assert h["x-envoy-max-retries"] == "0"  # the library owns retries: the sidecar must not
        assert t.stats().succeeded == 1
    finally:
        await t.aclose()
    sidecar_owned = transport()
    try:
        await sidecar_owned.handle(Request(upstream.url(), b"x"))
        assert "x-envoy-max-retries" not in upstream.seen[1]
    finally:
        await sidecar_owned.aclose()


async def test_library_owner_retries_transport_failures_of_idempotent_work(
    upstream: Upstream,
) -> None:
    t = transport(owner=RetryOwner.LIBRARY, max_attempts=3)
    try:
        upstream.script = [(503, {}), (502, {})]
        assert (await t.handle(Request(upstream.url(), b"x"))).status == 204
        assert len(upstream.seen) == 3
        assert t.stats().retries == 2
        upstream.script = [(503, {})]  # not idempotent, no key: sent once
        resp = await t.post(upstream.url(WRITE_PATH), b"w")
        assert resp.status == 503
        assert len(upstream.seen) == 4
        upstream.script = [(503, {})]  # a key makes the write safe to send again
        resp = await t.post(upstream.url(WRITE_PATH), b"w", idempotency_key="k-1")
        assert resp.status == 204
        assert upstream.seen[-1]["idempotency-key"] == upstream.seen[-2]["idempotency-key"]
        upstream.script = [(409, {"x-msdb-outcome": "business"})]  # never replayed
        assert (await t.handle(Request(upstream.url(), b"x"))).status == 409
        assert len(upstream.seen) == 7
        assert t.stats().refused == 1
    finally:
        await t.aclose()


async def test_the_sidecar_owner_means_one_attempt(upstream: Upstream) -> None:
    t = transport(owner=RetryOwner.SIDECAR)
    try:
        upstream.script = [(503, {})]
        assert (await t.handle(Request(upstream.url(), b"x"))).status == 503
        assert len(upstream.seen) == 1
        assert t.stats().failed == 1
    finally:
        await t.aclose()


@pytest.mark.parametrize(
    "answer", [(429, {}), (503, {"x-envoy-overloaded": "true"}), (503, {"Retry-After": "30"})]
)
async def test_back_off_answers_pause_the_peer(
    upstream: Upstream, answer: tuple[int, dict[str, str]]
) -> None:
    now = [100.0]
    t = transport(owner=RetryOwner.LIBRARY, default_pause=2.0, clock=lambda: now[0])
    try:
        upstream.script = [answer]
        assert (await t.handle(Request(upstream.url(), b"x"))).status == answer[0]
        with pytest.raises(Unavailable, match="back off"):
            await t.handle(Request(upstream.url(), b"x"))
        assert len(upstream.seen) == 1  # nothing sent during the pause
        now[0] += 31.0
        assert (await t.handle(Request(upstream.url(), b"x"))).status == 204
        stats = t.stats()
        assert (stats.backoffs, stats.short_circuited) == (1, 1)
    finally:
        await t.aclose()


async def test_a_garbled_retry_after_falls_back_to_the_default_pause(upstream: Upstream) -> None:
    now = [0.0]
    t = transport(default_pause=1.0, clock=lambda: now[0])
    try:
        upstream.script = [(429, {"Retry-After": "soon"})]
        await t.handle(Request(upstream.url(), b"x"))
        now[0] = 0.5
        with pytest.raises(Unavailable):
            await t.handle(Request(upstream.url(), b"x"))
        now[0] = 1.5
        assert (await t.handle(Request(upstream.url(), b"x"))).status == 204
    finally:
        await t.aclose()


async def test_unreachable_peers_open_their_breaker() -> None:
    def breaker(peer: str) -> CircuitBreaker:
        return CircuitBreaker(peer, sliding_window_size=2, minimum_calls=2, wait_in_open=60)

    t = transport(breaker=breaker, timeout=0.5)
    url = "http://127.0.0.1:1/b/msdb/v1/message"  # nothing listens on port 1
    try:
        for _ in range(2):
            with pytest.raises(Unavailable, match="unreachable"):
                await t.handle(Request(url, b"x"))
        with pytest.raises(CircuitOpen):
            await t.handle(Request(url, b"x"))
        assert t.breaker_states() == {"http://127.0.0.1:1/b": "OPEN"}
        assert t.stats().failed == 2
    finally:
        await t.aclose()


async def test_a_spent_deadline_sends_nothing(upstream: Upstream) -> None:
    t = transport()
    try:
        with Deadline.after(0.0).scope(), pytest.raises(DeadlineExceeded):
            await t.handle(Request(upstream.url(), b"x"))
        assert upstream.seen == []
        with Deadline.after(0.3).scope():
            await t.handle(Request(upstream.url(), b"x"))
        assert int(upstream.seen[0]["x-msdb-deadline-ms"]) <= 300
    finally:
        await t.aclose()


@pytest.mark.parametrize("kwargs", [{"timeout": 0}, {"max_attempts": 0}, {"owner": "sidecar"}])
def test_bad_transport_settings(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        MeshTransport(**kwargs)


# ---------------------------------------------------------------------- servers with nodes


async def http(
    method: str, url: str, body: Any = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], Any]:
    async with (
        aiohttp.ClientSession() as s,
        s.request(method, url, data=body, headers=headers or {}) as r,
    ):
        raw = await r.read()
        try:
            data: Any = json.loads(raw)
        except ValueError:
            data = raw
        return r.status, {k.lower(): v for k, v in r.headers.items()}, data


async def wait_for(cond: Callable[[], bool], timeout: float = 10.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < end, "condition not met in time"
        await asyncio.sleep(0.02)


@pytest.fixture
async def pair(tmp_path: Path) -> AsyncIterator[tuple[MeshServer, MeshServer]]:
    # Two nodes that talk directly; the servers find each other's port after both start.
    stores = [Store(n, key=KEY) for n in ("a", "b")]
    peers_file = tmp_path / "peers.json"
    nodes = [
        Node(
            n,
            s,
            {o: "http://127.0.0.1:1"},
            key=KEY,
            transport=MeshTransport(rng=random.Random(i), timeout=1.0),
            # short request timeout: a's first requests go to a dead URL until discovery
            config=AntiEntropyConfig(interval=0.05, request_timeout=0.3),
            rng=random.Random(i),
        )
        for i, (n, o, s) in enumerate([("a", "b", stores[0]), ("b", "a", stores[1])])
    ]
    servers = [
        MeshServer(
            nodes[0],
            dev_api=True,
            discovery=PeersFile(peers_file),
            refresh_interval=0.05,
            rng=random.Random(3),
        ),
        MeshServer(nodes[1], dev_api=True, policy=ReadinessPolicy(linearizable=True)),
    ]
    try:
        for server in servers:
            await server.start()
        peers_file.write_text(json.dumps({"b": f"http://127.0.0.1:{servers[1].port}"}))
        nodes[1].peers["a"] = f"http://127.0.0.1:{servers[0].port}"
        yield servers[0], servers[1]
    finally:
        for server in servers:
            await server.close()
        for s in stores:
            s.close()


def base(server: MeshServer) -> str:
    return f"http://127.0.0.1:{server.port}"


async def test_two_mesh_nodes_replicate_and_keep_the_trace(
    pair: tuple[MeshServer, MeshServer],
) -> None:
    a, b = pair
    assert (
        await http(
            "POST", base(a) + WRITE_PATH, json.dumps({"type": "counter", "key": "n", "n": 2})
        )
    )[0] == 200
    await wait_for(lambda: a.node.store.digest() == b.node.store.digest())
    assert b.node.store.value()["n"] == 2  # the peers file pointed a at b

    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "x-b3-traceid": trace,
        "x-b3-spanid": "00f067aa0ba902b7",
        "x-b3-sampled": "1",
        "x-request-id": "r-77",
    }

    def traced(server: MeshServer) -> list[Any]:
        return [h for h in server.hops if h.trace_id == trace and h.path == MESSAGE_PATH]

    # a round opens only when no other is in flight to that peer: ask until one goes
    for _ in range(50):
        code, answered, body = await http("POST", base(a) + ROUND_PATH, b"", headers)
        assert (code, body["trace_id"]) == (202, trace)
        assert answered["x-request-id"] == "r-77"
        await asyncio.sleep(0.05)
        if traced(b) and traced(a):
            break
    assert traced(b)  # a's message to b carried the request's trace
    assert traced(a)  # and so did b's answer
    assert traced(b)[0].request_id == "r-77"
    code, _, hops = await http("GET", base(b) + HOPS_PATH)
    assert any(h["trace_id"] == trace for h in hops)
    code, _, echoed = await http(
        "GET", base(a) + ECHO_PATH, None, {"b3": f"{trace}-00f067aa0ba902b7"}
    )
    assert echoed["b3"] == f"{trace}-00f067aa0ba902b7"

    status = (await http("GET", base(a) + STATUS_PATH))[2]
    assert status["mesh"]["transport"]["succeeded"] > 0
    assert set(status["mesh"]["breakers"].values()) == {"CLOSED"}


async def test_health_endpoints(pair: tuple[MeshServer, MeshServer]) -> None:
    a, b = pair
    assert (await http("GET", base(a) + LIVE_PATH))[0] == 200
    await wait_for(lambda: b.inputs().reachable == 2)
    code, _, body = await http("GET", base(b) + READY_PATH)
    assert (code, body["status"]) == (200, "ok")
    a.loop_lag = 10.0  # as if the loop had stalled
    assert (await http("GET", base(a) + LIVE_PATH))[0] == 503
    b.last_heard -= 1000  # silent for too long: not caught up
    code, _, body = await http("GET", base(b) + READY_PATH)
    assert (code, body["checks"]["caught_up"]) == (503, False)
    b.node.store.close()
    assert not b.inputs().store_open


async def test_deadlines_idempotency_and_business_answers(
    pair: tuple[MeshServer, MeshServer],
) -> None:
    a, _ = pair
    url = base(a) + WRITE_PATH
    op = json.dumps({"type": "counter", "key": "k", "n": 1})
    code, answered, _ = await http("POST", url, op, {"grpc-timeout": "0m"})
    assert (code, answered["x-msdb-outcome"]) == (504, "deadline")
    assert (await http("POST", url, op, {"x-msdb-deadline-ms": "soon"}))[0] == 400
    assert (await http("POST", url, op, {"Idempotency-Key": "x" * 300}))[0] == 400
    first = await http("POST", url, op, {"Idempotency-Key": "w1", "x-msdb-deadline-ms": "900"})
    again = await http("POST", url, op, {"Idempotency-Key": "w1"})
    assert first[0] == again[0] == 200
    assert first[2] == again[2]
    assert again[1]["x-msdb-replayed"] == "true"
    assert a.node.store.value()["k"] == 1
    other = await http(
        "POST", url, json.dumps({"type": "counter", "key": "k", "n": 2}), {"Idempotency-Key": "w1"}
    )
    assert (other[0], other[1]["x-msdb-outcome"]) == (409, "business")
    wrong = await http("POST", url, json.dumps({"type": "set", "key": "k", "add": 1}))
    assert (wrong[0], wrong[1]["x-msdb-outcome"]) == (409, "business")
    assert (await http("POST", url, "not json"))[0] == 400
    assert (await http("POST", url, "[1]"))[0] == 400
    assert a.status()["mesh"]["idempotency"]["replayed"] == 1


async def test_the_context_is_current_only_inside_a_request() -> None:
    assert current_mesh_context() is None


async def test_with_tracing_on_the_hops_are_spans_of_one_trace(
    pair: tuple[MeshServer, MeshServer],
) -> None:
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import SimpleSpanProcessor
    from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

    from microstatedb import observability as obs

    a, _ = pair
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    obs.enable_tracing(provider)
    trace = "0af7651916cd43dd8448eb211c80319c"
    headers = {"b3": f"{trace}-b7ad6b7169203331-1", "tracestate": "x=1"}
    try:
        for _ in range(50):
            await http("POST", base(a) + ROUND_PATH, b"", headers)
            await asyncio.sleep(0.05)
            hops = [s for s in exporter.get_finished_spans() if s.name == "msdb.mesh.hop"]
            if any(
                s.attributes
                and s.attributes["url.path"] == MESSAGE_PATH
                and s.context.trace_id == int(trace, 16)
                for s in hops
            ):
                break
    finally:
        obs.disable_tracing()
    mine = [s for s in exporter.get_finished_spans() if s.context.trace_id == int(trace, 16)]
    first = next(s for s in mine if s.attributes and s.attributes["url.path"] == ROUND_PATH)
    assert first.parent is not None
    assert first.parent.span_id == int("b7ad6b7169203331", 16)  # a B3 caller, in OTel terms
    ids = {s.context.span_id for s in mine}
    message = next(s for s in mine if s.attributes and s.attributes["url.path"] == MESSAGE_PATH)
    assert message.parent is not None
    assert message.parent.span_id in ids  # b's span hangs under a span a exported
