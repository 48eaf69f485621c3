"""The single-node store: write and read latency, log overhead, replay, memory, a peer library.

Run: ``uv run python benchmarks/bench_store.py`` (prints a report; ``benchmarks/run.py``
writes it into docs/performance.md). Baselines measured in the same run: a plain dict, the
same store with ``log=False``, and the ``eventsourcing`` library (in memory, aggregate cache on).
"""

from __future__ import annotations

import argparse
import gc
import shutil
import statistics
import tempfile
import time
import tracemalloc
from collections.abc import Callable
from pathlib import Path

import microstatedb as msdb
from _harness import Latency, fmt_us, interleaved, table, throughput
from _plot import from_rows, plot


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
    figures["overhead_mem"], figures["overhead_mem_us"] = paired_overhead({}, ops * 5)
    figures["overhead_mem_mixed"], _ = paired_overhead({}, ops * 5, mix="mixed")
    durable = {"path": tmp / "pair", "durability": "batch"}
    figures["overhead_durable"], figures["overhead_durable_us"] = paired_overhead(durable, ops * 2)
    figures["overhead_durable_mixed"], _ = paired_overhead(durable, ops * 2, mix="mixed")
    figures["python_path"], _ = paired_overhead(
        {}, ops * 5, mix="mixed", sides=(_PythonPathStore, msdb.Store)
    )
    text = table(["write", "p50 µs", "p99 µs", "mean µs", "mean vs dict"], rows)
    text += (
        f"\n\nEvent-sourcing overhead (log vs log=False, both through the compiled write "
        "path; median of interleaved pairs of runs with the garbage collector on). Counter "
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


def paired_overhead(
    kwargs: dict[str, object],
    ops: int,
    pairs: int = 15,
    mix: str = "counter",
    sides: tuple[type[msdb.Store], type[msdb.Store]] | None = None,
) -> tuple[float, float]:
    """Median over interleaved pairs of (time with the log) / (time with log=False), and the
    median extra time per write in µs. With ``sides``, the two store classes compared
    instead, both with the log.

    Interleaving puts both sides of each ratio under the same machine load, which a
    sequential run of one configuration after the other cannot promise here.
    """
    configs = [(msdb.Store, True), (msdb.Store, False)]
    if sides is not None:
        configs = [(sides[0], True), (sides[1], True)]
    ratios, extra = [], []
    for _ in range(pairs):
        times = []
        for cls, log in configs:
            folder = kwargs.get("path")
            if folder is not None:
                shutil.rmtree(str(folder), ignore_errors=True)
            store = cls("bench", log=log, **kwargs)  # type: ignore[arg-type]
            write = _workload(store, mix)
            gc.collect()
            t0 = time.perf_counter()
            for i in range(ops):
                write(i)
            times.append(time.perf_counter() - t0)
            store.close()
        ratios.append(times[0] / times[1])
        extra.append((times[0] - times[1]) / ops * 1e6)
    return statistics.median(ratios), statistics.median(extra)


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


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="fewer operations (smoke run)")
    args = parser.parse_args(argv)
    ops, repeats, events = (2_000, 3, 20_000) if args.quick else (20_000, 5, 300_000)
    tmp = Path(tempfile.mkdtemp(prefix="msdb-bench-"))
    try:
        sections = []
        figures: dict[str, float] = {}
        for title, (text, figs) in (
            ("Local writes", bench_writes(ops, repeats, tmp)),
            ("Local reads", bench_reads(ops, repeats)),
            ("Replay", bench_replay(events, tmp)),
            ("Memory", bench_memory(events)),
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
