"""Drivers of the transaction protocols: a deterministic simulator and an asyncio node.

Each node hosts the four parties over one ``Journal`` on its store (a 2PC coordinator and
participant, a saga orchestrator and participant) and routes messages by kind. Before it
sends what a handler returned, a driver flushes the store, so no message leaves before the
records it depends on are durable.

``TxnSim`` runs nodes in virtual time from one seeded ``random.Random`` (delays, loss,
duplication, the protocols' jitter), and crashes a node before or after it handles a chosen
message: ``before`` loses the message, ``after`` keeps the records but loses the replies,
``sent`` loses nothing but the node's memory. A crashed node keeps its store (its disk) and
rebuilds every party from it on restart.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import json
import logging
import random
import time
from collections.abc import Coroutine, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from aiohttp import web

from microstatedb import observability as _obs
from microstatedb.codec import packb, unpackb
from microstatedb.errors import (
    AuthenticationError,
    ConfigurationError,
    DeadlineExceeded,
    DecodeError,
    MicroStateError,
    Unavailable,
)
from microstatedb.protocols._barrier import Body, Journal, Write
from microstatedb.protocols._saga import Orchestrator, SagaParticipant, SagaStep
from microstatedb.protocols._twophase import (
    Check,
    Coordinator,
    Finished,
    Participant,
    TxnConfig,
    TxnMessage,
    TxnOutput,
    decode_txn_message,
    encode_txn_message,
)
from microstatedb.replica import Store
from microstatedb.runtime._node import close_serving
from microstatedb.transport import (
    MESSAGE_PATH,
    Authenticator,
    HTTPTransport,
    Request,
    Transport,
    make_app,
    serve,
)

_log = logging.getLogger("microstatedb.runtime.txn")

Handlers = Mapping[str, tuple[Body, Body]]
"""Saga handlers of a node: action name -> (action body, compensation body)."""

CRASH_WHEN = ("before", "after", "sent")
"""When a crash point fires relative to handling its message."""


class TxnHost:
    """The four transaction parties of one node over one store, rebuilt from it on demand."""

    def __init__(
        self,
        store: Store,
        *,
        check: Check | None = None,
        handlers: Handlers | None = None,
        replicas: Mapping[str, Sequence[str]] | None = None,
        config: TxnConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.store = store
        self.name = store.node_id
        rng = rng or random.Random()
        journal = Journal(store)
        self.journal = journal
        # The participant first: its recovery completes writes a crash cut short.
        self.participant = Participant(
            journal, check=check, replicas=replicas, config=config, rng=rng, now=now
        )
        self.coordinator = Coordinator(journal, config=config, rng=rng, now=now)
        self.orchestrator = Orchestrator(journal, config=config, rng=rng, now=now)
        self.saga = SagaParticipant(journal, handlers or {})

    def recovered(self) -> list[TxnOutput]:
        """What the restarted parties must send again."""
        return self.coordinator.recovered() + self.orchestrator.recovered()

    def receive(self, now: float, msg: TxnMessage) -> list[TxnOutput]:
        """Route ``msg`` to the parties that handle its kind."""
        kind = msg.kind
        if kind in ("vote", "ack"):
            return self.coordinator.receive(now, msg)
        if kind in ("prepare", "decide", "answer"):
            return self.participant.receive(now, msg)
        if kind == "query":
            return self.coordinator.receive(now, msg) + self.participant.receive(now, msg)
        if kind == "invoke":
            return self.saga.receive(now, msg)
        return self.orchestrator.receive(now, msg)

    def tick(self, now: float) -> list[TxnOutput]:
        """Run every party's timers."""
        return self.coordinator.tick(now) + self.participant.tick(now) + self.orchestrator.tick(now)

    @property
    def next_deadline(self) -> float:
        """The earliest timer of the parties."""
        return min(
            self.coordinator.next_deadline,
            self.participant.next_deadline,
            self.orchestrator.next_deadline,
        )


@dataclass(frozen=True, slots=True)
class CrashPoint:
    """Crash ``node`` when it receives its ``nth`` message of ``kind`` (1 = the first)."""

    node: str
    """The node to crash."""
    kind: str
    """The message kind that triggers it."""
    when: str = "before"
    """``before`` handling it, ``after`` it (replies lost) or once replies were ``sent``."""
    nth: int = 1
    """Which message of that kind."""
    downtime: float = 0.5
    """Virtual seconds until the node restarts."""

    def __post_init__(self) -> None:
        if self.when not in CRASH_WHEN:
            raise ConfigurationError(f"when must be one of {', '.join(CRASH_WHEN)}")
        if self.nth < 1 or self.downtime < 0:
            raise ConfigurationError("nth must be >= 1 and downtime >= 0")


@dataclass(frozen=True, slots=True)
class TxnSimStats:
    """What happened in a simulated run."""

    messages: int
    """Messages sent."""
    dropped: int
    """Messages lost by the network or sent to a crashed node."""
    duplicated: int
    """Messages the network delivered twice."""
    crashes: int
    """Crash points that fired."""
    virtual_seconds: float
    """Virtual time at the end of the run."""


class TxnSim:
    """Transaction nodes in virtual time, with seeded loss, duplication, delay and crashes."""

    def __init__(
        self,
        nodes: Sequence[str],
        *,
        seed: int = 0,
        checks: Mapping[str, Check] | None = None,
        handlers: Mapping[str, Handlers] | None = None,
        replicas: Mapping[str, Sequence[str]] | None = None,
        config: TxnConfig | None = None,
        loss: float = 0.0,
        duplicate: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.01),
        crashes: Sequence[CrashPoint] = (),
    ) -> None:
        if len(set(nodes)) != len(nodes) or not nodes:
            raise ConfigurationError("nodes must be distinct names")
        if not (0 <= loss < 1 and 0 <= duplicate < 1 and 0 <= delay[0] <= delay[1]):
            raise ConfigurationError("need 0 <= loss, duplicate < 1 and 0 <= delay[0] <= delay[1]")
        self.rng = random.Random(seed)
        self.now = 0.0
        self._checks = dict(checks or {})
        self._handlers = dict(handlers or {})
        self._replicas = dict(replicas or {})
        self.config = config or TxnConfig()
        self._loss, self._dup, self._delay = loss, duplicate, delay
        self.stores = {n: Store(n, clock=_SimClock(self)) for n in nodes}
        self.hosts: dict[str, TxnHost | None] = {n: self._boot(n) for n in nodes}
        self._crashes = list(crashes)
        self._seen: dict[tuple[str, str], int] = {}
        self._heap: list[tuple[float, int, int, Any]] = []
        self._tick_at: dict[str, float] = {}
        self._seq = 0
        self.finished: dict[str, Finished] = {}
        """Every transaction's end, as its coordinator or orchestrator reported it."""
        self._messages = self._dropped = self._duplicated = self._crashed = 0

    def _boot(self, name: str) -> TxnHost:
        return TxnHost(
            self.stores[name],
            check=self._checks.get(name),
            handlers=self._handlers.get(name),
            replicas=self._replicas,
            config=self.config,
            rng=self.rng,
            now=self.now,
        )

    def _push(self, at: float, kind: int, item: Any) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (at, self._seq, kind, item))

    def begin_2pc(self, coordinator: str, txn: str, writes: Mapping[str, Sequence[Write]]) -> None:
        """Start a 2PC transaction at ``coordinator``."""
        host = self._host(coordinator)
        self._emit(coordinator, host.coordinator.begin(self.now, txn, writes))

    def begin_saga(self, orchestrator: str, txn: str, steps: Sequence[SagaStep]) -> None:
        """Start a saga at ``orchestrator``."""
        host = self._host(orchestrator)
        self._emit(orchestrator, host.orchestrator.begin(self.now, txn, steps))

    def _host(self, name: str) -> TxnHost:
        host = self.hosts.get(name)
        if host is None:
            raise Unavailable(f"node {name!r} is down or unknown; restart it first")
        return host

    def _emit(self, src: str, out: list[TxnOutput]) -> None:
        for item in out:
            if isinstance(item, Finished):
                self.finished[item.txn] = item
                continue
            self._messages += 1
            if self.rng.random() < self._loss:
                self._dropped += 1
                continue
            copies = 2 if self.rng.random() < self._dup else 1
            self._duplicated += copies - 1
            data = encode_txn_message(item.message)
            for _ in range(copies):
                self._push(self.now + self.rng.uniform(*self._delay), 1, (item.to, data))
        self._schedule_tick(src)

    def _schedule_tick(self, name: str) -> None:
        host = self.hosts.get(name)
        if host is None:
            return
        at = max(host.next_deadline, self.now)
        # One pending tick per node: the earliest deadline; later ones are pushed when it runs.
        if at < self._tick_at.get(name, float("inf")):
            self._tick_at[name] = at
            self._push(at, 0, name)

    def crash(self, name: str) -> None:
        """Crash ``name`` now: its memory goes, its store stays."""
        self.hosts[name] = None
        self._tick_at.pop(name, None)

    def restart(self, name: str) -> None:
        """Rebuild ``name``'s parties from its store and resend what they owe."""
        if self.hosts.get(name) is None:
            host = self.hosts[name] = self._boot(name)
            self._emit(name, host.recovered())

    def _deliver(self, dst: str, data: bytes) -> None:
        host = self.hosts.get(dst)
        if host is None:
            self._dropped += 1
            return
        msg = decode_txn_message(data)
        point = self._crash_point(dst, msg.kind)
        if point is not None and point.when == "before":
            self._fire(point)
            return
        out = host.receive(self.now, msg)
        if point is not None and point.when == "after":
            # The records are durable, so the end they note stands; the replies are lost.
            self._emit(dst, [o for o in out if isinstance(o, Finished)])
            self._fire(point)
            return
        self._emit(dst, out)
        if point is not None:
            self._fire(point)

    def _crash_point(self, node: str, kind: str) -> CrashPoint | None:
        n = self._seen[(node, kind)] = self._seen.get((node, kind), 0) + 1
        for p in self._crashes:
            if p.node == node and p.kind == kind and p.nth == n:
                return p
        return None

    def _fire(self, point: CrashPoint) -> None:
        self._crashed += 1
        self.crash(point.node)
        self._push(self.now + point.downtime, 2, point.node)

    def run(self, seconds: float) -> None:
        """Run the events of the next ``seconds`` of virtual time."""
        end = self.now + seconds
        while self._heap and self._heap[0][0] <= end:
            at, _, kind, item = heapq.heappop(self._heap)
            self.now = max(self.now, at)
            if kind == 1:
                self._deliver(*item)
            elif kind == 0:
                if self._tick_at.get(item) != at:
                    continue  # superseded by an earlier tick
                del self._tick_at[item]
                host = self.hosts.get(item)
                if host is not None:
                    self._emit(item, host.tick(self.now))
            else:
                self.restart(item)
        self.now = end

    def restart_all(self) -> None:
        """Restart every crashed node."""
        for name in self.hosts:
            self.restart(name)

    def stats(self) -> TxnSimStats:
        """Counters of the run so far."""
        return TxnSimStats(self._messages, self._dropped, self._duplicated, self._crashed, self.now)


class _SimClock:
    """Virtual wall time for the stores' hybrid clocks."""

    def __init__(self, sim: TxnSim) -> None:
        self._sim = sim

    def now(self) -> float:
        return 1_700_000_000.0 + self._sim.now

    def monotonic(self) -> float:
        return self._sim.now


class TxnNode:
    """A node running the transaction parties over HTTP (or any ``Transport``).

    ``peers`` maps node names to base URLs; ``key`` is the shared 32-byte key that
    authenticates every request. A request carries a msgpack list of encoded messages: what
    piled up for that peer while earlier requests were in flight. ``await commit(...)`` and
    ``await saga(...)`` run a transaction with this node as coordinator or orchestrator and
    return how it ended.
    """

    PARALLEL = 4
    """Requests in flight to one peer at a time; more messages wait and go as one batch."""

    RECORDS_PATH = "/msdb/v1/txn/"
    """``GET`` here plus a transaction id answers this node's records of it as JSON."""

    def __init__(
        self,
        store: Store,
        peers: Mapping[str, str],
        *,
        key: bytes,
        check: Check | None = None,
        handlers: Handlers | None = None,
        replicas: Mapping[str, Sequence[str]] | None = None,
        config: TxnConfig | None = None,
        transport: Transport | None = None,
        rng: random.Random | None = None,
    ) -> None:
        self.name = store.node_id
        if self.name in peers:
            raise ConfigurationError(f"node {self.name!r} lists itself among its peers")
        self.store = store
        self.peers = dict(peers)
        self._transport: Transport = transport if transport is not None else HTTPTransport()
        self._owns_transport = transport is None
        self.auth = Authenticator(self.name, key, boot=time.time_ns())
        self.host = TxnHost(
            store,
            check=check,
            handlers=handlers,
            replicas=replicas,
            config=config,
            rng=rng,
            now=time.time(),
        )
        self._waiting: dict[str, asyncio.Future[Finished]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._outbox: dict[str, list[bytes]] = {}
        self._done: list[Finished] = []
        self._settling = False
        self._senders: dict[str, int] = {}
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False
        self._runner: web.AppRunner | None = None
        self.port: int | None = None
        self.refused = 0
        self.send_failures = 0

    async def start(self, host: str = "127.0.0.1", port: int | None = 0) -> None:
        """Serve messages, send what recovery owes, and start the timers."""
        if port is not None:
            app = make_app(self.on_message, self.status)
            app.router.add_get(self.RECORDS_PATH + "{txn}", self._records)
            self._runner, self.port = await serve(app, host, port)
        self._ticker = asyncio.create_task(self._tick_loop())
        self._dispatch(self.host.recovered())

    async def stop(self) -> None:
        """Stop timers, wait for messages in flight, close the server and the transport."""
        self._stopping = True
        self._wake.set()
        ticker, self._ticker = self._ticker, None
        runner, self._runner = self._runner, None
        await close_serving(ticker, self._tasks, runner, self._transport, self._owns_transport)

    async def _tick_loop(self) -> None:
        # A flag as well as cancellation: wait_for may swallow a cancel that races with the
        # wake-up event (Python 3.11), and the loop must still end.
        while not self._stopping:
            delay = min(self.host.next_deadline - time.time(), 0.5)
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
            self._dispatch(self.host.tick(time.time()))

    async def _records(self, request: web.Request) -> web.Response:
        recs = self.host.journal.get(request.match_info["txn"])
        body = json.dumps({"node": self.name, "records": recs}, default=repr)
        return web.Response(text=body, content_type="application/json")

    def on_message(self, body: bytes) -> int:
        """Handle one request from the wire (a batch of messages); returns the HTTP status."""
        try:
            _, payload = self.auth.open(body)
            batch = unpackb(payload)
            if not isinstance(batch, list) or not all(isinstance(b, bytes) for b in batch):
                raise DecodeError("a transaction request is a msgpack list of messages")
            msgs = [decode_txn_message(b) for b in batch]
        except AuthenticationError:
            self.refused += 1
            return 401
        except MicroStateError:
            self.refused += 1
            return 400
        out: list[TxnOutput] = []
        for msg in msgs:
            headers = msg.body.get("headers")
            ctx = _obs.extract(headers) if isinstance(headers, dict) else None
            attrs = {"txn": msg.txn, "node": self.name}
            with _obs.span(f"msdb.txn.{msg.kind}", attrs, context=ctx):
                out += self.host.receive(time.time(), msg)
        self._dispatch(out)
        return 204

    def _dispatch(self, out: list[TxnOutput]) -> None:
        # Nothing leaves before the records it depends on are durable: the pumps and the
        # settler flush the store first, once for everything that piled up meanwhile (a group
        # commit), so many transactions share one fsync.
        for item in out:
            if isinstance(item, Finished):
                self._done.append(item)
                if not self._settling:
                    self._settling = True
                    self._spawn(self._settle())
                continue
            if item.to == self.name:
                self._local(item.message)
                continue
            self._outbox.setdefault(item.to, []).append(encode_txn_message(item.message))
            if self._senders.get(item.to, 0) < self.PARALLEL:
                self._senders[item.to] = self._senders.get(item.to, 0) + 1
                self._spawn(self._pump(item.to))
        self._wake.set()

    def _spawn(self, coro: Coroutine[Any, Any, None]) -> None:
        task = asyncio.get_running_loop().create_task(coro)
        self._tasks.add(task)
        task.add_done_callback(self._tasks.discard)

    async def _settle(self) -> None:
        await asyncio.sleep(0)  # let this loop round add its own ends
        self._settling = False
        done, self._done = self._done, []
        self.store.flush()
        for item in done:
            fut = self._waiting.pop(item.txn, None)
            if fut is not None and not fut.done():
                fut.set_result(item)

    def _local(self, msg: TxnMessage) -> None:
        # A message to this node itself (a coordinator that is also a participant).
        asyncio.get_running_loop().call_soon(
            lambda: self._dispatch(self.host.receive(time.time(), msg))
        )

    async def _pump(self, to: str) -> None:
        # Messages to one peer leave in batches, at most PARALLEL requests at a time: under
        # load one request carries what piled up while the previous ones were in flight.
        try:
            await asyncio.sleep(0)  # let this loop round add to the batch
            while batch := self._outbox.pop(to, None):
                self.store.flush()  # records before the messages that depend on them
                await self._deliver(to, batch)
        finally:
            self._senders[to] -= 1

    async def _deliver(self, to: str, batch: list[bytes]) -> None:
        url = self.peers.get(to)
        if url is None:
            self.send_failures += 1
            _log.warning("%s: no address for %s", self.name, to)
            return
        sealed = self.auth.seal(to, packb(batch))
        try:
            resp = await self._transport.handle(Request(url.rstrip("/") + MESSAGE_PATH, sealed))
        except Unavailable as exc:
            self.send_failures += 1  # the protocol's timers send again
            _log.debug("%s: %s", self.name, exc)
            return
        if resp.status >= 300:
            self.send_failures += 1

    async def _wait(self, txn: str, out: list[TxnOutput], timeout: float) -> Finished:
        fut: asyncio.Future[Finished] = asyncio.get_running_loop().create_future()
        self._waiting[txn] = fut
        self._dispatch(out)
        try:
            return await asyncio.wait_for(fut, timeout)
        except TimeoutError as exc:
            self._waiting.pop(txn, None)
            raise DeadlineExceeded(
                f"transaction {txn!r} has not ended after {timeout}s; it goes on in the "
                f"background: look at it with `microstatedb txn show {txn}`"
            ) from exc

    async def commit(
        self, txn: str, writes: Mapping[str, Sequence[Write]], *, timeout: float = 10.0
    ) -> Finished:
        """Run ``txn`` by two-phase commit; returns ``committed`` or ``aborted``."""
        with _obs.span("msdb.txn.2pc", {"txn": txn}):
            out = self.host.coordinator.begin(time.time(), txn, writes)
            return await self._wait(txn, out, timeout)

    async def saga(self, txn: str, steps: Sequence[SagaStep], *, timeout: float = 30.0) -> Finished:
        """Run saga ``txn``; returns ``completed`` or ``compensated``."""
        with _obs.span("msdb.txn.saga", {"txn": txn}):
            out = self.host.orchestrator.begin(time.time(), txn, steps)
            return await self._wait(txn, out, timeout)

    def status(self) -> dict[str, Any]:
        """A JSON-ready view of the node's transaction counters."""
        return {
            "name": self.name,
            "coordinator": _plain(self.host.coordinator.stats()),
            "participant": _plain(self.host.participant.stats()),
            "orchestrator": _plain(self.host.orchestrator.stats()),
            "saga_runs": self.host.saga.runs,
            "refused": self.refused,
            "send_failures": self.send_failures,
        }


def _plain(stats: Any) -> dict[str, Any]:
    return {k: getattr(stats, k) for k in stats.__dataclass_fields__}
