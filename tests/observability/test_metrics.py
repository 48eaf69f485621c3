"""Metrics: no-ops until enabled, then what the store reports, and the names in one place."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import microstatedb as msdb
from microstatedb import observability as obs
from microstatedb.errors import ConfigurationError, CorruptData
from microstatedb.log import MemoryEventStore
from microstatedb.observability import metrics, names

DOCS = Path(__file__).parents[2] / "docs" / "operations.md"


def samples(reg: CollectorRegistry) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    text = obs.metrics.exposition().decode()
    assert text == __import__("prometheus_client").generate_latest(reg).decode()
    return {
        (s.name, tuple(sorted(s.labels.items()))): s.value
        for family in text_string_to_metric_families(text)
        for s in family.samples
    }


def test_everything_is_a_no_op_until_enabled() -> None:
    assert not obs.metrics_enabled()
    assert obs.metrics.registry() is None
    child = metrics.REPLICATION_LAG_EVENTS.labels("a", "b")
    assert child is metrics.TRANSACTIONS.labels("committed")
    child.set(5)
    child.inc()
    child.dec()
    child.observe(1.0)
    with metrics.APPLY_SECONDS.time("a"):
        pass
    metrics.note_snapshot("a")
    assert metrics.exposition() == b""
    assert "no-op" in repr(metrics.TRANSACTIONS)


def test_the_store_reports_snapshots_archives_and_remote_batches(
    registry: CollectorRegistry,
) -> None:
    archive = MemoryEventStore()
    a = msdb.Store("a", snapshot_every=10, archive=archive)
    b = msdb.Store("b")
    for _ in range(25):
        a.counter("n").increment()
    b.apply(a.events_since({}))
    with pytest.raises(CorruptData):
        b.apply(b"MSDB-not-a-batch")
    got = samples(registry)
    assert got[("msdb_snapshots_total", (("node", "a"),))] == 2
    assert got[("msdb_snapshot_age_seconds", (("node", "a"),))] == 0.0
    assert got[("msdb_archived_events_total", (("node", "a"),))] == 10
    # Sizes are taken on cold paths: at the second snapshot the log held 10 events.
    assert got[("msdb_log_events", (("node", "a"),))] == 10
    assert got[("msdb_remote_batches_total", (("node", "b"), ("outcome", "applied")))] == 1
    assert got[("msdb_remote_events_applied_total", (("node", "b"),))] == 0  # state, not events
    assert got[("msdb_refused_messages_total", (("node", "b"), ("reason", "CorruptData")))] == 1
    assert got[("msdb_apply_seconds_count", (("node", "b"),))] == 2
    assert got[("msdb_recoveries_total", (("node", "a"), ("outcome", "clean")))] == 1
    assert "enabled" in repr(metrics.TRANSACTIONS)


def test_snapshot_age_grows_with_the_clock() -> None:
    now = [100.0]
    reg = obs.enable_metrics(clock=lambda: now[0])
    try:
        store = msdb.Store("a")
        store.snapshot()
        now[0] = 142.5
        assert samples(reg)[("msdb_snapshot_age_seconds", (("node", "a"),))] == 42.5
    finally:
        obs.disable_metrics()


def test_durable_store_sizes(registry: CollectorRegistry, tmp_path: Path) -> None:
    with msdb.Store("d", tmp_path, segment_bytes=1024) as store:
        for i in range(200):
            store.counter(f"c{i % 4}").increment()
        store.snapshot()
        got = samples(registry)
        assert got[("msdb_log_segments", (("node", "d"),))] >= 2
        assert got[("msdb_log_bytes", (("node", "d"),))] > 0
        assert got[("msdb_causal_buffer_events", (("node", "d"),))] == 0
        assert got[("msdb_lost_events", (("node", "d"),))] == 0


def test_wrong_label_counts_are_refused(registry: CollectorRegistry) -> None:
    with pytest.raises(ConfigurationError):
        metrics.REPLICATION_LAG_EVENTS.labels("only-one")


@given(st.lists(st.tuples(st.sampled_from(["a", "b", "c"]), st.integers(0, 1000)), max_size=30))
def test_a_counter_reads_back_the_sum_of_its_increments(incs: list[tuple[str, int]]) -> None:
    reg = obs.enable_metrics()
    try:
        for outcome, n in incs:
            metrics.TRANSACTIONS.labels(outcome).inc(n)
        got = samples(reg)
        for outcome in "abc":
            want = sum(n for o, n in incs if o == outcome)
            seen = got.get(("msdb_transactions_total", (("outcome", outcome),)))
            assert seen == (want if any(o == outcome for o, _ in incs) else None)
    finally:
        obs.disable_metrics()


def test_enabling_again_starts_a_fresh_registry() -> None:
    first = obs.enable_metrics()
    metrics.TRANSACTIONS.labels("committed").inc()
    second = obs.enable_metrics()
    try:
        assert first is not second
        assert ("msdb_transactions_total", (("outcome", "committed"),)) not in samples(second)
    finally:
        obs.disable_metrics()


def test_names_are_defined_once_and_documented() -> None:
    specs = {m.spec.name for m in metrics.ALL}
    assert specs | {names.SNAPSHOT_AGE.name} == {s.name for s in names.METRICS}
    assert len(names.METRICS) == len({s.name for s in names.METRICS})
    assert all(re.fullmatch(r"msdb_[a-z_]+", s.name) for s in names.METRICS)
    assert all(s.kind in ("counter", "gauge", "histogram") for s in names.METRICS)
    doc = DOCS.read_text()
    for spec in names.METRICS:
        shown = spec.name + ("_total" if spec.kind == "counter" else "")
        assert f"`{shown}`" in doc, f"docs/operations.md does not list {shown}"
    assert len(names.SPANS) == len(set(names.SPANS))
    for span in names.SPANS:
        assert f"`{span}`" in doc, f"docs/operations.md does not list span {span}"
