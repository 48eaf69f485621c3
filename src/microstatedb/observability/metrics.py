"""Prometheus metrics that cost (almost) nothing until ``enable_metrics`` is called.

Each module-level metric is a stable object: code may keep a reference to it (``from
microstatedb.observability.metrics import REPLICATION_LAG_EVENTS``) before metrics are
enabled. Until then ``labels(...)`` returns a shared no-op; afterwards the real
prometheus-client child (cached per label values). prometheus-client itself is imported only
when metrics are enabled.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager, contextmanager, nullcontext
from typing import TYPE_CHECKING, Any, Protocol

from microstatedb.errors import ConfigurationError
from microstatedb.observability import names
from microstatedb.observability.names import MetricSpec

if TYPE_CHECKING:
    from prometheus_client import CollectorRegistry

LATENCY_BUCKETS = (
    0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0,
    2.5, 5.0, 10.0, 30.0,
)  # fmt: skip
"""Histogram buckets (seconds) for every latency metric: 100 µs to 30 s."""


class Child(Protocol):
    """One labelled series; the methods that do not fit its kind are not called."""

    def inc(self, amount: float = 1) -> None: ...
    def dec(self, amount: float = 1) -> None: ...
    def set(self, value: float) -> None: ...
    def observe(self, amount: float) -> None: ...


class _Noop:
    __slots__ = ()

    def inc(self, amount: float = 1) -> None:
        pass

    def dec(self, amount: float = 1) -> None:
        pass

    def set(self, value: float) -> None:
        pass

    def observe(self, amount: float) -> None:
        pass


_NOOP = _Noop()
_NULL: AbstractContextManager[None] = nullcontext()


class Metric:
    """A metric of the library: a no-op until metrics are enabled."""

    __slots__ = ("_children", "_real", "spec")

    def __init__(self, spec: MetricSpec) -> None:
        self.spec = spec
        self._real: Any = None
        self._children: dict[tuple[str, ...], Child] = {}

    def labels(self, *values: str) -> Child:
        """The series for these label values (in ``spec.labels`` order)."""
        real = self._real
        if real is None:
            return _NOOP
        child = self._children.get(values)
        if child is None:
            if len(values) != len(self.spec.labels):
                raise ConfigurationError(
                    f"{self.spec.name} takes labels {self.spec.labels}, got {values!r}"
                )
            child = self._children[values] = real.labels(*values) if values else real
        return child

    def time(self, *values: str) -> AbstractContextManager[None]:
        """Observe the duration of a ``with`` block (histograms); a no-op when disabled."""
        if self._real is None:
            return _NULL
        return _timed(self.labels(*values))

    def __repr__(self) -> str:
        state = "enabled" if self._real is not None else "no-op"
        return f"<Metric {self.spec.name} {self.spec.kind} {state}>"


@contextmanager
def _timed(child: Child) -> Iterator[None]:
    start = time.perf_counter()
    try:
        yield
    finally:
        child.observe(time.perf_counter() - start)


OPERATION_SECONDS = Metric(names.OPERATION_SECONDS)
APPLY_SECONDS = Metric(names.APPLY_SECONDS)
REMOTE_BATCHES = Metric(names.REMOTE_BATCHES)
REMOTE_EVENTS = Metric(names.REMOTE_EVENTS)
REFUSED_MESSAGES = Metric(names.REFUSED_MESSAGES)
CAUSAL_BUFFER = Metric(names.CAUSAL_BUFFER)
LOG_EVENTS = Metric(names.LOG_EVENTS)
LOG_SEGMENTS = Metric(names.LOG_SEGMENTS)
LOG_BYTES = Metric(names.LOG_BYTES)
SNAPSHOTS = Metric(names.SNAPSHOTS)
SNAPSHOT_SECONDS = Metric(names.SNAPSHOT_SECONDS)
ARCHIVED_EVENTS = Metric(names.ARCHIVED_EVENTS)
RECOVERIES = Metric(names.RECOVERIES)
LOST_EVENTS = Metric(names.LOST_EVENTS)
MEMORY_BYTES = Metric(names.MEMORY_BYTES)
MEMORY_BUDGET_BYTES = Metric(names.MEMORY_BUDGET_BYTES)
REPLICATION_LAG_EVENTS = Metric(names.REPLICATION_LAG_EVENTS)
REPLICATION_LAG_SECONDS = Metric(names.REPLICATION_LAG_SECONDS)
ANTI_ENTROPY_ROUNDS = Metric(names.ANTI_ENTROPY_ROUNDS)
BREAKER_STATE = Metric(names.BREAKER_STATE)
BREAKER_TRANSITIONS = Metric(names.BREAKER_TRANSITIONS)
TRANSACTIONS = Metric(names.TRANSACTIONS)
SCHEMA_VIOLATIONS = Metric(names.SCHEMA_VIOLATIONS)
EVENTSTORE_APPEND_SECONDS = Metric(names.EVENTSTORE_APPEND_SECONDS)
EVENTSTORE_EVENTS = Metric(names.EVENTSTORE_EVENTS)
EVENTSTORE_ERRORS = Metric(names.EVENTSTORE_ERRORS)
BOOTSTRAP_EVENTS = Metric(names.BOOTSTRAP_EVENTS)
JETSTREAM_PUBLISHED = Metric(names.JETSTREAM_PUBLISHED)
JETSTREAM_CONSUMED = Metric(names.JETSTREAM_CONSUMED)

ALL: tuple[Metric, ...] = tuple(v for v in list(globals().values()) if isinstance(v, Metric))
"""Every metric object (the snapshot age is computed at scrape time, see ``note_snapshot``)."""

_state_lock = threading.Lock()
_registry: CollectorRegistry | None = None
_snapshot_times: dict[str, float] = {}
_clock: Callable[[], float] = time.time


class _SnapshotAge:
    """Computes ``msdb_snapshot_age_seconds`` when scraped, from the last snapshot times."""

    def collect(self) -> Iterator[Any]:
        from prometheus_client.core import GaugeMetricFamily

        spec = names.SNAPSHOT_AGE
        family = GaugeMetricFamily(spec.name, spec.help, labels=list(spec.labels))
        now = _clock()
        for node, at in sorted(_snapshot_times.items()):
            family.add_metric([node], max(now - at, 0.0))
        yield family


def enable_metrics(
    registry: CollectorRegistry | None = None, *, clock: Callable[[], float] = time.time
) -> CollectorRegistry:
    """Start recording into ``registry`` (a new one if None) and return it.

    Enabling again moves every metric to the new registry, starting from zero. ``clock``
    (seconds, wall time) dates snapshots for ``msdb_snapshot_age_seconds``.
    """
    import prometheus_client as prom

    global _registry, _clock
    reg = registry if registry is not None else prom.CollectorRegistry()
    kinds: dict[str, Callable[..., Any]] = {
        "counter": prom.Counter,
        "gauge": prom.Gauge,
        "histogram": lambda name, doc, labels, registry: prom.Histogram(
            name, doc, labels, registry=registry, buckets=LATENCY_BUCKETS
        ),
    }
    made = [
        kinds[m.spec.kind](m.spec.name, m.spec.help, list(m.spec.labels), registry=reg) for m in ALL
    ]
    reg.register(_SnapshotAge())
    with _state_lock:
        for metric, real in zip(ALL, made, strict=True):
            metric._children = {}
            metric._real = real
        _registry = reg
        _clock = clock
        _snapshot_times.clear()
    return reg


def disable_metrics() -> None:
    """Back to no-ops; the registry keeps what it recorded."""
    global _registry
    with _state_lock:
        for metric in ALL:
            metric._real = None
            metric._children = {}
        _registry = None
        _snapshot_times.clear()


def metrics_enabled() -> bool:
    """True between ``enable_metrics`` and ``disable_metrics``."""
    return _registry is not None


def registry() -> CollectorRegistry | None:
    """The registry metrics are recorded into, or None when disabled."""
    return _registry


def note_snapshot(node: str) -> None:
    """Record that ``node`` wrote a snapshot now (feeds ``msdb_snapshot_age_seconds``)."""
    if _registry is not None:
        _snapshot_times[node] = _clock()
        SNAPSHOTS.labels(node).inc()


def exposition() -> bytes:
    """The current metrics in the Prometheus text format (empty when disabled)."""
    reg = _registry
    if reg is None:
        return b""
    from prometheus_client import generate_latest

    return generate_latest(reg)


__all__ = [
    "ALL",
    "ANTI_ENTROPY_ROUNDS",
    "APPLY_SECONDS",
    "ARCHIVED_EVENTS",
    "BOOTSTRAP_EVENTS",
    "BREAKER_STATE",
    "BREAKER_TRANSITIONS",
    "CAUSAL_BUFFER",
    "EVENTSTORE_APPEND_SECONDS",
    "EVENTSTORE_ERRORS",
    "EVENTSTORE_EVENTS",
    "JETSTREAM_CONSUMED",
    "JETSTREAM_PUBLISHED",
    "LATENCY_BUCKETS",
    "LOG_BYTES",
    "LOG_EVENTS",
    "LOG_SEGMENTS",
    "LOST_EVENTS",
    "MEMORY_BUDGET_BYTES",
    "MEMORY_BYTES",
    "OPERATION_SECONDS",
    "RECOVERIES",
    "REFUSED_MESSAGES",
    "REMOTE_BATCHES",
    "REMOTE_EVENTS",
    "REPLICATION_LAG_EVENTS",
    "REPLICATION_LAG_SECONDS",
    "SCHEMA_VIOLATIONS",
    "SNAPSHOTS",
    "SNAPSHOT_SECONDS",
    "TRANSACTIONS",
    "Child",
    "Metric",
    "disable_metrics",
    "enable_metrics",
    "exposition",
    "metrics_enabled",
    "note_snapshot",
    "registry",
]
