"""Linearizability checking speed: our checker against a plain reference search, same histories.

Run: ``uv run python benchmarks/bench_verify.py`` (``--quick`` for a short run). It prints a
report and writes it to docs/performance-verify.md.

The *plain reference search* is the textbook Wing-Gong-Lowe algorithm as one would first write
it in Python: one search over the whole history (no split by key), a linked list of entry
objects, the model's state a map of every key, and a cache of visited (linearized set, state)
pairs. Ours adds P-compositionality (parts searched in turn, the first violation stops the
rest), entries as flat lists, and per-key states. Each history is checked by both, one after
the other, in the same process; a check's time is the median wall time (``perf_counter``) of
three runs (one run when it takes over 0.2 s), and p50/p99 are over the histories of a set.
Porcupine's published per-file times (Go, 2-core machine, from
the corpus manifest) are the anchor for the etcd files.
"""

from __future__ import annotations

import argparse
import csv
import gc
import os
import platform
import random
import statistics
import sys
import time
from collections.abc import Hashable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from _plot import Panel, plot, writing
from microstatedb.verify import (
    History,
    Operation,
    SequentialModel,
    Verdict,
    check_linearizable,
    synthetic_history,
)
from microstatedb.verify._models import model_named

ROOT = Path(__file__).resolve().parent.parent
DOC = ROOT / "docs" / "performance-verify.md"
CORPUS = ROOT / "tests" / "fixtures" / "porcupine"


# -- the plain reference search ----------------------------------------------------------------


class _Entry:
    __slots__ = ("match", "next", "op", "prev")

    def __init__(self, op: Operation | None) -> None:
        self.op = op
        self.match: _Entry | None = None  # a call's return entry
        self.prev: _Entry | None = None
        self.next: _Entry | None = None


def reference_check(
    ops: Sequence[Operation], model: SequentialModel, deadline: float
) -> bool | None:
    """Textbook WGL over the whole history; None when ``deadline`` (perf_counter) passes."""
    kept = [op for op in ops if not (op.status == "fail" and op.f not in model.keeps_failed)]
    points: list[tuple[int, int, int, _Entry]] = []
    for i, op in enumerate(kept):
        call = _Entry(op)
        points.append((op.call, 0, i, call))
        if op.ret is not None:
            ret = _Entry(None)
            call.match = ret
            points.append((op.ret, 1, i, ret))
    points.sort(key=lambda p: p[:3])
    head = _Entry(None)
    prev = head
    for *_, entry in points:
        prev.next = entry
        entry.prev = prev
        prev = entry
    index = {id(op): i for i, op in enumerate(kept)}
    # the state of the whole map: a sorted tuple of (key, value) pairs
    state: tuple[tuple[Hashable, Hashable], ...] = ()
    left = sum(1 for op in kept if op.ret is not None)
    linearized = 0
    cache: set[tuple[int, tuple[tuple[Hashable, Hashable], ...]]] = set()
    stack: list[tuple[_Entry, tuple[tuple[Hashable, Hashable], ...]]] = []
    entry = head.next
    steps = 0
    while left:
        steps += 1
        if steps % 4096 == 0 and time.perf_counter() > deadline:
            return None
        if entry is not None and entry.op is not None:
            op = entry.op
            key = model.partition(op)
            current = dict(state)
            legal, new = model.step(current.get(key, model.init()), op)
            if legal:
                current[key] = new
                new_state = tuple(sorted(current.items(), key=repr))
                bits = linearized | 1 << index[id(op)]
                if (bits, new_state) not in cache:
                    cache.add((bits, new_state))
                    stack.append((entry, state))
                    state, linearized = new_state, bits
                    left -= op.ret is not None
                    for e in (entry, entry.match):  # lift the call and its return
                        if e is not None:
                            assert e.prev is not None
                            e.prev.next = e.next
                            if e.next is not None:
                                e.next.prev = e.prev
                    entry = head.next
                    continue
            entry = entry.next
            continue
        if not stack:
            return False
        entry, state = stack.pop()
        assert entry.op is not None
        linearized &= ~(1 << index[id(entry.op)])
        left += entry.op.ret is not None
        for e in (entry.match, entry):  # put them back, return first
            if e is not None:
                assert e.prev is not None
                e.prev.next = e
                if e.next is not None:
                    e.next.prev = e
        entry = entry.next
    return True


# -- measuring ---------------------------------------------------------------------------------


@dataclass
class Case:
    name: str
    ops: list[Operation]
    model: str
    expected: bool | None
    porcupine_ms: float | None = None


@dataclass
class Timing:
    seconds: list[float]
    ops: int
    unfinished: int
    wrong: int

    def p(self, q: float) -> float:
        s = sorted(self.seconds)
        return s[min(len(s) - 1, int(q * len(s)))] * 1000.0

    @property
    def rate(self) -> float:
        return self.ops / sum(self.seconds)


def _timed(check: Any) -> tuple[float, Any]:
    """Median wall time of up to three runs (one when a run takes over 0.2 s): noise guard."""
    times = []
    result = None
    for _ in range(3):
        gc.collect()
        t0 = time.perf_counter()
        result = check()
        times.append(time.perf_counter() - t0)
        if times[-1] > 0.2:
            break
    return statistics.median(times), result


def run_set(cases: list[Case], limit: float) -> tuple[Timing, Timing]:
    ours = Timing([], 0, 0, 0)
    ref = Timing([], 0, 0, 0)
    for case in cases:
        model = model_named(case.model)
        seconds, result = _timed(
            lambda c=case, m=model: check_linearizable(c.ops, m, timeout=limit, explain=False)
        )
        ours.seconds.append(seconds)
        ours.ops += len(case.ops)
        if result.verdict is Verdict.UNKNOWN:
            ours.unfinished += 1
        elif case.expected is not None and result.ok is not case.expected:
            ours.wrong += 1
        seconds, verdict = _timed(
            lambda c=case, m=model: reference_check(c.ops, m, time.perf_counter() + limit)
        )
        ref.seconds.append(seconds)
        ref.ops += len(case.ops)
        if verdict is None:
            ref.unfinished += 1
        elif case.expected is not None and verdict is not case.expected:
            ref.wrong += 1
    return ours, ref


def corpus_cases() -> list[Case]:
    with open(CORPUS / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    cases = []
    for row in rows:
        if row["porcupine_expected_linearizable"] not in ("true", "false"):
            continue
        path = row["path"]
        fmt, model = ("jepsen-log", "register") if path.endswith(".log") else ("edn", "kv-append")
        ms = row["go_porcupine_ms(2-core)"]
        cases.append(
            Case(
                path,
                History.load(CORPUS / path, fmt).operations(),
                model,
                row["porcupine_expected_linearizable"] == "true",
                float(ms) if ms not in ("", "-") else None,
            )
        )
    return cases


def synthetic_cases(n: int, ops: int, clients: int, keys: int, seed: int) -> list[Case]:
    cases = []
    for i in range(n):
        rng = random.Random(seed + i)
        bad = i % 2 == 1
        h = synthetic_history(
            rng, operations=ops, clients=clients, keys=keys, info_rate=0.02, stale_read=bad
        )
        cases.append(Case(f"synthetic-{i}", h.operations(), "kv", not bad))
    return cases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="fewer histories")
    parser.add_argument("--limit", type=float, default=30.0, help="seconds per check (each)")
    parser.add_argument("--no-write", action="store_true", help="do not write the docs page")
    args = parser.parse_args()
    writing(not args.no_write)  # --no-write leaves the plots alone too
    n = 2 if args.quick else 6
    sets: list[tuple[str, list[Case]]] = [
        ("Porcupine corpus: 102 etcd + 6 kv histories", corpus_cases()),
        (
            f"{n} synthetic histories, 1,000 ops, 10 clients, 10 keys (half with a stale read)",
            synthetic_cases(n, 1_000, 10, 10, 100),
        ),
        (
            f"{n} synthetic histories, 10,000 ops, 10 clients, 10 keys (half with a stale read)",
            synthetic_cases(n, 10_000, 10, 10, 200),
        ),
        (
            f"{n} synthetic histories, 2,000 ops, 10 clients, 1 key (half with a stale read)",
            synthetic_cases(n, 2_000, 10, 1, 300),
        ),
    ]
    lines = [
        "# Performance: linearizability checking",
        "",
        "Written by `uv run python benchmarks/bench_verify.py`"
        + (" --quick" if args.quick else "")
        + "; both checkers run in the same process on the same histories.",
        "",
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} cores,"
        f" load average {os.getloadavg()[0]:.1f} at the start (the machine is shared),"
        f" Python {platform.python_version()}.",
        "",
        "Each history is checked by our `check_linearizable` (explanations off) and then by the",
        "plain reference search (textbook Wing-Gong-Lowe over the whole history, no split by key,",
        "memoized). p50/p99 are of the per-history check time (median of three runs when under",
        "0.2 s); ops/s is operations checked per",
        f"second of checking. A check gives up after {args.limit:.0f} s (counted as unfinished,",
        "its time included).",
        "",
        "| histories | checker | p50 (ms) | p99 (ms) | ops/s | unfinished | wrong |",
        "| --- | --- | ---: | ---: | ---: | ---: | ---: |",
    ]
    ratios = []
    panels: list[Panel] = []
    corpus_ours: Timing | None = None
    for title, cases in sets:
        ours, ref = run_set(cases, args.limit)
        if corpus_ours is None:
            corpus_ours = ours
        for name, t in (("microstatedb", ours), ("plain reference", ref)):
            lines.append(
                f"| {title} | {name} | {t.p(0.5):.2f} | {t.p(0.99):.2f} | {t.rate:,.0f}"
                f" | {t.unfinished} | {t.wrong} |"
            )
        ratios.append(
            f"* {title}: ours is {ours.rate / ref.rate:.1f}x the reference's ops/s"
            f" (total {sum(ours.seconds):.2f} s against {sum(ref.seconds):.2f} s)"
        )
        print(lines[-2], lines[-1], sep="\n", flush=True)
        panels.append(
            Panel(
                title,
                "ms per history",
                ["microstatedb", "plain reference"],
                {"p50": [ours.p(0.5), ref.p(0.5)], "p99": [ours.p(0.99), ref.p(0.99)]},
                baselines=["plain reference"],
                notes=[f"{ours.rate / ref.rate:.1f}x the reference's ops/s", ""],
            )
        )
    figure = plot("verify", "Linearizability checking: time per history", *panels)
    lines += ["", figure, "", "Ratios (same run):", "", *ratios]
    assert corpus_ours is not None
    etcd = [c for c in sets[0][1] if c.porcupine_ms is not None]
    ours_etcd = [s for c, s in zip(sets[0][1], corpus_ours.seconds, strict=True) if c in etcd]
    go_total = sum(c.porcupine_ms or 0 for c in etcd) / 1000.0
    per_file = [
        (s * 1000.0) / (c.porcupine_ms or 1e-9) for c, s in zip(etcd, ours_etcd, strict=True)
    ]
    lines += [
        "",
        "Against Porcupine (Go), the anchor: on the 102 etcd files, Porcupine's published times"
        f" (2-core machine) sum to {go_total:.2f} s; ours sum to {sum(ours_etcd):.2f} s here."
        f" Per file, our time / Porcupine's has median {statistics.median(per_file):.2f}"
        f" and maximum {max(per_file):.2f}.",
        "",
        "Goal from the issue: a 10,000-operation history with 10 clients over 10 keys in under"
        " 2 s; see the 10,000-ops row (p99 is the slowest of those histories).",
        "",
        "What the figures say:",
        "",
        "* Splitting by key is what makes long histories cheap: each key's part is short and"
        " mostly sequential, so the search rarely backtracks; the whole-history search carries"
        " every key's operations in one bitset and one state, and a violation on one key makes"
        " it backtrack through all the others.",
        "* A single hot key is the hard case for any Wing-Gong-Lowe search: refuting a stale"
        " read at the end of a long single-key history means visiting every reachable"
        " configuration before it, and operations with unknown outcome (which may take effect"
        " at any later time, or never) multiply those configurations. Reads that are legal are"
        " placed at once without branching, which divides the configurations of such"
        " refutations by two to five; keep `--timeout` for histories of this shape.",
        "* On the etcd files, where parts cannot help (one key), both searches are the same"
        " algorithm; the difference is the flat entry lists and the placed-read rule.",
    ]
    report = "\n".join(lines) + "\n"
    print()
    print(report)
    if not args.no_write:
        DOC.write_text(report)
    return 0


if __name__ == "__main__":
    sys.exit(main())
