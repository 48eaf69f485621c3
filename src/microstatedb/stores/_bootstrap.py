"""Rebuilding a replica from an external store: bootstrap from archive, refetch lost events.

Both work through the store's public API only: events are wrapped in the same batches
``events_since`` gives, and ``apply`` checks and applies them (idempotent, causal buffering).
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

from microstatedb import observability as obs
from microstatedb.codec import Event
from microstatedb.errors import ConfigurationError
from microstatedb.log import EventStore
from microstatedb.replica import Store, encode_batch


@dataclass(frozen=True, slots=True)
class BootstrapReport:
    """What ``bootstrap`` or ``refetch`` did."""

    events_read: int
    """Events read from the external store."""
    events_applied: int
    """Events that became visible in the replica (``apply``'s count)."""
    events_skipped: int
    """Events read but already covered by the replica (by the snapshot, say)."""
    batches: int
    """Batches handed to ``Store.apply``."""


def _chunks(events: Iterable[Event], size: int) -> Iterator[list[Event]]:
    chunk: list[Event] = []
    for ev in events:
        chunk.append(ev)
        if len(chunk) >= size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _feed(
    store: Store, events: Iterable[Event], sender: str, batch_size: int, key: bytes | None
) -> BootstrapReport:
    if type(batch_size) is not int or batch_size < 1:
        raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
    read = applied = skipped = batches = 0
    have = dict(store.version_vector)
    for chunk in _chunks(events, batch_size):
        read += len(chunk)
        fresh = [ev for ev in chunk if ev.seq > have.get(ev.origin, 0)]
        skipped += len(chunk) - len(fresh)
        if fresh:
            applied += store.apply(encode_batch(sender, {}, fresh, [], key))
            batches += 1
            have = dict(store.version_vector)
    obs.metrics.BOOTSTRAP_EVENTS.labels(store.node_id).inc(applied)
    return BootstrapReport(read, applied, skipped, batches)


def bootstrap(
    store: Store,
    source: EventStore,
    *,
    snapshot: bytes | None = None,
    batch_size: int = 10_000,
    key: bytes | None = None,
) -> BootstrapReport:
    """Bring ``store`` (a new replica, usually) up to date from an external event store.

    ``snapshot`` is a batch as ``events_since`` gives it (for a store that released history,
    ``events_since({})`` is the full state and its version vector): it is applied first, and
    only the archived events it does not cover are replayed after it. Without a snapshot the
    whole archive is replayed, in append order, which is a causal order. ``key`` signs the
    batches for a store that requires it.
    """
    with obs.span(obs.names.SPAN_BOOTSTRAP, {"msdb.node": store.node_id}):
        if snapshot is not None:
            store.apply(snapshot)
        return _feed(store, source.read(), "bootstrap", batch_size, key)


def refetch(
    store: Store, source: EventStore, *, batch_size: int = 10_000, key: bytes | None = None
) -> BootstrapReport:
    """Bring back from ``source`` the events ``store.lost`` names (lost to corruption).

    Reads only the origins with losses, from the first lost sequence number on. Returns what
    it did; ``store.lost`` is empty afterwards if ``source`` held every lost event.
    """
    with obs.span(obs.names.SPAN_REFETCH, {"msdb.node": store.node_id}):
        lost = dict(store.lost)
        events = (
            ev
            for origin, (first, _last) in sorted(lost.items())
            for ev in source.read_origin(origin, first - 1)
        )
        return _feed(store, events, "refetch", batch_size, key)
