"""Every transaction is one trace: the nodes' spans continue the caller's trace context."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter

from microstatedb import observability as obs

from ._shop import APPLES, order_writes, saga_steps
from .test_node import mesh, started, stopped


@pytest.fixture
def spans() -> Iterator[InMemorySpanExporter]:
    exporter = InMemorySpanExporter()
    provider = TracerProvider()
    provider.add_span_processor(SimpleSpanProcessor(exporter))
    obs.enable_tracing(provider)
    try:
        yield exporter
    finally:
        obs.disable_tracing()


async def test_one_trace_per_transaction(spans: InMemorySpanExporter) -> None:
    nodes = mesh()
    nodes["stock"].store.counter("apples").increment(APPLES)
    await started(nodes)
    try:
        assert (await nodes["order"].commit("t", order_writes())).status == "committed"
        assert (await nodes["order"].saga("s", saga_steps(order="s"))).status == "completed"
    finally:
        await stopped(nodes)
    done = spans.get_finished_spans()
    for root_name, txn, inner in (
        ("msdb.txn.2pc", "t", {"msdb.txn.prepare", "msdb.txn.decide"}),
        ("msdb.txn.saga", "s", {"msdb.txn.invoke", "msdb.txn.step"}),
    ):
        (root,) = [s for s in done if s.name == root_name]
        assert root.context is not None
        trace = root.context.trace_id
        mine = {s.name for s in done if s.context is not None and s.context.trace_id == trace}
        assert inner <= mine, (root_name, mine)
        assert all(
            s.attributes.get("txn") == txn
            for s in done
            if s.name in inner and s.context is not None and s.context.trace_id == trace
        )
