"""Replication: catch-up cost after a partition, local write latency under anti-entropy, and
the convergence of a 300-node fleet in the simulator.

Run: ``uv run python benchmarks/bench_replication.py`` (``--quick`` for a short run). It
prints a report and writes it to docs/performance-replication.md.

- **Catch-up** runs the real ``AntiEntropy`` objects of two stores against each other with
  messages sealed and opened by the real ``Authenticator`` and delivered at once (no network
  delay): the time is the CPU cost of reconciling, the bytes are what crossed the "wire". Over
  a network, add one round trip per batch of ``max_batch`` (1,000) events.
- **Local writes** are timed one by one (``perf_counter_ns``) on a node of the asyncio runtime
  while it runs anti-entropy over real HTTP on loopback with a peer that writes too, and while
  its peers are unreachable; the baseline is the same store with no runtime at all.
- **300 nodes** run in the deterministic simulator: a partition splits the fleet in halves,
  both sides take writes, the network heals, and the wall time to convergence is measured.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import os
import random
import socket
import statistics
import sys
import time
from collections import deque
from pathlib import Path

import microstatedb as msdb
from _harness import fmt_us, table
from _plot import from_rows, plot, writing
from microstatedb.protocols import AntiEntropy, AntiEntropyConfig, Send
from microstatedb.runtime import Node
from microstatedb.runtime.sim import Simulation
from microstatedb.transport import Authenticator

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance-replication.md"
KEY = bytes(range(32))
WRITE_RATE = 100  # writes per second on the cut-off side, for "partition length"


class Pair:
    """Two stores with their protocol objects and authenticators, delivering at once."""

    def __init__(self, a: msdb.Store, b: msdb.Store) -> None:
        cfg = AntiEntropyConfig(fanout=0)
        self.nodes = {
            "a": AntiEntropy("a", a, ["b"], rng=random.Random(1), config=cfg),
            "b": AntiEntropy("b", b, ["a"], rng=random.Random(2), config=cfg),
        }
        self.auth = {n: Authenticator(n, KEY, boot=1) for n in self.nodes}
        self.bytes = 0
        self.messages = 0

    def round(self, opener: str) -> None:
        queue = deque((opener, out) for out in self.nodes[opener].tick(0.0))
        while queue:
            src, item = queue.popleft()
            if not isinstance(item, Send):
                continue
            data = self.auth[src].seal(item.to, item.payload)
            self.bytes += len(data)
            self.messages += 1
            sender, payload = self.auth[item.to].open(data)
            for out in self.nodes[item.to].receive(0.0, sender, payload):
                queue.append((item.to, out))


def _catch_up(base: int, missed: int) -> tuple[float, int, int]:
    """Seconds, bytes and messages for b to catch up ``missed`` events on a ``base`` state."""
    a, b = msdb.Store("a"), msdb.Store("b")
    counters = [a.counter(f"k{i}") for i in range(100)]
    for i in range(base):
        counters[i % 100].increment()
    b.apply(a.events_since(b.version_vector))  # b starts equal (state or events)
    pair = Pair(a, b)
    a.counter("k0").increment()
    pair.round("b")  # warm: a running node has been doing rounds all along
    for i in range(missed):  # the partition: a keeps writing, b hears nothing
        counters[i % 100].increment()
    pair.bytes = pair.messages = 0
    gc.collect()
    t0 = time.perf_counter()
    pair.round("b")
    took = time.perf_counter() - t0
    assert a.digest() == b.digest(), "catch-up did not converge"
    return took, pair.bytes, pair.messages


def bench_catch_up(quick: bool) -> str:
    lengths = [1, 10, 60] if quick else [1, 10, 60, 600]
    rows = []
    for seconds in lengths:
        missed = seconds * WRITE_RATE
        runs = [_catch_up(10_000, missed) for _ in range(3)]
        took = statistics.median(r[0] for r in runs)
        rows.append(
            [
                f"{seconds} s",
                f"{missed:,}",
                f"{took * 1000:.1f}",
                f"{runs[0][1] / 1024:.0f}",
                f"{runs[0][1] / missed:.0f}",
                str(runs[0][2]),
            ]
        )
    sizes = [10_000, 100_000] if quick else [10_000, 100_000, 1_000_000]
    rows2 = []
    for size in sizes:
        runs = [_catch_up(size, 1000) for _ in range(1 if size >= 1_000_000 else 3)]
        took = statistics.median(r[0] for r in runs)
        rows2.append(
            [
                f"{size:,}",
                "1,000",
                f"{took * 1000:.1f}",
                f"{runs[0][1] / 1024:.0f}",
                str(runs[0][2]),
            ]
        )
    return (
        f"### Catch-up versus partition length ({WRITE_RATE} writes/s on the other side, "
        "state of 10,000 events)\n\n"
        + table(
            ["partition", "events missed", "catch-up ms", "KiB moved", "bytes/event", "messages"],
            rows,
        )
        + "\n\n### Catch-up versus state size (1,000 events missed)\n\n"
        + table(["state (events)", "events missed", "catch-up ms", "KiB moved", "messages"], rows2)
    )


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _percentiles(samples: list[int]) -> tuple[float, float]:
    samples.sort()
    return (
        samples[len(samples) // 2] / 1000,
        samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000,
    )


async def _writes_under(mode: str, n: int) -> tuple[float, float, int]:
    """p50 and p99 (µs) of local writes while ``mode`` runs; returns events received too."""
    cfg = AntiEntropyConfig(interval=0.01, max_batch=500)
    a = msdb.Store("a")
    nodes: list[Node] = []
    peer_store = msdb.Store("b")
    if mode == "anti-entropy":
        ports = {"a": _free_port(), "b": _free_port()}
        nodes = [
            Node("a", a, {"b": f"http://127.0.0.1:{ports['b']}"}, key=KEY, config=cfg),
            Node("b", peer_store, {"a": f"http://127.0.0.1:{ports['a']}"}, key=KEY, config=cfg),
        ]
        for node, name in zip(nodes, ("a", "b"), strict=True):
            await node.start("127.0.0.1", ports[name])
    elif mode == "peers unreachable":
        dead = {f"p{i}": f"http://127.0.0.1:{_free_port()}" for i in range(3)}
        nodes = [Node("a", a, dead, key=KEY, config=cfg)]
        await nodes[0].start(port=None)
    counter = a.counter("visits")
    other = peer_store.counter("other")
    clock = time.perf_counter_ns
    samples: list[int] = []
    gc.collect()
    for i in range(n):
        t0 = clock()
        counter.increment()
        samples.append(clock() - t0)
        if i % 50 == 0:
            if mode == "anti-entropy":
                other.increment()  # the peer writes too: batches flow both ways
            await asyncio.sleep(0)  # let the runtime's tasks run between writes
    received = sum(n for o, n in a.version_vector.items() if o != "a")
    for node in nodes:
        await node.stop()
    p50, p99 = _percentiles(samples)
    return p50, p99, received


def bench_local_writes(quick: bool) -> str:
    n = 50_000 if quick else 200_000
    rows = []
    for mode in ("no runtime (baseline)", "anti-entropy", "peers unreachable"):
        runs = [asyncio.run(_writes_under(mode, n)) for _ in range(3)]
        p50 = statistics.median(r[0] for r in runs)
        p99 = statistics.median(r[1] for r in runs)
        rows.append([mode, fmt_us(p50), fmt_us(p99), f"{runs[0][2]:,}"])
    figure = plot(
        "replication",
        "Local writes while replicating: latency per operation",
        from_rows(rows, {"p50": 1, "p99": 2}, axis="µs per counter increment"),
    )
    text = f"### Local write latency ({n:,} counter increments, median of 3 runs, µs)\n\n" + table(
        ["while", "p50", "p99", "remote events applied meanwhile"], rows
    )
    return f"{text}\n\n{figure}"


def _fleet(nodes: int, writes: int, seed: int) -> list[str]:
    sim = Simulation(nodes, seed=seed)
    sim.partition(sim.names[: nodes // 2])
    sim.workload(rate=writes / 5, until=5)
    sim.run(5)
    sim.heal()
    t0 = time.perf_counter()
    took = sim.run_until_converged(300)
    wall = time.perf_counter() - t0
    report = sim.report()
    sim.close()
    assert took is not None, f"no convergence; replay with seed={seed}"
    return [
        str(nodes),
        f"{report.events:,}",
        f"{took:.1f}",
        f"{wall:.1f}",
        f"{report.messages:,}",
        f"{report.bytes / 2**20:.1f}",
    ]


def bench_fleet(quick: bool) -> str:
    cases = [(50, 50), (300, 300)] if quick else [(50, 50), (100, 100), (300, 300), (300, 600)]
    rows = [_fleet(n, w, seed=n + w) for n, w in cases]
    return "### Fleet convergence after a partition heals (simulator)\n\n" + table(
        [
            "nodes",
            "writes during the split",
            "virtual s to converge",
            "wall s to converge",
            "messages (whole run)",
            "MiB (whole run)",
        ],
        rows,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    writing(not args.no_write)  # --no-write leaves the plots alone too
    load = os.getloadavg()[0]
    parts = []
    for name, fn in (
        ("catch-up", bench_catch_up),
        ("local writes", bench_local_writes),
        ("fleet", bench_fleet),
    ):
        print(f"-- {name}", file=sys.stderr, flush=True)
        parts.append(fn(args.quick))
    report = (
        "# Replication\n\n"
        + ("Quick run. " if args.quick else "")
        + "How these are measured: see the docstring of benchmarks/bench_replication.py. "
        + f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores (other "
        + "jobs on a loaded machine make single figures noisy; compare within a table).\n\n"
        + "\n\n".join(parts)
        + "\n"
    )
    print(report)
    if not args.no_write:
        DOC.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
