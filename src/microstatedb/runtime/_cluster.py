"""Drives the per-key consensus nodes: a deterministic simulated cluster and client histories.

``SimCluster(nodes=3, seed=7)`` runs one ``QuorumNode`` per node over a simulated network
(virtual time, seeded delays, loss, partitions, crashes with durable acceptor state, clocks
whose rates drift within a bound). Clients call ``read``, ``write`` and ``cas`` on a node; each
call is recorded as a Jepsen-style history (``invoke`` then ``ok``, ``fail`` or ``info``) that
``microstatedb.verify.check_linearizable`` reads. One ``random.Random(seed)`` decides
everything, so a run replays exactly.

Each node sees only its own clock: ``local = offset + rate * t``. Leases are safe while every
rate stays within ``1 +- drift`` of the configured ``LeaseConfig.drift``.
"""

from __future__ import annotations

import asyncio
import contextlib
import heapq
import logging
import os
import random
import struct
import time
from collections.abc import Callable, Hashable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from microstatedb.clock import Clock, RealClock
from microstatedb.codec import checksum, packb, unpackb
from microstatedb.errors import (
    AuthenticationError,
    ConfigurationError,
    CorruptData,
    Indeterminate,
    InvalidOperation,
    MicroStateError,
    Unavailable,
)
from microstatedb.protocols import (
    AcceptorStorage,
    Ballot,
    Change,
    Done,
    MemoryStorage,
    QuorumConfig,
    QuorumNode,
    QuorumStats,
    Send,
    message_kind,
)
from microstatedb.replica import Consistency, KeyModes
from microstatedb.transport import MESSAGE_PATH, Authenticator, Request, Transport
from microstatedb.verify import History, HistoryEvent

_TICK, _DELIVER, _CALL = 0, 1, 2
_log = logging.getLogger("microstatedb.runtime")

Callback = Callable[[Any, MicroStateError | None], None]


class _SimNode:
    __slots__ = (
        "epoch",
        "name",
        "node",
        "offset",
        "rate",
        "storage",
        "tick_at",
        "up",
    )

    def __init__(self, name: str) -> None:
        self.name = name
        self.storage = MemoryStorage()
        self.epoch = 0
        self.up = True
        self.rate = 1.0
        self.offset = 0.0
        self.tick_at = float("inf")
        self.node: QuorumNode


@dataclass(frozen=True, slots=True)
class ClusterStats:
    """Network and protocol counts of a simulated cluster run."""

    messages: int
    """Messages sent (including dropped ones)."""
    dropped: int
    """Messages lost, cut by a partition or sent to a crashed node."""
    nodes: tuple[QuorumStats, ...]
    """Each node's consensus counts (current incarnation)."""


class SimCluster:
    """Simulated nodes running the per-key consensus with leases; see the module docstring.

    ``node_class`` builds each node (a ``QuorumNode`` subclass, for variants under test).
    """

    def __init__(
        self,
        nodes: int = 3,
        *,
        seed: int = 0,
        config: QuorumConfig | None = None,
        delay: tuple[float, float] = (0.0005, 0.005),
        loss: float = 0.0,
        node_class: type[QuorumNode] = QuorumNode,
    ) -> None:
        if nodes < 1:
            raise ConfigurationError(f"a cluster needs at least 1 node, got {nodes!r}")
        if not 0 <= delay[0] <= delay[1]:
            raise ConfigurationError("delay must be (min, max) seconds with 0 <= min <= max")
        if not 0 <= loss < 1:
            raise ConfigurationError("loss is a probability in [0, 1)")
        self.seed = seed
        self.rng = random.Random(seed)
        self.config = config if config is not None else QuorumConfig()
        self.delay = delay
        self.loss = loss
        self._node_class = node_class
        self.names = [f"n{i}" for i in range(nodes)]
        self._nodes = {n: _SimNode(n) for n in self.names}
        self._queue: list[tuple[float, int, int, Any, Any, Any]] = []
        self._seq = 0
        self.now = 0.0
        self._cut: set[tuple[str, str]] = set()
        self.extra_delay: dict[str, float] = {}
        """Extra seconds added to messages of a kind (``"invalidate"``...), for fault tests."""
        self._waiting: dict[tuple[str, int, int], Callback] = {}
        self.events: list[HistoryEvent] = []
        self.messages = self.dropped = 0
        for sn in self._nodes.values():
            self._boot(sn, lease_table_lost=False)

    # ------------------------------------------------------------------------ time

    def local(self, name: str, t: float | None = None) -> float:
        """Node ``name``'s own clock reading at virtual time ``t`` (default: now)."""
        sn = self._nodes[name]
        return sn.offset + sn.rate * (self.now if t is None else t)

    def set_rate(self, name: str, rate: float) -> None:
        """Change a node's clock rate from now on, keeping its reading continuous."""
        if not rate > 0:
            raise ConfigurationError(f"a clock rate must be positive, not {rate!r}")
        sn = self._nodes[name]
        reading = self.local(name)
        sn.rate = rate
        sn.offset = reading - rate * self.now
        sn.tick_at = float("inf")
        self._reschedule(sn)

    def _push(self, at: float, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (max(at, self.now), self._seq, kind, a, b, c))

    def schedule(self, at: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` at virtual time ``at``."""
        self._push(at, _CALL, fn)

    def run(self, seconds: float) -> None:
        """Advance virtual time by ``seconds``, handling everything due."""
        end = self.now + seconds
        queue = self._queue
        while queue and queue[0][0] <= end:
            at, _, kind, a, b, c = heapq.heappop(queue)
            self.now = max(self.now, at)
            if kind == _DELIVER:
                self._deliver(a, b, c)
            elif kind == _TICK:
                self._tick(a, b, at)
            else:
                a()
        self.now = max(self.now, end)

    # ----------------------------------------------------------------------- nodes

    def _boot(self, sn: _SimNode, *, lease_table_lost: bool) -> None:
        sn.node = self._node_class(
            sn.name,
            self.names,
            now=self.local(sn.name),
            rng=random.Random(self.rng.getrandbits(64)),
            config=self.config,
            storage=sn.storage,
            lease_table_lost=lease_table_lost,
            epoch=sn.epoch,
        )
        sn.up = True
        sn.tick_at = float("inf")
        self._reschedule(sn)

    def node(self, name: str) -> QuorumNode:
        """The consensus object of node ``name`` (current incarnation)."""
        return self._nodes[name].node

    def is_up(self, name: str) -> bool:
        """True unless the node is crashed."""
        return self._nodes[name].up

    def crash(self, name: str) -> None:
        """Stop a node: its in-flight client calls end ``info``; its acceptor state stays on
        disk, its lease table and proposer state are lost."""
        sn = self._nodes[name]
        if not sn.up:
            return
        sn.up = False
        for (node, epoch, op), callback in list(self._waiting.items()):
            if node == name and epoch == sn.epoch:
                del self._waiting[(node, epoch, op)]
                callback(None, Indeterminate(f"node {name!r} crashed during the call"))

    def restart(self, name: str) -> None:
        """Start a crashed node again; as its lease table is gone it acknowledges no write
        until a lease period has passed."""
        sn = self._nodes[name]
        if sn.up:
            return
        sn.epoch += 1
        self._boot(sn, lease_table_lost=True)

    # --------------------------------------------------------------------- network

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network into ``groups`` (the rest form one more group)."""
        side: dict[str, int] = {}
        for i, group in enumerate(groups):
            for name in group:
                if name not in self._nodes:
                    raise ConfigurationError(f"unknown node {name!r} in partition")
                side[name] = i
        rest = len(groups)
        self._cut = {
            (a, b) for a in self.names for b in self.names if side.get(a, rest) != side.get(b, rest)
        }

    def heal(self) -> None:
        """Remove every partition."""
        self._cut = set()

    def _out(self, sn: _SimNode, outputs: list[Any]) -> None:
        for item in outputs:
            if isinstance(item, Done):
                callback = self._waiting.pop((sn.name, sn.epoch, item.op), None)
                if callback is not None:
                    callback(item.value, item.error)
                continue
            assert isinstance(item, Send)
            self.messages += 1
            if item.to != sn.name and (
                (sn.name, item.to) in self._cut or (self.loss and self.rng.random() < self.loss)
            ):
                self.dropped += 1
                continue
            low, high = self.delay
            at = self.now + self.rng.uniform(low, high)
            if self.extra_delay:
                at += self.extra_delay.get(message_kind(item.payload), 0.0)
            dst_epoch = self._nodes[item.to].epoch
            self._push(at, _DELIVER, (sn.name, item.to), item.payload, dst_epoch)
        self._reschedule(sn)

    def _reschedule(self, sn: _SimNode) -> None:
        if not sn.up:
            return
        local = sn.node.next_deadline
        # a nanosecond late, so that float rounding never wakes the node just before its deadline
        at = max(self.now, (local - sn.offset) / sn.rate + 1e-9)
        if at < sn.tick_at:
            sn.tick_at = at
            self._push(at, _TICK, sn.name, sn.epoch)

    def _deliver(self, route: tuple[str, str], payload: bytes, epoch: int) -> None:
        src, dst = route
        sn = self._nodes[dst]
        if not sn.up or sn.epoch != epoch:
            self.dropped += 1
            return
        outputs = sn.node.receive(self.local(dst), src, payload)
        self._out(sn, outputs)

    def _tick(self, name: str, epoch: int, at: float) -> None:
        sn = self._nodes[name]
        if not sn.up or sn.epoch != epoch or at != sn.tick_at:
            return
        sn.tick_at = float("inf")
        self._out(sn, sn.node.tick(self.local(name)))

    # ---------------------------------------------------------------------- clients

    def _record(self, process: Hashable, type_: str, f: str, key: Hashable, value: Any) -> None:
        self.events.append(
            HistoryEvent(process, type_, f, key, value, round(self.now * 1e9), None, None)
        )

    def call(
        self,
        process: Hashable,
        name: str,
        f: str,
        key: Hashable,
        value: Any = None,
        on_done: Callable[[], object] | None = None,
        *,
        max_lag: float | None = None,
    ) -> None:
        """Invoke ``f`` (``read``, ``write`` or ``cas`` with ``[expected, new]``) on node
        ``name`` for client ``process``; the completion is recorded when it comes.

        A read with ``max_lag`` (seconds) is a bounded-staleness read: served locally when
        the node's cached value is recent enough, else through the quorum."""
        if f not in ("read", "write", "cas"):
            raise ConfigurationError(f"f must be read, write or cas, not {f!r}")
        sn = self._nodes[name]
        if f == "cas":
            value = tuple(value)
        self._record(process, "invoke", f, key, value)

        def finish(result: Any, error: MicroStateError | None) -> None:
            if error is None:
                if f == "read":
                    self._record(process, "ok", f, key, result)
                elif f == "cas" and result is False:
                    self._record(process, "fail", f, key, value)
                else:
                    self._record(process, "ok", f, key, value)
            else:
                kind = "fail" if isinstance(error, Unavailable) else "info"
                self._record(process, kind, f, key, value)
            if on_done is not None:
                on_done()

        if not sn.up:
            finish(None, Unavailable(f"node {name!r} is down"))
            return
        node = sn.node
        now = self.local(name)
        if f == "read" and max_lag is not None:
            hit, got = node.bounded_read(key, now, max_lag)
            if hit:
                finish(got, None)
                return
        elif f == "read":
            hit, got = node.lease_read(key, now)
            if hit and node.holder.holds(key, self.local(name)):  # re-check after reading
                finish(got, None)
                return
        try:
            op = node.submit(now, key, _change(f, value), read_only=f == "read")
        except Unavailable as exc:
            finish(None, exc)
            return
        self._waiting[(name, sn.epoch, op)] = finish
        self._reschedule(sn)

    def pending(self) -> int:
        """Client calls still waiting for their completion."""
        return len(self._waiting)

    def abandon(self) -> None:
        """End every call still waiting as ``info`` (the client gave up)."""
        for key, callback in list(self._waiting.items()):
            del self._waiting[key]
            callback(None, Indeterminate("the client stopped waiting"))

    def history(self) -> History:
        """The client history recorded so far."""
        return History(list(self.events))

    def stats(self) -> ClusterStats:
        """Counts of the run so far."""
        return ClusterStats(
            messages=self.messages,
            dropped=self.dropped,
            nodes=tuple(self._nodes[n].node.stats() for n in self.names),
        )

    def __repr__(self) -> str:
        return f"<SimCluster nodes={len(self.names)} seed={self.seed} t={self.now:.3f}>"


def _change(f: str, value: Any) -> Callable[[Any], tuple[Any, Any]]:
    if f == "read":
        return lambda current: (current, current)
    if f == "write":
        return lambda _current: (value, None)
    if not isinstance(value, list | tuple) or len(value) != 2:
        raise ConfigurationError(f"a cas value is [expected, new], not {value!r}")
    expected, new = value

    def cas(current: Any) -> tuple[Any, Any]:
        return (new, True) if current == expected else (current, False)

    return cas


# --------------------------------------------------------------------- durable acceptor state

_FRAME = struct.Struct("<I8s")  # body length, blake3 checksum of the body


class FileStorage:
    """Acceptor state in an append-only file, fsynced before every answer.

    Each save appends one framed msgpack record ``[key, promised, accepted, value]``; loading
    replays the file (the last record of a key wins). A torn final frame (a crash during a
    write) is cut off; a bad frame before the end raises ``CorruptData``. ``compact()`` rewrites
    the file with one record per key.
    """

    def __init__(self, path: str | os.PathLike[str], *, fsync: bool = True) -> None:
        self.path = os.fspath(path)
        self._fsync = fsync
        self.records: dict[Hashable, tuple[Ballot, Ballot, Any]] = {}
        self._read()
        self._file = open(self.path, "ab")  # noqa: SIM115 - kept open for appends

    def _read(self) -> None:
        try:
            with open(self.path, "rb") as f:
                data = f.read()
        except FileNotFoundError:
            return
        pos = 0
        while pos < len(data):
            if pos + _FRAME.size > len(data):
                break  # torn header
            length, digest = _FRAME.unpack_from(data, pos)
            body = data[pos + _FRAME.size : pos + _FRAME.size + length]
            if len(body) < length:
                break  # torn body
            if checksum(body) != digest:
                raise CorruptData("acceptor record fails its checksum", path=self.path, offset=pos)
            key, promised, accepted, value = unpackb(body)
            self.records[_key(key)] = (tuple(promised), tuple(accepted), value)
            pos += _FRAME.size + length
        if pos < len(data):
            with open(self.path, "r+b") as f:
                f.truncate(pos)

    def load(self) -> dict[Hashable, tuple[Ballot, Ballot, Any]]:
        """Everything saved so far."""
        return dict(self.records)

    def save(self, key: Hashable, promised: Ballot, accepted: Ballot, value: Any) -> None:
        """Append one record and make it durable before returning."""
        body = packb([key, list(promised), list(accepted), value])
        self._file.write(_FRAME.pack(len(body), checksum(body)) + body)
        self._file.flush()
        if self._fsync:
            os.fsync(self._file.fileno())
        self.records[key] = (promised, accepted, value)

    def compact(self) -> None:
        """Rewrite the file with the latest record of each key (atomically, by rename)."""
        tmp = self.path + ".tmp"
        with open(tmp, "wb") as f:
            for key, (promised, accepted, value) in self.records.items():
                body = packb([key, list(promised), list(accepted), value])
                f.write(_FRAME.pack(len(body), checksum(body)) + body)
            f.flush()
            os.fsync(f.fileno())
        self._file.close()
        os.replace(tmp, self.path)
        self._file = open(self.path, "ab")  # noqa: SIM115

    def close(self) -> None:
        """Close the file."""
        self._file.close()


def _key(raw: Any) -> Hashable:
    return tuple(raw) if isinstance(raw, list) else raw


# ------------------------------------------------------------------------- asyncio driver


class AsyncQuorum:
    """One ``QuorumNode`` over asyncio: linearizable ``read``/``write``/``cas`` as coroutines.

    ``peers`` maps every other node's name to its base URL; messages are sealed by the
    ``Authenticator`` with the shared ``key`` and posted through ``transport`` (HTTP by
    default, or any ``Transport`` such as ``MockTransport``). Feed received message bodies to
    ``on_message`` (the HTTP app does). ``clock`` is the node's monotonic clock.
    """

    def __init__(
        self,
        name: str,
        peers: Mapping[str, str],
        *,
        key: bytes,
        transport: Transport | None = None,
        config: QuorumConfig | None = None,
        storage: AcceptorStorage | None = None,
        lease_table_lost: bool = True,
        epoch: int | None = None,
        rng: random.Random | None = None,
        clock: Clock | None = None,
        modes: KeyModes | None = None,
    ) -> None:
        if name in peers:
            raise ConfigurationError(f"node {name!r} lists itself among its peers")
        self.name = name
        self.peers = dict(peers)
        self.modes = modes
        """When set, keys outside its LINEARIZABLE prefixes are refused (one mode per key)."""
        self._clock: Clock = clock if clock is not None else RealClock()
        boot = epoch if epoch is not None else time.time_ns() // 1000
        self.auth = Authenticator(name, key, boot=boot)
        self._owns_transport = transport is None
        if transport is None:
            from microstatedb.transport import HTTPTransport

            transport = HTTPTransport()
        self._transport: Transport = transport
        self.node = QuorumNode(
            name,
            [name, *self.peers],
            now=self._clock.monotonic(),
            rng=rng if rng is not None else random.Random(),
            config=config,
            storage=storage,
            lease_table_lost=lease_table_lost,
            epoch=boot,
        )
        self._futures: dict[int, asyncio.Future[Any]] = {}
        self._tasks: set[asyncio.Task[None]] = set()
        self._wake = asyncio.Event()
        self._ticker: asyncio.Task[None] | None = None
        self._stopping = False

    async def start(self) -> None:
        """Start the timer loop."""
        self._stopping = False
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop the timer loop and wait for messages in flight; pending calls end
        ``Indeterminate``."""
        if self._ticker is not None:
            # the loop sees the flag and ends by itself: cancelling a task inside
            # asyncio.wait_for can be swallowed on Python 3.11 when the wait ends at once
            self._stopping = True
            self._wake.set()
            await self._ticker
            self._ticker = None
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        for fut in self._futures.values():
            if not fut.done():
                fut.set_exception(Indeterminate(f"node {self.name!r} stopped during the call"))
        self._futures.clear()
        aclose = getattr(self._transport, "aclose", None)
        if self._owns_transport and aclose is not None:
            await aclose()

    async def _tick_loop(self) -> None:
        while not self._stopping:
            delay = self.node.next_deadline - self._clock.monotonic()
            if delay > 0:
                self._wake.clear()
                with contextlib.suppress(TimeoutError):
                    await asyncio.wait_for(self._wake.wait(), delay)
                if self._stopping:
                    break
            try:
                self._dispatch(self.node.tick(self._clock.monotonic()))
            except Exception:  # a bug must not stop the timers that end every call
                _log.exception("quorum node %s: tick failed", self.name)
                await asyncio.sleep(self.node.config.heartbeat)

    def on_message(self, body: bytes) -> int:
        """Handle one sealed message; returns the HTTP status (204, 400 or 401)."""
        try:
            sender, payload = self.auth.open(body)
            out = self.node.receive(self._clock.monotonic(), sender, payload)
        except AuthenticationError:
            return 401
        except MicroStateError:
            return 400
        self._dispatch(out)
        return 204

    def _dispatch(self, out: list[Any]) -> None:
        for item in out:
            if isinstance(item, Done):
                fut = self._futures.pop(item.op, None)
                if fut is not None and not fut.done():
                    if item.error is not None:
                        fut.set_exception(item.error)
                    else:
                        fut.set_result(item.value)
            elif item.to == self.name:
                payload = item.payload
                asyncio.get_running_loop().call_soon(self._local, payload)
            else:
                task = asyncio.create_task(self._send(item.to, item.payload))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
        self._wake.set()

    def _local(self, payload: bytes) -> None:
        self._dispatch(self.node.receive(self._clock.monotonic(), self.name, payload))

    async def _send(self, to: str, payload: bytes) -> None:
        url = self.peers[to].rstrip("/") + MESSAGE_PATH
        with contextlib.suppress(MicroStateError, OSError):
            await self._transport.handle(Request(url, self.auth.seal(to, payload)))

    async def change(self, key: Hashable, fn: Change) -> Any:
        """Apply any change ``current -> (new, result)`` linearizably; returns ``result``."""
        return await self._change(key, fn, False)

    def _check_mode(self, key: Hashable) -> None:
        if self.modes is not None and isinstance(key, str):
            self.modes.check(key, strong=True)

    async def _change(self, key: Hashable, fn: Change, read_only: bool) -> Any:
        self._check_mode(key)
        op = self.node.submit(self._clock.monotonic(), key, fn, read_only=read_only)
        fut: asyncio.Future[Any] = asyncio.get_running_loop().create_future()
        self._futures[op] = fut
        self._wake.set()
        return await fut

    def lease_read(self, key: Hashable) -> tuple[bool, Any]:
        """A local linearizable read under a lease (no await): ``(True, value)`` or a miss."""
        hit, value = self.node.lease_read(key, self._clock.monotonic())
        if hit and self.node.holder.holds(key, self._clock.monotonic()):  # re-check after
            return True, value
        return False, None

    async def read(
        self,
        key: Hashable,
        *,
        consistency: Consistency = Consistency.LINEARIZABLE,
        max_lag: float | None = None,
    ) -> Any:
        """A linearizable read (local under a lease), or with ``Consistency.BOUNDED`` and
        ``max_lag`` seconds an explicitly stale one. The CRDT levels are refused: this key
        lives in the strongly consistent mode."""
        if consistency is Consistency.BOUNDED:
            if max_lag is None:
                raise ConfigurationError("a BOUNDED read needs max_lag (seconds)")
        elif consistency is not Consistency.LINEARIZABLE:
            raise InvalidOperation(
                f"{key!r} is a strongly consistent register: read it LINEARIZABLE or BOUNDED "
                f"(an explicitly stale read), not {consistency.value}"
            )
        elif max_lag is not None:
            raise ConfigurationError("max_lag goes with consistency=Consistency.BOUNDED")
        self._check_mode(key)
        if max_lag is not None:
            hit, value = self.node.bounded_read(key, self._clock.monotonic(), max_lag)
        else:
            hit, value = self.lease_read(key)
        if hit:
            return value
        return await self._change(key, lambda v: (v, v), True)

    async def write(self, key: Hashable, value: Any) -> None:
        """Set ``key`` to ``value`` linearizably."""
        await self._change(key, lambda _v: (value, None), False)

    async def cas(self, key: Hashable, expected: Any, new: Any) -> bool:
        """Set ``key`` to ``new`` if it holds ``expected``; returns whether it did."""
        result: bool = await self._change(
            key, lambda v: (new, True) if v == expected else (v, False), False
        )
        return result

    async def update(self, key: Hashable, fn: Callable[[Any], Any]) -> Any:
        """Read-modify-write: set ``key`` to ``fn(current)`` and return the new value."""

        def change(current: Any) -> tuple[Any, Any]:
            new = fn(current)
            return new, new

        return await self._change(key, change, False)
