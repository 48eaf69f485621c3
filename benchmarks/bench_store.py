"""The single-node store: write and read latency, log overhead, replay, memory, a peer library.

Run: ``uv run python benchmarks/bench_store.py`` (prints a report; ``benchmarks/run.py``
writes it into docs/performance.md). Baselines measured in the same run: a plain dict, the
same store with ``log=False``, and the ``eventsourcing`` library (in memory, aggregate cache on).
"""

from __future__ import annotations

import argparse
import gc
import json
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import tracemalloc
from bisect import bisect_left
from collections.abc import Callable
from pathlib import Path
from typing import NamedTuple

import microstatedb as msdb
from _harness import Latency, fmt_us, interleaved, table, throughput
from _plot import from_rows, plot
from microstatedb.log import EventLog


def _store_write(**kwargs: object) -> Callable[[], Callable[[], object]]:
    def make() -> Callable[[], object]:
        folder = kwargs.get("path")
        if folder is not None:
            shutil.rmtree(str(folder), ignore_errors=True)
        store = msdb.Store("bench", **kwargs)  # type: ignore[arg-type]
        counter = store.counter("visits")
        return lambda: counter.increment(1)

    return make


def _dict_write() -> Callable[[], object]:
    d = {"visits": 0}

    def op() -> None:
        d["visits"] += 1

    return op


def _eventsourcing_counter() -> type:
    from eventsourcing.domain import Aggregate, event

    class Counter(Aggregate):  # type: ignore[misc]
        def __init__(self) -> None:
            self.count = 0

        @event("Incremented")
        def increment(self, n: int) -> None:
            self.count += n

    return Counter


_COUNTER: list[type] = []


def _eventsourcing_write() -> Callable[[], object]:
    from eventsourcing.application import Application

    if not _COUNTER:  # the library registers a class once per topic
        _COUNTER.append(_eventsourcing_counter())
    app = Application(env={"AGGREGATE_CACHE_MAXSIZE": "1000", "IS_SNAPSHOTTING_ENABLED": "n"})
    counter = _COUNTER[0]()
    app.save(counter)
    cid = counter.id

    def op() -> None:
        c = app.repository.get(cid)
        c.increment(1)
        app.save(c)

    return op


def _row(name: str, lat: Latency, base: Latency | None) -> list[str]:
    ratio = f"{lat.mean / base.mean:.2f}×" if base else "1.00×"
    return [name, fmt_us(lat.p50), fmt_us(lat.p99), fmt_us(lat.mean), ratio]


def bench_writes(ops: int, repeats: int, tmp: Path) -> tuple[str, dict[str, float]]:
    figures: dict[str, float] = {}
    few = max(500, ops // 20)
    cases = {
        "plain dict `d[k] += 1` (baseline)": (lambda: _dict_write(), ops, 1_000),
        "Store in memory, counter.increment": (_store_write(), ops, 1_000),
        "Store in memory, log=False": (_store_write(log=False), ops, 1_000),
        **{
            f"Store durable `{policy}`": (
                _store_write(path=tmp / f"w-{policy}", durability=policy),
                few if policy == "always" else ops,
                100,
            )
            for policy in ("none", "batch", "always")
        },
        "Store durable, log=False (snapshots only)": (
            _store_write(path=tmp / "w-nolog", durability="batch", log=False),
            ops,
            1_000,
        ),
        "eventsourcing 9 (memory, aggregate cache)": (
            lambda: _eventsourcing_write(),
            max(2000, ops // 10),
            100,
        ),
    }
    measured = interleaved(cases, repeats)
    base = measured["plain dict `d[k] += 1` (baseline)"]
    rows = [_row(name, lat, None if lat is base else base) for name, lat in measured.items()]
    mem = measured["Store in memory, counter.increment"]
    figures["mem_p99"] = mem.p99
    for policy in ("none", "batch", "always"):
        figures[f"durable_{policy}_p99"] = measured[f"Store durable `{policy}`"].p99
    figures["vs_eventsourcing"] = (
        measured["eventsourcing 9 (memory, aggregate cache)"].mean / mem.mean
    )
    durable = {"path": str(tmp / "pair"), "durability": "batch"}
    chunk = ops * 5 // 2  # 50,000 writes: the stores' snapshot_every
    measured_overheads = {
        "mem": paired_overhead({}, chunk),
        "mem_mixed": paired_overhead({}, chunk, mix="mixed"),
        "durable": paired_overhead(durable, chunk),
        "durable_mixed": paired_overhead(durable, chunk, mix="mixed"),
    }
    for name, o in measured_overheads.items():
        figures[f"overhead_{name}"] = o.ratio
        figures[f"overhead_{name}_us"] = o.extra_us
        figures[f"overhead_{name}_lowest"] = o.lowest
        figures[f"overhead_{name}_highest"] = o.highest
    figures["python_path"] = paired_overhead({}, chunk, mix="mixed", python_path=True).ratio
    text = table(["write", "p50 µs", "p99 µs", "mean µs", "mean vs dict"], rows)
    text += (
        f"\n\nEvent-sourcing overhead (log vs log=False, both through the compiled write "
        f"path; median of {PAIRS_PER_LAYOUT * LAYOUTS} pairs of {chunk:,}-write chunks that "
        "alternate between two open stores, with the garbage collector on, in "
        f"{LAYOUTS} processes whose environments differ in size, so "
        "that no one memory layout decides the figure). Counter "
        "increments, the cheapest write and so "
        f"the largest ratio: in memory {figures['overhead_mem']:.2f}× "
        f"(+{figures['overhead_mem_us']:.2f} µs per write), durable `batch` "
        f"{figures['overhead_durable']:.2f}× (+{figures['overhead_durable_us']:.2f} µs). "
        "A mix of counter, register, set and map writes: in memory "
        f"{figures['overhead_mem_mixed']:.2f}×, durable `batch` "
        f"{figures['overhead_durable_mixed']:.2f}×. "
        f"`eventsourcing` takes {figures['vs_eventsourcing']:.1f}× as long per operation as the "
        "in-memory store. Without the compiled write path (a source install with no C "
        f"compiler), the mixed writes take {figures['python_path']:.2f}× as long in memory."
        "\n\n"
        + table(
            ["log overhead", "median", "lowest layout", "highest layout", "extra µs per write"],
            [
                [
                    label,
                    f"{figures[f'overhead_{name}']:.2f}×",
                    f"{figures[f'overhead_{name}_lowest']:.2f}×",
                    f"{figures[f'overhead_{name}_highest']:.2f}×",
                    f"{figures[f'overhead_{name}_us']:.3f}",
                ]
                for name, label in (
                    ("mem", "memory, counter"),
                    ("mem_mixed", "memory, mixed"),
                    ("durable", "durable `batch`, counter"),
                    ("durable_mixed", "durable `batch`, mixed"),
                )
            ],
        )
    )
    plot(
        "store-writes",
        "Local writes: latency per operation",
        from_rows(
            rows,
            {"p50": 1, "p99": 2},
            axis="µs per operation",
            baselines=(0, -1),  # the plain dict and eventsourcing
            note=lambda r: f"mean {r[4]}",
        ),
    )
    return text, figures


def _workload(store: msdb.Store, mix: str) -> Callable[[int], object]:
    """One write per call: counter increments only, or a mix of the CRDT types."""
    counter = store.counter("visits")
    if mix == "counter":
        return lambda i: counter.increment(1)
    register, members, cart = store.register("name"), store.set("members"), store.map("cart")
    items = cart.counter("items")
    ops: list[Callable[[int], object]] = [
        lambda i: counter.increment(1),
        lambda i: register.set(i),
        lambda i: members.add(i % 64),
        lambda i: items.increment(1),
    ]
    return lambda i: ops[i & 3](i)


class _PythonPathStore(msdb.Store):
    """The store with its write path in Python: what runs where the extension is not built."""

    _native = False


LAYOUTS = 8
"""Child processes the overhead pairs are spread over, each with an environment of a different
size. The C stack then starts at another offset, and that alone moved the in-memory counter's
ratio between 1.10× and 1.22× from one process to the next: the measurement bias from memory
layout that Mytkowicz et al. describe ("Producing Wrong Data Without Doing Anything Obviously
Wrong!", ASPLOS 2009). A median over layouts does not depend on which one a run happens to get.
"""
PAIRS_PER_LAYOUT = 8


class Overhead(NamedTuple):
    """The log's cost against ``log=False`` (or the Python path's against the compiled one)."""

    ratio: float
    """Median over all pairs of (time with the log) / (time without)."""
    extra_us: float
    """Median extra time per write, in µs."""
    lowest: float
    """The lowest median ratio of one layout."""
    highest: float
    """The highest median ratio of one layout."""


def _pairs(
    kwargs: dict[str, object], ops: int, pairs: int, mix: str, python_path: bool
) -> list[tuple[float, float]]:
    """(ratio, extra µs per write) of each of ``pairs`` pairs of chunks of ``ops`` writes.

    Both stores stay open and their chunks alternate, the first of each pair taking turns.
    The benchmark machine runs fast and slow for stretches of about a tenth of a second
    (1.7× apart), so a ratio of two whole runs one after the other says more about the
    stretch each fell in than about the log. ``ops`` is the stores' ``snapshot_every``, so
    a chunk takes its share of snapshots: one, in its middle, so that what a ``batch`` log's
    commit thread does for it (flushing the log, writing the file) falls inside the chunk
    too. In memory a chunk is written in five parts that
    alternate with the other store's, a few milliseconds each. Durable, a chunk is written
    whole and its pending events are made durable outside the timing before the other
    store's chunk: had the commit thread run on into the other chunk, its cost would land on
    both sides; this way at most one commit interval's work per chunk (a few percent of it)
    goes uncounted.
    """
    configs = [(msdb.Store, True), (msdb.Store, False)]
    if python_path:
        configs = [(_PythonPathStore, True), (msdb.Store, True)]
    stores = []
    for k, (cls, log) in enumerate(configs):
        own = dict(kwargs)
        if "path" in own:
            own["path"] = f"{own['path']}-{k}"
            shutil.rmtree(str(own["path"]), ignore_errors=True)
        stores.append(cls("bench", log=log, **own))  # type: ignore[arg-type]
    writes = [_workload(store, mix) for store in stores]
    out = []
    try:
        for write, store in zip(writes, stores, strict=True):
            for i in range(ops // 2):  # so that each chunk's snapshot falls in its middle
                write(i)
            store.flush()
        gc.collect()
        parts = 1 if "path" in kwargs else 5
        for k in range(pairs):
            times = [0.0, 0.0]
            for _ in range(parts):
                for j in (0, 1) if k % 2 == 0 else (1, 0):
                    write = writes[j]
                    t0 = time.perf_counter()
                    for i in range(ops // parts):
                        write(i)
                    times[j] += time.perf_counter() - t0
                    stores[j].flush()  # durable: outside the timing, see above
            out.append((times[0] / times[1], (times[0] - times[1]) / ops * 1e6))
    finally:
        for store in stores:
            store.close()
    return out


def paired_overhead(
    kwargs: dict[str, str],
    ops: int,
    pairs: int = PAIRS_PER_LAYOUT,
    mix: str = "counter",
    python_path: bool = False,
    layouts: int = LAYOUTS,
) -> Overhead:
    """The log's overhead over ``pairs`` pairs of ``ops``-write chunks (see ``_pairs``) in each
    of ``layouts`` child processes (see ``LAYOUTS``). With ``python_path``, the store with its
    write path in Python against the compiled one, both with the log."""
    every: list[tuple[float, float]] = []
    medians = []
    for k in range(layouts):
        child = dict(kwargs)
        if "path" in child:
            child["path"] = f"{child['path']}-{k}"
        spec = {"kwargs": child, "ops": ops, "pairs": pairs, "mix": mix, "python": python_path}
        env = dict(os.environ, MSDB_BENCH_LAYOUT="x" * (k * 4096 // layouts))
        done = subprocess.run(
            [sys.executable, __file__, "--pairs", json.dumps(spec)],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        )
        got = [(r, e) for r, e in json.loads(done.stdout)]
        every += got
        medians.append(statistics.median(r for r, _ in got))
    return Overhead(
        statistics.median(r for r, _ in every),
        statistics.median(e for _, e in every),
        min(medians),
        max(medians),
    )


def bench_reads(ops: int, repeats: int) -> tuple[str, dict[str, float]]:
    d = {"visits": 41}

    def make_store_read() -> Callable[[], object]:
        store = msdb.Store("bench")
        store.counter("visits").increment(41)
        return lambda: store.counter("visits").value

    def make_set_read() -> Callable[[], object]:
        store = msdb.Store("bench")
        store.set("tags").add("vip")
        return lambda: "vip" in store.set("tags")

    measured = interleaved(
        {
            "dict": (lambda: lambda: d["visits"], ops, 1_000),
            "counter": (make_store_read, ops, 1_000),
            "set": (make_set_read, ops, 1_000),
        },
        repeats,
    )
    base, lat, lat_set = measured["dict"], measured["counter"], measured["set"]
    rows = [
        _row("plain dict `d[k]` (baseline)", base, None),
        _row('`store.counter("visits").value`', lat, base),
        _row('`"vip" in store.set("tags")`', lat_set, base),
    ]
    plot(
        "store-reads",
        "Local reads: latency per operation",
        from_rows(
            rows, {"p50": 1, "p99": 2}, axis="µs per operation", note=lambda r: f"mean {r[4]}"
        ),
    )
    return table(["read", "p50 µs", "p99 µs", "mean µs", "mean vs dict"], rows), {
        "read_p99": lat.p99
    }


def bench_replay(events: int, tmp: Path) -> tuple[str, dict[str, float]]:
    folder = tmp / "replay"
    shutil.rmtree(folder, ignore_errors=True)
    with msdb.Store("r", path=folder, durability="none", snapshot_every=10**9) as s:
        c = s.counter("n")
        for _ in range(events):
            c.increment()
    full = throughput(lambda: _reopen(folder))
    with msdb.Store("r", path=folder, durability="none") as s:
        s.snapshot()
        c = s.counter("n")
        for _ in range(events // 10):
            c.increment()
    tail = throughput(lambda: _reopen(folder, expect_events=events // 10))
    rows = [
        ["full replay from the log", f"{full:,.0f}"],
        ["snapshot plus a tail of 10%", f"{tail:,.0f} (tail events/s)"],
    ]
    return table(["open", "events per second"], rows), {"replay_eps": full}


def _reopen(folder: Path, expect_events: int | None = None) -> int:
    with msdb.Store("r", path=folder, durability="none") as s:
        n = sum(s.version_vector.values())
    return expect_events if expect_events is not None else n


def bench_memory(events: int) -> tuple[str, dict[str, float]]:
    rows = []
    figures = {}
    for label, kwargs in (
        ("retained (snapshot_every larger than the run)", {"snapshot_every": 10**9}),
        ("bounded (snapshot every 50,000)", {"snapshot_every": 50_000}),
    ):
        tracemalloc.start()
        s = msdb.Store("m", **kwargs)  # type: ignore[arg-type]
        c = s.counter("n")
        for _ in range(events):
            c.increment()
        current, _peak = tracemalloc.get_traced_memory()
        tracemalloc.stop()
        per_million = current / events * 1_000_000 / 2**20
        rows.append([label, f"{current / 2**20:.1f}", f"{per_million:.1f}"])
        figures[label.split()[0]] = per_million
        s.close()
    return table(
        [f"in-memory store after {events:,} events", "MiB held", "MiB per million events"], rows
    ), figures


def _lag(folder: Path, paced: bool, seconds: float) -> list[float]:
    """How far durability trails a writer under ``batch``: every 500 writes, the age in ms of
    the newest event the log has fsynced (the writes a crash at that moment would take)."""
    shutil.rmtree(folder, ignore_errors=True)
    store = msdb.Store("lag", path=folder, durability="batch")
    write = _workload(store, "mixed")
    log = store._log
    times: list[float] = []
    appended: list[int] = []
    lags: list[float] = []
    i = 0
    stop = time.perf_counter() + seconds
    while time.perf_counter() < stop:
        for _ in range(500):
            write(i)
            i += 1
        if paced:  # a service that also waits on the network: 500 writes a millisecond
            time.sleep(0.001)
        now = time.perf_counter()
        durable = log._durable
        k = bisect_left(appended, durable)
        if k < len(times):  # the first sample at which the newest durable event existed
            lags.append((now - times[k]) * 1000)
        times.append(now)
        appended.append(log.next_position)
    store.close()
    return lags


def bench_durability_lag(tmp: Path, seconds: float) -> tuple[str, dict[str, float]]:
    """The ``batch`` window under load, with the compiled commit and with the Python one."""
    figures: dict[str, float] = {}
    rows = []
    for paced in (False, True):
        measured = {}
        for native in (True, False):
            before = EventLog._native_frames
            EventLog._native_frames = native and before
            try:
                lags = sorted(_lag(tmp / "lag", paced, seconds))
            finally:
                EventLog._native_frames = before
            measured[native] = (statistics.median(lags), lags[int(len(lags) * 0.99)])
        name = "paced" if paced else "saturating"
        (p50, p99), (base50, base99) = measured[True], measured[False]
        figures[f"lag_{name}_p50"], figures[f"lag_{name}_p99"] = p50, p99
        writer = (
            "500 mixed writes, then 1 ms asleep"
            if paced
            else "mixed writes as fast as one thread goes"
        )
        rows.append(
            [
                writer,
                f"{p50:.1f}",
                f"{p99:.1f}",
                f"{base50:.1f}",
                f"{base99:.1f}",
                f"{p50 / base50:.2f}×",
            ]
        )
    text = (
        f"The age of the newest event an fsync has covered, sampled every 500 writes for "
        f"{seconds:g} s: what a crash at that moment would lose. Baseline: the same writer "
        "with the Python commit (a build without the C extension), in the same run.\n\n"
    ) + table(
        [
            "writer (durable `batch`, 5 ms interval)",
            "p50 ms",
            "p99 ms",
            "Python commit p50 ms",
            "Python commit p99 ms",
            "p50 vs Python commit",
        ],
        rows,
    )
    return text, figures


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    parser.add_argument("--pairs", metavar="SPEC", help=argparse.SUPPRESS)  # a layout's child
    args = parser.parse_args(argv)
    if args.pairs:
        spec = json.loads(args.pairs)
        got = _pairs(spec["kwargs"], spec["ops"], spec["pairs"], spec["mix"], spec["python"])
        print(json.dumps(got))
        return {}
    ops, repeats, events = (2_000, 3, 20_000) if args.quick else (20_000, 5, 300_000)
    lag_seconds = 0.5 if args.quick else 3.0
    tmp = Path(tempfile.mkdtemp(prefix="msdb-bench-"))
    try:
        sections = []
        figures: dict[str, float] = {}
        for title, (text, figs) in (
            ("Local writes", bench_writes(ops, repeats, tmp)),
            ("Local reads", bench_reads(ops, repeats)),
            ("Replay", bench_replay(events, tmp)),
            ("Memory", bench_memory(events)),
            ("How far durability trails the writer", bench_durability_lag(tmp, lag_seconds)),
        ):
            sections.append(f"### {title}\n\n{text}\n")
            figures.update(figs)
            print(f"### {title}\n\n{text}\n", flush=True)
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    targets = table(
        ["target (issue)", "goal", "measured", "met"],
        [
            _target("in-memory write p99", "< 50 µs", figures["mem_p99"], 50, "µs"),
            _target("read p99", "< 5 µs", figures["read_p99"], 5, "µs"),
            _target("log overhead, memory, counter", "≤ 1.10×", figures["overhead_mem"], 1.10, "×"),
            _target(
                "log overhead, memory, mixed", "≤ 1.10×", figures["overhead_mem_mixed"], 1.10, "×"
            ),
            _target(
                "log overhead, durable batch, counter",
                "≤ 1.10×",
                figures["overhead_durable"],
                1.10,
                "×",
            ),
            _target(
                "log overhead, durable batch, mixed",
                "≤ 1.10×",
                figures["overhead_durable_mixed"],
                1.10,
                "×",
            ),
            [
                "vs eventsourcing (mean)",
                "≥ 10× (goal 20×)",
                f"{figures['vs_eventsourcing']:.1f}×",
                "yes" if figures["vs_eventsourcing"] >= 10 else "no",
            ],
        ],
    )
    sections.insert(0, f"### Targets\n\n{targets}\n")
    print(f"### Targets\n\n{targets}\n")
    main.report = "\n".join(sections)  # type: ignore[attr-defined]
    return figures


def _target(name: str, goal: str, value: float, bound: float, unit: str) -> list[str]:
    shown = f"{value:.2f} {unit}" if unit == "µs" else f"{value:.2f}×"
    return [name, goal, shown, "yes" if value <= bound else "no"]


if __name__ == "__main__":
    main()
