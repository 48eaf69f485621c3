"""Replication through a JetStream stream between stores that never talk to each other."""

from __future__ import annotations

import random
from collections.abc import Callable, Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

import microstatedb as msdb
from microstatedb import observability as obs
from microstatedb.errors import ConfigurationError, InvalidOperation
from microstatedb.stores import JetStreamEventStore, JetStreamReplicator

pytestmark = pytest.mark.integration


@pytest.fixture
def channel(stream_names: Callable[[], str]) -> Iterator[JetStreamEventStore]:
    store = JetStreamEventStore(stream_names(), page_size=50)
    try:
        yield store
    finally:
        store.close()


def test_three_stores_converge_through_the_stream(channel: JetStreamEventStore) -> None:
    rng = random.Random(5)
    stores = [msdb.Store(f"svc{i}") for i in range(3)]
    reps = [JetStreamReplicator(s, channel, batch_size=40) for s in stores]
    for _round in range(4):
        for s, rep in zip(stores, reps, strict=True):
            for _ in range(rng.randrange(20, 60)):
                s.counter(f"c{rng.randrange(4)}").increment()
                s.set("tags").add(rng.randrange(20))
            rep.publish()
        for rep in reps:
            rep.pull()
    for rep in reps:  # a last pull brings what others published after our pull
        rep.pull()
    assert len({s.digest() for s in stores}) == 1
    assert stores[0].version_vector == stores[2].version_vector
    total = sum(stores[0].version_vector.values())
    assert len(channel) == total  # each event stored once, whoever published it
    assert all(rep.sync() == (0, 0) for rep in reps)


def test_a_restarted_replicator_resumes_after_its_acknowledgements(
    channel: JetStreamEventStore,
) -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    ra = JetStreamReplicator(a, channel)
    for _ in range(30):
        a.counter("n").increment()
    ra.publish()
    assert JetStreamReplicator(b, channel).pull() == 30
    for _ in range(12):
        a.counter("n").increment()
    ra.publish()
    # A new replicator for b (after a restart) gets only what b did not acknowledge.
    assert JetStreamReplicator(b, channel).pull() == 12
    assert b.counter("n").value == 42
    # A fresh store under the same node id gets nothing: the consumer is per node id.
    assert JetStreamReplicator(msdb.Store("b"), channel).pull() == 0


def test_events_released_before_publishing_are_refused(channel: JetStreamEventStore) -> None:
    store = msdb.Store("a", snapshot_every=10)
    for _ in range(35):
        store.counter("n").increment()
    with pytest.raises(InvalidOperation, match="left the log"):
        JetStreamReplicator(store, channel).publish()
    with pytest.raises(ConfigurationError):
        JetStreamReplicator(store, channel, batch_size=0)


def test_the_span_tree_crosses_services_through_the_stream(
    channel: JetStreamEventStore,
) -> None:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    obs.enable_tracing(provider)
    try:
        a, b = msdb.Store("svc-a"), msdb.Store("svc-b")
        ra, rb = JetStreamReplicator(a, channel), JetStreamReplicator(b, channel)
        with obs.span("checkout"):  # the request that service A serves
            a.counter("orders").increment()
            ra.publish()
        rb.pull()  # service B, later, in another process as far as tracing knows
    finally:
        obs.disable_tracing()
    spans = {s.name: s for s in exporter.get_finished_spans()}
    root = spans["checkout"]
    publish = spans[obs.names.SPAN_JETSTREAM_PUBLISH]
    append = spans[obs.names.SPAN_EVENTSTORE_APPEND]
    pull = spans[obs.names.SPAN_JETSTREAM_PULL]
    apply = spans[obs.names.SPAN_APPLY]

    def parent(span: object) -> int | None:
        p = span.parent  # type: ignore[attr-defined]
        return p.span_id if p is not None else None

    assert root.parent is None
    assert parent(publish) == root.context.span_id
    assert parent(append) == publish.context.span_id
    # B's spans join A's trace through the traceparent header the messages carry.
    assert parent(pull) == publish.context.span_id
    assert parent(apply) == pull.context.span_id
    tree = [root, publish, append, pull, apply]
    assert {s.context.trace_id for s in tree} == {root.context.trace_id}
    # Opening each store is a span of its own (a trace of its own too).
    opened = [s for s in exporter.get_finished_spans() if s.name == obs.names.SPAN_RECOVERY]
    assert len(opened) == 2
    assert apply.attributes is not None
    assert apply.attributes["msdb.node"] == "svc-b"
    assert b.counter("orders").value == 1
