"""Chaos workloads: clients against a simulated cluster under named faults, with histories.

``run_chaos(level=Consistency.LINEARIZABLE, nodes=3, ops=300, nemesis="partition", seed=1)``
drives ``clients`` concurrent clients doing reads, writes and compare-and-sets on a few
registers, while a nemesis breaks the cluster every ``interval`` virtual seconds, and returns
the Jepsen-style history with the verdict of the checker for the level's promise:

- LINEARIZABLE runs the per-key consensus (``SimCluster``) and checks linearizability;
- CAUSAL runs CRDT stores under anti-entropy (``Simulation``) with clients in causal sessions
  (their tokens carried from call to call, waits of zero: a store that lags refuses with
  ``Unavailable``) and checks the four session guarantees;
- EVENTUAL runs the same stores with plain local reads and writes and checks that the replicas
  converge once healed; its history is usually *not* linearizable under partitions, which is
  the point (``anomalies`` says what the linearizability checker found).

Nemeses: ``partition`` (a random minority cut off, then healed), ``kill`` (a node crashes
and restarts with its durable state), ``clock-drift`` (clock rates change within the lease
drift bound), ``delay`` (invalidations and accepts delayed well past the lease), ``mixed`` (all
of these), ``none``.

A run takes ``ops + 2`` steps: one per client operation issued (those a run had no time for
count when it ends), one when the faults have stopped and the cluster has settled (over real
processes: when the nodes are stopped), and one when the history is checked. ``progress``, if
given, is called with the steps done since its last call, so a caller can draw a progress bar.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import random
import shutil
import socket
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable, Hashable
from dataclasses import dataclass
from typing import Any

from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, Unavailable
from microstatedb.protocols import AntiEntropyConfig, QuorumConfig
from microstatedb.replica import Consistency, Store
from microstatedb.runtime._cluster import SimCluster
from microstatedb.runtime._sim import Simulation
from microstatedb.verify import (
    History,
    HistoryEvent,
    Verdict,
    check_linearizable,
    check_sessions,
)

NEMESES = ("none", "partition", "kill", "clock-drift", "delay", "mixed")
"""The fault schedules ``run_chaos`` knows."""
WORKLOADS = ("register",)
"""The workloads ``run_chaos`` knows."""

Progress = Callable[[int], None]
"""Told how many steps of a run were done since it was last called (see the module docstring)."""


def _no_progress(steps: int) -> None:
    return None


@dataclass(frozen=True, slots=True)
class ChaosResult:
    """What a chaos run did and what the checkers said."""

    level: Consistency
    """The consistency level the clients asked for."""
    nemesis: str
    """The fault schedule."""
    seed: int
    """The seed that replays the run."""
    history: History
    """The client history (invoke, then ok, fail or info)."""
    counts: dict[str, int]
    """Completions by type: ok, fail, info."""
    verdict: Verdict
    """The verdict of the checker for the level's own promise."""
    checker: str
    """Which checker gave ``verdict``: linearizability, sessions or convergence."""
    anomalies: Verdict | None
    """For weaker levels, the linearizability checker's verdict (anomalies they allow)."""
    detail: str
    """A sentence about the verdict (the explanation of a violation)."""
    virtual_seconds: float
    """Virtual time the run took."""
    faults: int
    """Faults the nemesis injected."""
    lease_reads: int
    """Reads served locally under a lease (linearizable runs)."""


def _level(value: Consistency | str) -> Consistency:
    if isinstance(value, Consistency):
        return value
    try:
        return Consistency(value)
    except ValueError:
        names = ", ".join(c.value for c in Consistency if c is not Consistency.BOUNDED)
        raise ConfigurationError(f"unknown consistency {value!r}; use one of {names}") from None


class _Workload:
    """Client processes issuing operations one at a time, with unique written values."""

    def __init__(
        self, rng: random.Random, ops: int, keys: int, cas: bool, progress: Progress
    ) -> None:
        self.rng = rng
        self.ops = ops
        self.keys = keys
        self.cas = cas
        self.progress = progress
        self.issued = 0
        self.last: dict[str, list[int]] = {}

    def settle(self) -> int:
        """The operations not issued yet; from now on, issuing is no longer reported."""
        self.progress = _no_progress
        return self.ops - self.issued

    def next(self) -> tuple[str, str, Any] | None:
        if self.issued >= self.ops:
            return None
        self.issued += 1
        self.progress(1)
        rng = self.rng
        key = f"k{rng.randrange(self.keys)}"
        roll = rng.random()
        value = self.issued
        if roll < 0.5:
            return "read", key, None
        if self.cas and roll < 0.75:
            seen = self.last.get(key, [])
            expected = rng.choice(seen[-3:]) if seen and rng.random() < 0.8 else None
            self.last.setdefault(key, []).append(value)
            return "cas", key, [expected, value]
        self.last.setdefault(key, []).append(value)
        return "write", key, value


def run_chaos(
    level: Consistency | str = Consistency.LINEARIZABLE,
    *,
    nodes: int = 3,
    ops: int = 300,
    nemesis: str = "partition",
    seed: int = 0,
    clients: int = 5,
    keys: int = 3,
    interval: float = 1.0,
    workload: str = "register",
    leases: bool = True,
    check_timeout: float = 30.0,
    progress: Progress = _no_progress,
) -> ChaosResult:
    """Run one chaos workload; see the module docstring."""
    lvl = _level(level)
    if nemesis not in NEMESES:
        raise ConfigurationError(f"unknown nemesis {nemesis!r}; use one of {', '.join(NEMESES)}")
    if workload not in WORKLOADS:
        raise ConfigurationError(f"unknown workload {workload!r}; use one of {WORKLOADS}")
    if nodes < 1 or ops < 1 or clients < 1 or keys < 1 or not interval > 0:
        raise ConfigurationError("nodes, ops, clients and keys must be >= 1, interval > 0")
    if lvl is Consistency.BOUNDED:
        raise ConfigurationError(
            "the register workload runs eventual, causal or linearizable; bounded staleness is "
            "a read option (see docs/consistency.md)"
        )
    if lvl is Consistency.LINEARIZABLE:
        return _run_linearizable(
            nodes, ops, nemesis, seed, clients, keys, interval, leases, check_timeout, progress
        )
    return _run_crdt(
        lvl, nodes, ops, nemesis, seed, clients, keys, interval, check_timeout, progress
    )


def _counts(history: History) -> dict[str, int]:
    c = Counter(e.type for e in history if e.type != "invoke")
    return {t: c.get(t, 0) for t in ("ok", "fail", "info")}


# --------------------------------------------------------------------------- linearizable


def _run_linearizable(
    nodes: int,
    ops: int,
    nemesis: str,
    seed: int,
    clients: int,
    keys: int,
    interval: float,
    leases: bool,
    check_timeout: float,
    progress: Progress,
) -> ChaosResult:
    from microstatedb.protocols import LeaseConfig

    config = QuorumConfig(lease=LeaseConfig(enabled=leases, duration=0.5, drift=0.02))
    cluster = SimCluster(nodes, seed=seed, config=config)
    rng = cluster.rng
    cluster.run(0.5)
    work = _Workload(rng, ops, keys, cas=True, progress=progress)
    faults = _nemesis(nemesis, rng, cluster.names, interval, cluster.schedule, cluster, None)
    stop = [False]

    def client(p: int) -> None:
        if stop[0]:
            return
        nxt = work.next()
        if nxt is None:
            return
        f, key, value = nxt
        up = [n for n in cluster.names if cluster.is_up(n)] or cluster.names
        cluster.call(
            p,
            rng.choice(up),
            f,
            key,
            value,
            on_done=lambda: cluster.schedule(cluster.now + rng.uniform(0, 0.02), lambda: client(p)),
        )

    for p in range(clients):
        client(p)
    limit = 0.5 + ops * 0.05 + 10
    while work.issued < ops and cluster.now < limit:
        cluster.run(0.5)
    faults.stop()
    cluster.heal()
    for name in cluster.names:
        cluster.restart(name)
    cluster.run(config.timeout + 1.0)
    stop[0] = True
    cluster.abandon()
    progress(1 + work.settle())
    return _linearizable_result(
        cluster.history(),
        nemesis,
        seed,
        check_timeout,
        virtual_seconds=cluster.now,
        faults=faults.count,
        lease_reads=sum(s.lease_reads for s in cluster.stats().nodes),
        progress=progress,
    )


def _linearizable_result(
    history: History,
    nemesis: str,
    seed: int,
    check_timeout: float,
    *,
    virtual_seconds: float,
    faults: int,
    lease_reads: int,
    progress: Progress,
    where: str = "",
) -> ChaosResult:
    """Check a linearizable run's history and wrap the verdict (simulated and real runs)."""
    result = check_linearizable(history, "register", timeout=check_timeout)
    progress(1)
    detail = (
        result.explanation.text
        if result.explanation is not None
        else f"{len(history)} events{where}, {result.stats.configurations} configurations searched"
    )
    return ChaosResult(
        level=Consistency.LINEARIZABLE,
        nemesis=nemesis,
        seed=seed,
        history=history,
        counts=_counts(history),
        verdict=result.verdict,
        checker="linearizability",
        anomalies=None,
        detail=detail,
        virtual_seconds=virtual_seconds,
        faults=faults,
        lease_reads=lease_reads,
    )


# ------------------------------------------------------------------------------- nemeses


class _Faults:
    def __init__(self) -> None:
        self.count = 0
        self.stopped = False

    def stop(self) -> None:
        self.stopped = True


def _nemesis(
    name: str,
    rng: random.Random,
    names: list[str],
    interval: float,
    schedule: Callable[[float, Callable[[], object]], None],
    cluster: SimCluster | None,
    sim: Simulation | None,
) -> _Faults:
    faults = _Faults()
    kinds = {
        "none": [],
        "partition": ["partition"],
        "kill": ["kill"],
        "clock-drift": ["clock-drift"],
        "delay": ["delay"],
        "mixed": ["partition", "kill", "clock-drift", "delay"],
    }[name]
    if not kinds:
        return faults
    state = {"on": False}
    now = cluster.now if cluster is not None else sim.now  # type: ignore[union-attr]

    def clear() -> None:
        if cluster is not None:
            cluster.heal()
            cluster.extra_delay.clear()
            for n in names:
                cluster.restart(n)
        elif sim is not None:
            sim.heal()
            for n in names:
                sim.restart(n)

    def step() -> None:
        if faults.stopped:
            return
        if state["on"]:
            clear()
        else:
            kind = rng.choice(kinds)
            faults.count += 1
            minority = rng.sample(names, max(1, (len(names) - 1) // 2))
            if kind == "partition":
                (cluster or sim).partition(minority)  # type: ignore[union-attr]
            elif kind == "kill":
                for n in minority:
                    (cluster or sim).crash(n)  # type: ignore[union-attr]
            elif kind == "clock-drift" and cluster is not None:
                bound = cluster.config.lease.drift / 2  # within the bound the leases assume
                for n in names:
                    cluster.set_rate(n, 1 + rng.uniform(-bound, bound))
            elif kind == "delay" and cluster is not None:
                extra = cluster.config.lease.duration * 1.5
                cluster.extra_delay.update({"invalidate": extra, "invalidated": extra})
        state["on"] = not state["on"]
        at = (cluster.now if cluster is not None else sim.now) + interval  # type: ignore[union-attr]
        schedule(at, step)

    schedule(now + interval, step)
    return faults


# ------------------------------------------------------------------------- CRDT levels


def _run_crdt(
    level: Consistency,
    nodes: int,
    ops: int,
    nemesis: str,
    seed: int,
    clients: int,
    keys: int,
    interval: float,
    check_timeout: float,
    progress: Progress,
) -> ChaosResult:
    sim = Simulation(nodes, seed=seed, config=AntiEntropyConfig(interval=0.2), delay=(0.001, 0.01))
    rng = sim.rng
    clock: ManualClock = sim.clock
    start = clock.monotonic()
    events: list[HistoryEvent] = []
    tokens: dict[int, str | None] = dict.fromkeys(range(clients))
    work = _Workload(rng, ops, keys, cas=False, progress=progress)
    faults = _nemesis(nemesis, rng, sim.names, interval, sim.schedule, None, sim)

    def record(p: Hashable, t: str, f: str, key: str, value: Any) -> None:
        ns = round((clock.monotonic() - start) * 1e9)
        events.append(HistoryEvent(p, t, f, key, value, ns, None, None))

    def client(p: int) -> None:
        nxt = work.next()
        if nxt is None:
            return
        f, key, value = nxt
        up = sim.up_nodes()
        home = sim.names[p % len(sim.names)]
        # clients mostly stay with their home node, as a service instance does, and hop
        # now and then (a session's token then has to catch the other store up)
        name = home if home in up and rng.random() < 0.8 else rng.choice(up or sim.names)
        record(p, "invoke", f, key, value)
        if not up:
            record(p, "fail", f, key, value)
        else:
            store: Store = sim.store(name)
            target: Any = store
            if level is Consistency.CAUSAL:
                target = store.session(tokens[p], timeout=0.0)
            try:
                if f == "read":
                    got = target.register(key).value
                    record(p, "ok", f, key, got)
                else:
                    sim.write(name, lambda _store: target.register(key).set(value))
                    record(p, "ok", f, key, value)
            except Unavailable:
                record(p, "fail", f, key, value)
            if level is Consistency.CAUSAL:
                tokens[p] = target.token
        sim.schedule(sim.now + rng.uniform(0.01, 0.05), lambda: client(p))

    for p in range(clients):
        client(p)
    limit = ops * 0.05 + 10
    while work.issued < ops and sim.now < limit:
        sim.run(0.5)
    faults.stop()
    sim.heal()
    for name in sim.names:
        sim.restart(name)
    converged = sim.run_until_converged(timeout=60.0) is not None
    progress(1 + work.settle())
    history = History(events)
    anomalies = check_linearizable(history, "register", timeout=check_timeout, explain=False)
    if level is Consistency.CAUSAL:
        sessions = check_sessions(history)
        verdict = sessions.verdict
        checker = "sessions"
        detail = (
            "; ".join(v.text for v in sessions.violations[:3])
            or "read-your-writes, monotonic reads, monotonic writes and writes-follow-reads hold"
        )
        if not converged:
            verdict = Verdict.VIOLATED
            detail = "replicas did not converge after healing"
    else:
        verdict = Verdict.HOLDS if converged else Verdict.VIOLATED
        checker = "convergence"
        detail = (
            "replicas converged after healing"
            if converged
            else "replicas did not converge after healing"
        )
    progress(1)
    return ChaosResult(
        level=level,
        nemesis=nemesis,
        seed=seed,
        history=history,
        counts=_counts(history),
        verdict=verdict,
        checker=checker,
        anomalies=anomalies.verdict,
        detail=detail,
        virtual_seconds=sim.now,
        faults=faults.count,
        lease_reads=0,
    )


# ------------------------------------------------------------------------ real processes

REAL_NEMESES = ("none", "kill")
"""The nemeses of ``run_chaos_real`` (processes are killed with SIGKILL and restarted)."""


def serve_node(name: str, port: int, peers: dict[str, str], key_hex: str, data: str) -> None:
    """Run one consensus node as this process, over HTTP on 127.0.0.1:``port``, until killed.

    Clients post ``{"f": "read"|"write"|"cas", "key": K, "value": V}`` to the write path and
    get ``{"type": "ok"|"fail"|"info", "value": ...}`` back.
    """
    asyncio.run(_serve_node(name, port, peers, bytes.fromhex(key_hex), data))


async def _serve_node(name: str, port: int, peers: dict[str, str], key: bytes, data: str) -> None:
    from microstatedb.errors import Indeterminate
    from microstatedb.protocols import LeaseConfig
    from microstatedb.runtime._cluster import AsyncQuorum, FileStorage
    from microstatedb.transport import make_app, serve

    storage = FileStorage(os.path.join(data, f"{name}.acceptor"))
    config = QuorumConfig(lease=LeaseConfig(duration=0.5, drift=0.05), timeout=2.0)
    node = AsyncQuorum(name, peers, key=key, storage=storage, config=config)

    async def op(body: dict[str, Any]) -> dict[str, Any]:
        f, k, value = body.get("f"), body.get("key"), body.get("value")
        try:
            if f == "read":
                return {"type": "ok", "value": await node.read(k)}
            if f == "write":
                await node.write(k, value)
                return {"type": "ok", "value": value}
            if f == "cas" and isinstance(value, list) and len(value) == 2:
                done = await node.cas(k, value[0], value[1])
                return {"type": "ok" if done else "fail", "value": value}
        except Unavailable:
            return {"type": "fail", "value": value}
        except Indeterminate:
            return {"type": "info", "value": value}
        return {"type": "fail", "error": "unknown operation", "value": value}

    app = make_app(node.on_message, lambda: {"name": name}, op)
    runner, _port = await serve(app, "127.0.0.1", port)
    await node.start()
    try:
        await asyncio.Event().wait()
    finally:
        await node.stop()
        await runner.cleanup()
        storage.close()


def _free_ports(n: int) -> list[int]:
    socks = []
    for _ in range(n):
        s = socket.socket()
        s.bind(("127.0.0.1", 0))
        socks.append(s)
    ports = [s.getsockname()[1] for s in socks]
    for s in socks:
        s.close()
    return ports


def run_chaos_real(
    *,
    nodes: int = 3,
    ops: int = 200,
    nemesis: str = "kill",
    seed: int = 0,
    clients: int = 5,
    keys: int = 3,
    interval: float = 1.0,
    check_timeout: float = 30.0,
    progress: Progress = _no_progress,
) -> ChaosResult:
    """``run_chaos`` for LINEARIZABLE with each node an OS process talking HTTP on loopback.

    The ``kill`` nemesis SIGKILLs a random minority every other ``interval`` seconds and starts
    it again from its acceptor file (which it reads back, then waits out the lease period).
    """
    if nemesis not in REAL_NEMESES:
        raise ConfigurationError(
            f"over real processes the nemesis is one of {', '.join(REAL_NEMESES)}, not "
            f"{nemesis!r} (partitions and clock drift need the simulator)"
        )
    if nodes < 1 or ops < 1 or clients < 1 or keys < 1:
        raise ConfigurationError("nodes, ops, clients and keys must be >= 1")
    return asyncio.run(
        _real(nodes, ops, nemesis, seed, clients, keys, interval, check_timeout, progress)
    )


async def _real(
    nodes: int,
    ops: int,
    nemesis: str,
    seed: int,
    clients: int,
    keys: int,
    interval: float,
    check_timeout: float,
    progress: Progress,
) -> ChaosResult:
    import aiohttp

    from microstatedb.transport import STATUS_PATH, WRITE_PATH
    from microstatedb.verify import Recorder

    rng = random.Random(seed)
    names = [f"n{i}" for i in range(nodes)]
    urls = {n: f"http://127.0.0.1:{p}" for n, p in zip(names, _free_ports(nodes), strict=True)}
    key_hex = rng.randbytes(32).hex()
    data = tempfile.mkdtemp(prefix="msdb-chaos-")
    procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(name: str) -> None:
        peers = {m: u for m, u in urls.items() if m != name}
        port = int(urls[name].rsplit(":", 1)[1])
        code = (
            "from microstatedb.runtime._chaos import serve_node; "
            f"serve_node({name!r}, {port}, {peers!r}, {key_hex!r}, {data!r})"
        )
        procs[name] = subprocess.Popen(
            [sys.executable, "-c", code], stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def kill(name: str) -> None:
        proc = procs.pop(name, None)
        if proc is not None:
            proc.kill()
            proc.wait()

    for name in names:
        start(name)
    recorder = Recorder()
    work = _Workload(rng, ops, keys, cas=True, progress=progress)
    faults = 0
    timeout = aiohttp.ClientTimeout(total=5.0)
    start_time = time.monotonic()
    try:
        async with aiohttp.ClientSession(timeout=timeout) as http:
            for name in names:  # wait until every node answers
                for _ in range(200):
                    try:
                        async with http.get(urls[name] + STATUS_PATH) as resp:
                            if resp.status == 200:
                                break
                    except aiohttp.ClientError:
                        pass
                    await asyncio.sleep(0.05)
            await asyncio.sleep(0.5)

            async def client(p: int) -> None:
                while (nxt := work.next()) is not None:
                    f, key, value = nxt
                    name = rng.choice(names)
                    pending = recorder.invoke(p, f, key, value)
                    try:
                        async with http.post(
                            urls[name] + WRITE_PATH, json=_op_body(f, key, value)
                        ) as r:
                            reply = await r.json()
                        kind = reply.get("type", "info")
                        recorder.complete(
                            pending, kind, reply.get("value") if kind == "ok" else None
                        )
                    except aiohttp.ClientConnectorError:
                        recorder.complete(pending, "fail")  # never connected: not sent
                    except (aiohttp.ClientError, TimeoutError):
                        recorder.complete(pending, "info")
                    await asyncio.sleep(rng.uniform(0, 0.02))

            async def nemesis_loop() -> None:
                nonlocal faults
                while work.issued < ops:
                    await asyncio.sleep(interval)
                    if nemesis != "kill":
                        continue
                    victims = rng.sample(names, max(1, (nodes - 1) // 2))
                    for v in victims:
                        kill(v)
                    faults += 1
                    await asyncio.sleep(interval)
                    for v in victims:
                        start(v)

            chaos = asyncio.ensure_future(nemesis_loop())
            await asyncio.gather(*(client(p) for p in range(clients)))
            chaos.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await chaos
    finally:
        for name in list(procs):
            kill(name)
        shutil.rmtree(data, ignore_errors=True)
    progress(1 + work.settle())
    return _linearizable_result(
        _fix_reads(recorder.history()),
        nemesis,
        seed,
        check_timeout,
        virtual_seconds=time.monotonic() - start_time,
        faults=faults,
        lease_reads=0,
        progress=progress,
        where=f" over {nodes} processes",
    )


def _op_body(f: str, key: str, value: Any) -> dict[str, Any]:
    """The JSON body of one client operation."""
    return {"f": f, "key": key, "value": value}


def _fix_reads(history: History) -> History:
    # a cas value travels as a JSON list: the history keeps Jepsen's [expected, new] pair
    return History(
        HistoryEvent(*e[:4], tuple(e.value) if isinstance(e.value, list) else e.value, *e[5:])
        for e in history
    )
