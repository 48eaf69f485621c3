"""Bounded deltas for anti-entropy, read by origin, and compaction below causal stability.

``Store.events_since`` gives everything a peer lacks in one batch. Replication needs more:

- **bounded batches**: at most ``max_events`` events per batch, so a peer that missed a long
  partition catches up in steps it asked for (back-pressure) instead of one huge message;
- **cost that follows the divergence**: the events of each origin are found through an index
  from ``(origin, seq)`` to log position, so a store with a million events that a peer lacks
  a thousand of reads about a thousand events, not the whole log. The index is built lazily
  from the log's tail when a delta is read, never on the local write path;
- **causal order**: events are merged across origins by hybrid-clock timestamp. An event's
  timestamp is larger than those of everything in its causal past, so every prefix of that
  order is causally closed and the receiver applies a bounded batch without buffering.
"""

from __future__ import annotations

import heapq
import weakref
from bisect import bisect_left, bisect_right
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from itertools import islice
from typing import Any

from microstatedb.codec import Event
from microstatedb.errors import ConfigurationError
from microstatedb.replica._batch import encode_batch
from microstatedb.replica._store import Store


@dataclass(frozen=True, slots=True)
class Delta:
    """One bounded batch of what a peer lacks."""

    data: bytes
    """The batch, in the format ``Store.apply`` takes."""
    events: int
    """Events in the batch."""
    states: int
    """Full key states in the batch (sent when the peer is behind what the log still holds)."""
    more: bool
    """True when the peer lacks more than this batch holds: ask again."""
    upto: dict[str, int]
    """Per origin, the highest seq the peer holds once this batch is applied (as far as the
    sender can tell): what the sender may assume while the batch is in flight."""


class _OriginIndex:
    """Per origin, the seqs and log positions of its events in one store's in-memory log."""

    __slots__ = ("positions", "pruned", "seqs", "upto")

    def __init__(self) -> None:
        self.seqs: dict[str, list[int]] = {}
        self.positions: dict[str, list[int]] = {}
        self.upto = 0
        self.pruned = 0

    def prune(self, first: int) -> None:
        # Entries of released positions go too, so the index stays as small as the log.
        for origin in list(self.positions):
            positions = self.positions[origin]
            cut = bisect_left(positions, first)
            if cut:
                del positions[:cut]
                del self.seqs[origin][:cut]
            if not positions:
                del self.positions[origin]
                del self.seqs[origin]
        self.pruned = first

    def catch_up(self, store: Store) -> None:
        log = store._log
        if log.first_position > self.pruned:
            self.prune(log.first_position)
        start = max(self.upto, log.first_position)
        end = log.next_position
        if start >= end:
            return
        seqs, positions = self.seqs, self.positions
        for pos, ev in enumerate(islice(log.read(start), end - start), start):
            s = seqs.get(ev.origin)
            if s is None:
                seqs[ev.origin] = [ev.seq]
                positions[ev.origin] = [pos]
            else:
                s.append(ev.seq)
                positions[ev.origin].append(pos)
        self.upto = end

    def events(self, store: Store, origin: str, after: int) -> Iterator[Event]:
        seqs = self.seqs.get(origin)
        if not seqs:
            return
        log = store._log
        positions = self.positions[origin]
        for i in range(bisect_right(seqs, after), len(seqs)):
            pos = positions[i]
            if pos < log.first_position:
                continue  # released; the peer is then behind the floor and gets states
            yield next(log.read(pos))


_INDEXES: weakref.WeakKeyDictionary[Store, _OriginIndex] = weakref.WeakKeyDictionary()


def _origin_events(store: Store, origin: str, after: int) -> Iterator[Event]:
    if store.path is None:
        index = _INDEXES.get(store)
        if index is None:
            index = _INDEXES[store] = _OriginIndex()
        index.catch_up(store)
        return index.events(store, origin, after)
    # A durable log skips the segments whose origin summary cannot hold these events.
    return store._log.read_origin(origin, after)


def delta_since(store: Store, vv: Mapping[str, int], max_events: int = 1000) -> Delta:
    """At most ``max_events`` of the events a replica at ``vv`` lacks, causally closed.

    When the peer is behind what the log still holds (or the store keeps no log), the batch
    carries full states instead, as ``Store.events_since`` does, and is not bounded.
    """
    store._check_open()
    if max_events < 1:
        raise ConfigurationError(f"max_events must be at least 1, got {max_events!r}")
    mine = store._vv
    if not store.keeps_log or any(vv.get(o, 0) < n for o, n in store._floor.items()):
        data = store.events_since(vv)
        kept = len(store._touched) if not store.keeps_log else len(store._objs)
        return Delta(data, 0, kept, False, dict(mine))
    lacking = {o: vv.get(o, 0) for o, n in mine.items() if n > vv.get(o, 0)}
    total = sum(mine[o] - after for o, after in lacking.items())
    streams = [_origin_events(store, o, after) for o, after in sorted(lacking.items())]
    merged = heapq.merge(*streams, key=lambda ev: (ev.hlc, ev.origin))
    events = list(islice(merged, max_events))
    states: list[tuple[str, str, Any]] = []
    data = encode_batch(store.node_id, {}, events, states, store._key)
    upto = {o: n for o, n in vv.items() if n}
    for ev in events:
        upto[ev.origin] = ev.seq
    return Delta(data, len(events), 0, total > len(events), upto)


def causal_stability(vvs: list[Mapping[str, int]]) -> dict[str, int]:
    """The pointwise minimum of version vectors: what every one of them has seen."""
    if not vvs:
        return {}
    first, *rest = vvs
    out: dict[str, int] = {}
    for origin, n in first.items():
        low = min([n, *(v.get(origin, 0) for v in rest)])
        if low > 0:
            out[origin] = low
    return out


def compact_stable(store: Store, stable: Mapping[str, int]) -> int:
    """Snapshot, then let the log drop its prefix of events every member has seen.

    ``stable`` is the causal stability point (``causal_stability`` of every member's vector).
    Returns how many events left the log. A durable store without an archive keeps its
    history on disk, where it costs no memory, and compacts nothing.
    """
    store._check_open()
    if not store.keeps_log or (store.path is not None and store._archive is None):
        return 0
    store.snapshot()
    log = store._log
    upto = log.first_position
    covered: dict[str, int] = {}
    for ev in log.read(upto):
        if ev.seq > stable.get(ev.origin, 0) or upto >= log.next_position:
            break
        covered[ev.origin] = ev.seq
        upto += 1
    if upto == log.first_position:
        return 0
    for origin, n in covered.items():
        if n > store._floor.get(origin, 0):
            store._floor[origin] = n
    return log.release(upto, store._archive)
