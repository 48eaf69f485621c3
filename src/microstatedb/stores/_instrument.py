"""Spans and metrics around the appends of the external stores (no-ops until enabled)."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

from microstatedb import observability as obs
from microstatedb.errors import MicroStateError


@contextmanager
def appending(backend: str, target: str, events: int) -> Iterator[None]:
    """Trace and time one append of ``events`` events; count it, and its failure if any."""
    m = obs.metrics
    attributes: obs.Attributes = {
        "msdb.backend": backend,
        "msdb.target": target,
        "msdb.events": events,
    }
    with (
        obs.span(obs.names.SPAN_EVENTSTORE_APPEND, attributes),
        m.EVENTSTORE_APPEND_SECONDS.time(backend),
    ):
        try:
            yield
        except MicroStateError as exc:
            m.EVENTSTORE_ERRORS.labels(backend, type(exc).__name__).inc()
            raise
    m.EVENTSTORE_EVENTS.labels(backend).inc(events)
