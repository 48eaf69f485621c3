"""Every metric and span name of the library, in one place.

docs/operations.md explains each one; a test checks that it lists every name defined here.
Counters are exposed with the ``_total`` suffix Prometheus adds.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class MetricSpec:
    """The definition of one Prometheus metric."""

    name: str
    """The metric name (counters get ``_total`` appended when exposed)."""
    kind: str
    """``counter``, ``gauge`` or ``histogram``."""
    help: str
    """One line saying what is measured."""
    labels: tuple[str, ...] = ()
    """Label names, in the order ``labels()`` takes their values."""


_LATENCY = "histogram"

OPERATION_SECONDS = MetricSpec(
    "msdb_operation_seconds",
    _LATENCY,
    "Latency of store operations per consistency level",
    ("operation", "consistency"),
)
APPLY_SECONDS = MetricSpec(
    "msdb_apply_seconds", _LATENCY, "Time to check and apply one remote batch", ("node",)
)
REMOTE_BATCHES = MetricSpec(
    "msdb_remote_batches", "counter", "Remote batches handed to apply", ("node", "outcome")
)
REMOTE_EVENTS = MetricSpec(
    "msdb_remote_events_applied", "counter", "Remote events that became visible", ("node",)
)
REFUSED_MESSAGES = MetricSpec(
    "msdb_refused_messages", "counter", "Batches or messages refused", ("node", "reason")
)
CAUSAL_BUFFER = MetricSpec(
    "msdb_causal_buffer_events",
    "gauge",
    "Remote events waiting for their causal context",
    ("node",),
)
LOG_EVENTS = MetricSpec("msdb_log_events", "gauge", "Events held by the local log", ("node",))
LOG_SEGMENTS = MetricSpec("msdb_log_segments", "gauge", "Segment files of the local log", ("node",))
LOG_BYTES = MetricSpec("msdb_log_bytes", "gauge", "Bytes of the local log on disk", ("node",))
SNAPSHOTS = MetricSpec("msdb_snapshots", "counter", "Snapshots written", ("node",))
SNAPSHOT_SECONDS = MetricSpec(
    "msdb_snapshot_seconds", _LATENCY, "Time to write a snapshot (and release)", ("node",)
)
SNAPSHOT_AGE = MetricSpec(
    "msdb_snapshot_age_seconds", "gauge", "Seconds since the last snapshot", ("node",)
)
ARCHIVED_EVENTS = MetricSpec(
    "msdb_archived_events", "counter", "Events released from the log to the archive", ("node",)
)
RECOVERIES = MetricSpec(
    "msdb_recoveries", "counter", "Store openings, clean or after repair", ("node", "outcome")
)
LOST_EVENTS = MetricSpec(
    "msdb_lost_events", "gauge", "Events lost to corruption and not yet refetched", ("node",)
)
MEMORY_BYTES = MetricSpec("msdb_memory_bytes", "gauge", "Memory used by a store", ("node",))
MEMORY_BUDGET_BYTES = MetricSpec(
    "msdb_memory_budget_bytes", "gauge", "Memory budget of a store", ("node",)
)
REPLICATION_LAG_EVENTS = MetricSpec(
    "msdb_replication_lag_events", "gauge", "Events a peer has that we lack", ("node", "peer")
)
REPLICATION_LAG_SECONDS = MetricSpec(
    "msdb_replication_lag_seconds",
    "gauge",
    "Age of the oldest event a peer has that we lack",
    ("node", "peer"),
)
ANTI_ENTROPY_ROUNDS = MetricSpec(
    "msdb_anti_entropy_rounds", "counter", "Anti-entropy rounds", ("node", "outcome")
)
BREAKER_STATE = MetricSpec(
    "msdb_breaker_state", "gauge", "Circuit breaker state: 0 closed, 1 half-open, 2 open", ("name",)
)
BREAKER_TRANSITIONS = MetricSpec(
    "msdb_breaker_transitions",
    "counter",
    "Circuit breaker state changes",
    ("name", "from_state", "to_state"),
)
TRANSACTIONS = MetricSpec("msdb_transactions", "counter", "Transaction outcomes", ("outcome",))
SCHEMA_VIOLATIONS = MetricSpec(
    "msdb_schema_violations", "counter", "Writes refused by a schema", ("subject",)
)
EVENTSTORE_APPEND_SECONDS = MetricSpec(
    "msdb_eventstore_append_seconds", _LATENCY, "Time of one external append", ("backend",)
)
EVENTSTORE_EVENTS = MetricSpec(
    "msdb_eventstore_appended_events",
    "counter",
    "Events offered to an external store",
    ("backend",),
)
EVENTSTORE_ERRORS = MetricSpec(
    "msdb_eventstore_errors", "counter", "Failed external appends", ("backend", "error")
)
BOOTSTRAP_EVENTS = MetricSpec(
    "msdb_bootstrap_events", "counter", "Events applied from an external store", ("node",)
)
JETSTREAM_PUBLISHED = MetricSpec(
    "msdb_jetstream_published_events", "counter", "Own events published to JetStream", ("node",)
)
JETSTREAM_CONSUMED = MetricSpec(
    "msdb_jetstream_consumed_events", "counter", "Events consumed from JetStream", ("node",)
)

METRICS: tuple[MetricSpec, ...] = tuple(
    v for v in list(globals().values()) if isinstance(v, MetricSpec)
)
"""Every metric, in definition order."""

# ----------------------------------------------------------------------------- spans

SPAN_SNAPSHOT = "msdb.store.snapshot"
SPAN_APPLY = "msdb.store.apply"
SPAN_RECOVERY = "msdb.store.recovery"
SPAN_EVENTSTORE_APPEND = "msdb.eventstore.append"
SPAN_BOOTSTRAP = "msdb.stores.bootstrap"
SPAN_REFETCH = "msdb.stores.refetch"
SPAN_JETSTREAM_PUBLISH = "msdb.jetstream.publish"
SPAN_JETSTREAM_PULL = "msdb.jetstream.pull"
# For the replication runtime and the layers above the store:
SPAN_LOCAL_OPERATION = "msdb.local.operation"
SPAN_ANTI_ENTROPY = "msdb.anti_entropy.round"
SPAN_QUORUM = "msdb.quorum.operation"
SPAN_TRANSACTION = "msdb.transaction"
SPAN_SCHEMA_CHECK = "msdb.schema.check"

SPANS: tuple[str, ...] = tuple(
    v for k, v in list(globals().items()) if k.startswith("SPAN_") and isinstance(v, str)
)
"""Every span name."""
