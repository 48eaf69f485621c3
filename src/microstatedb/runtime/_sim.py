"""The deterministic simulator: many nodes in one process, virtual time, seeded faults.

Every node is a real ``Store`` driven by the real ``AntiEntropy`` protocol object, with its
messages sealed by the real ``Authenticator``; only the network and the clock are simulated.
One ``random.Random(seed)`` decides everything (delays, loss, duplication, corruption, gossip
choices of every node, the workload), and events run in (time, sequence) order from one heap,
so a run replays exactly from its seed.

The network can drop, delay, duplicate, corrupt and reorder messages (reordering comes from
random delays), split into partitions (``partition``), cut single directions (``cut``,
asymmetric partitions), flap, and crash and restart nodes with or without their disk.
"""

from __future__ import annotations

import heapq
import random
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Any

from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, MicroStateError
from microstatedb.protocols import AntiEntropy, AntiEntropyConfig, PeerDown, PeerUp, Send
from microstatedb.replica import Store
from microstatedb.transport import Authenticator

_TICK, _DELIVER, _CALL = 0, 1, 2
_EPOCH = 1_700_000_000.0


@dataclass(frozen=True, slots=True)
class SimReport:
    """The outcome of a simulation run."""

    converged: bool
    """Every live node holds the same version vector and the same state digest."""
    nodes: int
    """Nodes in the fleet."""
    seed: int
    """The seed that replays this run."""
    virtual_seconds_to_converge: float | None
    """Virtual seconds from the start of ``run_until_converged`` to convergence, or None."""
    virtual_seconds: float
    """Virtual time at the end of the run."""
    messages: int
    """Messages sent (including ones the network then dropped)."""
    bytes: int
    """Bytes of those messages."""
    dropped: int
    """Messages lost, cut by a partition, or sent to a crashed node."""
    duplicated: int
    """Messages the network delivered twice."""
    refused: int
    """Messages refused by receivers (tampered, replayed, unknown sender, bad batch)."""
    events: int
    """Writes acknowledged by nodes during the run."""
    lost_writes: int
    """Acknowledged writes missing from a live node, apart from those of wiped disks."""
    wall_seconds: float
    """Wall-clock seconds the run took."""


class _Node:
    __slots__ = ("auth", "incarnation", "keep_disk", "name", "protocol", "store", "up")

    def __init__(self, name: str) -> None:
        self.name = name
        self.incarnation = 0
        self.up = True
        self.keep_disk = True
        self.store: Store
        self.protocol: AntiEntropy
        self.auth: Authenticator


class Simulation:
    """A fleet of ``nodes`` stores over a simulated network; see the module docstring."""

    def __init__(
        self,
        nodes: int = 3,
        *,
        seed: int = 0,
        loss: float = 0.0,
        duplicate: float = 0.0,
        corrupt: float = 0.0,
        delay: tuple[float, float] = (0.001, 0.05),
        config: AntiEntropyConfig | None = None,
        log: bool = True,
        keys: int = 20,
    ) -> None:
        if nodes < 1:
            raise ConfigurationError(f"a simulation needs at least 1 node, got {nodes!r}")
        if not 0 <= delay[0] <= delay[1]:
            raise ConfigurationError("delay must be (min, max) seconds with 0 <= min <= max")
        self.seed = seed
        self.rng = random.Random(seed)
        self.clock = ManualClock(_EPOCH)
        self.loss = loss
        self.duplicate = duplicate
        self.corrupt = corrupt
        self.delay = delay
        self.config = config if config is not None else AntiEntropyConfig()
        self._log = log
        self._keys = keys
        self._key = self.rng.randbytes(32)
        self.names = [f"n{i:03d}" for i in range(nodes)]
        self._nodes = {name: _Node(name) for name in self.names}
        self._queue: list[tuple[float, int, int, Any, Any, Any]] = []
        self._seq = 0
        self._cut: set[tuple[str, str]] = set()
        self._acked: dict[str, int] = {}
        self._wiped: set[str] = set()
        self.effects: list[tuple[float, str, PeerDown | PeerUp]] = []
        self.messages = self.bytes = self.dropped = self.duplicated = self.refused = 0
        self.writes = 0
        self._converged_after: float | None = None
        self._wall = 0.0
        for node in self._nodes.values():
            self._boot(node, fresh=True)

    # ------------------------------------------------------------------ time and queue

    @property
    def now(self) -> float:
        """Virtual seconds since the simulation started."""
        return self.clock.monotonic()

    def _push(self, at: float, kind: int, a: Any, b: Any = None, c: Any = None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, (at, self._seq, kind, a, b, c))

    def schedule(self, at: float, fn: Callable[[], object]) -> None:
        """Call ``fn()`` at virtual time ``at`` (for scripted faults and workloads)."""
        self._push(max(at, self.now), _CALL, fn)

    def run(self, seconds: float) -> None:
        """Run the simulation for ``seconds`` of virtual time."""
        start = time.perf_counter()
        self._run_until(self.now + seconds)
        self._wall += time.perf_counter() - start

    def _run_until(self, end: float) -> None:
        queue = self._queue
        clock = self.clock
        while queue and queue[0][0] <= end:
            at, _, kind, a, b, c = heapq.heappop(queue)
            if at > clock.monotonic():
                clock.advance(at - clock.monotonic())
            if kind == _DELIVER:
                self._deliver(a, b, c)
            elif kind == _TICK:
                self._tick(a, b)
            else:
                a()
        if end > clock.monotonic():
            clock.advance(end - clock.monotonic())

    def run_until_converged(self, timeout: float = 300.0, check_every: float = 0.5) -> float | None:
        """Run until every live node agrees; returns the virtual seconds it took, or None."""
        start_wall = time.perf_counter()
        start = self.now
        result: float | None = None
        while self.now - start < timeout:
            self._run_until(self.now + check_every)
            if self.converged():
                result = round(self.now - start, 6)
                break
        self._wall += time.perf_counter() - start_wall
        self._converged_after = result
        return result

    # ------------------------------------------------------------------------ nodes

    def _boot(self, node: _Node, *, fresh: bool) -> None:
        if fresh:
            store_id = node.name if node.incarnation == 0 else f"{node.name}.{node.incarnation}"
            node.store = Store(
                store_id, clock=self.clock, log=self._log, key=self._key, snapshot_every=10**9
            )
        node.protocol = AntiEntropy(
            node.name,
            node.store,
            self.names,
            rng=random.Random(self.rng.getrandbits(64)),
            config=self.config,
            now=self.now,
        )
        node.auth = Authenticator(node.name, self._key, boot=node.incarnation)
        node.up = True
        self._push(node.protocol.next_deadline, _TICK, node.name, node.incarnation)

    def _node(self, name: str) -> _Node:
        node = self._nodes.get(name)
        if node is None:
            raise ConfigurationError(f"no node {name!r} in this simulation; names are n000...")
        return node

    def store(self, name: str) -> Store:
        """The store of node ``name`` (its current incarnation)."""
        return self._node(name).store

    def protocol(self, name: str) -> AntiEntropy:
        """The anti-entropy object of node ``name``."""
        return self._node(name).protocol

    def is_up(self, name: str) -> bool:
        """True unless the node is crashed."""
        return self._node(name).up

    def up_nodes(self) -> list[str]:
        """Names of the nodes that are running."""
        return [n for n in self.names if self._nodes[n].up]

    def crash(self, name: str, *, keep_disk: bool = True) -> None:
        """Stop a node at once; messages to it are lost until ``restart``.

        ``keep_disk=True`` models a durable store that flushed every write (it comes back with
        its state); ``keep_disk=False`` a lost disk: it comes back empty, under a new store id
        so that its new events never reuse the dots of its old ones.
        """
        node = self._node(name)
        if not node.up:
            return
        node.up = False
        node.keep_disk = keep_disk
        node.incarnation += 1
        if not keep_disk:
            self._wiped.add(node.store.node_id)
            node.store.close()

    def restart(self, name: str) -> None:
        """Start a crashed node again (protocol state starts afresh)."""
        node = self._node(name)
        if node.up:
            return
        self._boot(node, fresh=not node.keep_disk)

    # ---------------------------------------------------------------------- network

    def partition(self, *groups: Iterable[str]) -> None:
        """Split the network: messages cross no boundary between groups (nodes left out of
        every group form one more group). Replaces any earlier cut."""
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

    def cut(self, src: str, dst: str) -> None:
        """Cut one direction only (an asymmetric partition): ``src`` can no longer reach ``dst``."""
        self._node(src)
        self._node(dst)
        self._cut.add((src, dst))

    def heal(self) -> None:
        """Remove every partition and cut."""
        self._cut = set()

    def flap(self, groups: Sequence[Iterable[str]], period: float, until: float) -> None:
        """Alternate between ``partition(*groups)`` and ``heal()`` every ``period`` seconds."""
        frozen = [list(g) for g in groups]
        t = self.now
        on = True
        while t < until:
            self.schedule(t, (lambda: self.partition(*frozen)) if on else self.heal)
            on = not on
            t += period
        self.schedule(until, self.heal)

    def _send(self, src: str, out: Iterable[object]) -> None:
        node = self._nodes[src]
        rng = self.rng
        for item in out:
            if not isinstance(item, Send):
                if isinstance(item, PeerDown | PeerUp):
                    self.effects.append((self.now, src, item))
                continue
            data = node.auth.seal(item.to, item.payload)
            self.messages += 1
            self.bytes += len(data)
            if (src, item.to) in self._cut or (self.loss and rng.random() < self.loss):
                self.dropped += 1
                continue
            if self.corrupt and rng.random() < self.corrupt:
                i = rng.randrange(len(data))
                data = data[:i] + bytes((data[i] ^ 0xFF,)) + data[i + 1 :]
            low, high = self.delay
            dst_inc = self._nodes[item.to].incarnation
            self._push(self.now + rng.uniform(low, high), _DELIVER, item.to, data, dst_inc)
            if self.duplicate and rng.random() < self.duplicate:
                self.duplicated += 1
                self._push(self.now + rng.uniform(low, high), _DELIVER, item.to, data, dst_inc)

    def _deliver(self, dst: str, data: bytes, incarnation: int) -> None:
        node = self._nodes[dst]
        if not node.up or node.incarnation != incarnation:
            self.dropped += 1
            return
        try:
            sender, payload = node.auth.open(data)
            out = node.protocol.receive(self.now, sender, payload)
        except MicroStateError:
            self.refused += 1
            return
        self._send(dst, out)

    def _tick(self, name: str, incarnation: int) -> None:
        node = self._nodes[name]
        if not node.up or node.incarnation != incarnation:
            return
        out = node.protocol.tick(self.now)
        self._push(node.protocol.next_deadline, _TICK, name, incarnation)
        self._send(name, out)

    # --------------------------------------------------------------------- workload

    def write(self, name: str, op: Callable[[Store], object] | None = None) -> None:
        """One local write on node ``name`` (a random mixed-CRDT one when ``op`` is None)."""
        node = self._node(name)
        if not node.up:
            raise ConfigurationError(f"node {name!r} is crashed; restart it before writing")
        store = node.store
        (op or self._random_op)(store)
        self.writes += 1
        self._acked[store.node_id] = store.version_vector.get(store.node_id, 0)

    def _random_op(self, store: Store) -> None:
        rng = self.rng
        key = rng.randrange(self._keys)
        choice = rng.random()
        if choice < 0.4:
            store.counter(f"c{key}").increment(rng.randint(1, 5))
        elif choice < 0.6:
            s = store.set(f"s{key}")
            x = rng.randrange(10)
            if x in s and rng.random() < 0.5:
                s.remove(x)
            else:
                s.add(x)
        elif choice < 0.8:
            store.register(f"r{key}").set(rng.randrange(1000))
        else:
            store.map(f"m{key}").counter(f"f{rng.randrange(3)}").increment()

    def workload(self, rate: float, until: float, nodes: Sequence[str] | None = None) -> None:
        """Schedule random writes at ``rate`` per second (whole fleet) until ``until``.

        Each write goes to a random running node among ``nodes``: every side of a partition
        keeps taking writes.
        """
        if rate <= 0:
            raise ConfigurationError("rate must be positive writes per second")
        pool = list(nodes) if nodes is not None else list(self.names)
        t = self.now
        while True:
            t += self.rng.expovariate(rate)
            if t >= until:
                break
            self.schedule(t, lambda: self._write_random(pool))

    def _write_random(self, pool: list[str]) -> None:
        live = [n for n in pool if self._nodes[n].up]
        if live:
            self.write(self.rng.choice(live))

    # -------------------------------------------------------------------- checking

    def converged(self) -> bool:
        """True when every running node has the same version vector and the same digest.

        Buffered events are not part of the state: one whose causal past was lost with a
        wiped disk waits in its buffer for good, invisible, and does not stop convergence.
        """
        live = [self._nodes[n].store for n in self.names if self._nodes[n].up]
        if not live:
            return True
        first = live[0].version_vector
        for store in live[1:]:
            if store.version_vector != first:
                return False
        digest = live[0].digest()
        return all(store.digest() == digest for store in live[1:])

    def lost_writes(self) -> int:
        """Acknowledged writes that some running node lacks (wiped disks excepted)."""
        live = [self._nodes[n].store.version_vector for n in self.names if self._nodes[n].up]
        lost = 0
        for origin, n in self._acked.items():
            if origin in self._wiped:
                continue
            for vv in live:
                lost = max(lost, n - vv.get(origin, 0))
        return lost

    def report(self) -> SimReport:
        """The figures of the run so far."""
        return SimReport(
            converged=self.converged(),
            nodes=len(self.names),
            seed=self.seed,
            virtual_seconds_to_converge=self._converged_after,
            virtual_seconds=self.now,
            messages=self.messages,
            bytes=self.bytes,
            dropped=self.dropped,
            duplicated=self.duplicated,
            refused=self.refused,
            events=self.writes,
            lost_writes=self.lost_writes(),
            wall_seconds=self._wall,
        )

    def close(self) -> None:
        """Close every store."""
        for node in self._nodes.values():
            node.store.close()

    def __repr__(self) -> str:
        return f"<Simulation nodes={len(self.names)} seed={self.seed} t={self.now:.3f}>"
