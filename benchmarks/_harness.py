"""Shared timing helpers: per-operation latencies, repeated runs, medians and ratios.

These machines are noisy, so every figure is the median over ``repeats`` runs, and every
comparison is a ratio against a baseline measured in the same process and run.
"""

from __future__ import annotations

import gc
import statistics
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass


@dataclass(frozen=True)
class Latency:
    """Median p50 and p99 over repeated runs, in microseconds."""

    p50: float
    """Median over runs of the per-run 50th percentile."""
    p99: float
    """Median over runs of the per-run 99th percentile."""
    mean: float
    """Median over runs of the per-run mean (total time / operations)."""


def _percentile(sorted_ns: list[int], q: float) -> float:
    i = min(len(sorted_ns) - 1, int(q * len(sorted_ns)))
    return sorted_ns[i] / 1000.0


def _run(op: Callable[[], object], ops: int, warmup: int) -> tuple[float, float, float]:
    """One timed run: (p50, p99, mean) in microseconds."""
    clock = time.perf_counter_ns
    for _ in range(warmup):
        op()
    samples = [0] * ops
    gc.collect()
    start_all = clock()
    for i in range(ops):
        t0 = clock()
        op()
        samples[i] = clock() - t0
    total = clock() - start_all
    samples.sort()
    return _percentile(samples, 0.50), _percentile(samples, 0.99), total / ops / 1000.0


def _median(runs: list[tuple[float, float, float]]) -> Latency:
    p50s, p99s, means = zip(*runs, strict=True)
    return Latency(statistics.median(p50s), statistics.median(p99s), statistics.median(means))


def interleaved(
    cases: Mapping[str, tuple[Callable[[], Callable[[], object]], int, int]],
    repeats: int = 5,
) -> dict[str, Latency]:
    """Per-operation latency of several ``name: (make, ops, warmup)`` cases: ``repeats``
    rounds, each timing ``ops`` calls of the operation a fresh ``make()`` returns.

    Each round runs every case once, so all of them see the same machine load; run one case
    after another instead and a slower minute on a shared machine lands on one of them only.
    """
    runs: dict[str, list[tuple[float, float, float]]] = {name: [] for name in cases}
    for _ in range(repeats):
        for name, (make, ops, warmup) in cases.items():
            runs[name].append(_run(make(), ops, warmup))
    return {name: _median(r) for name, r in runs.items()}


def throughput(run: Callable[[], int], repeats: int = 3) -> float:
    """Median items per second of ``run()`` (which returns how many items it processed)."""
    rates = []
    for _ in range(repeats):
        gc.collect()
        t0 = time.perf_counter()
        n = run()
        rates.append(n / (time.perf_counter() - t0))
    return statistics.median(rates)


def fmt_us(x: float) -> str:
    return f"{x:.2f}"


def table(header: list[str], rows: list[list[str]]) -> str:
    out = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    out += ["| " + " | ".join(r) + " |" for r in rows]
    return "\n".join(out)
