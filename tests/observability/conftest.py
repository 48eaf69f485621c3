"""Metrics and tracing are process-wide switches: every test leaves them off."""

from __future__ import annotations

from collections.abc import Iterator

import pytest
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from prometheus_client import CollectorRegistry

from microstatedb import observability as obs


@pytest.fixture
def registry() -> Iterator[CollectorRegistry]:
    reg = obs.enable_metrics(CollectorRegistry(), clock=lambda: 1000.0)
    try:
        yield reg
    finally:
        obs.disable_metrics()


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
