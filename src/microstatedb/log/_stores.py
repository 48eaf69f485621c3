"""The ``EventStore`` protocol for archives and external stores, and two implementations.

A store keeps events in append order and identifies them by dot: re-appending an identical
event is a no-op, the same dot with other content is an ``IntegrityError``, and a batch is
all or nothing.
"""

from __future__ import annotations

import bisect
import os
import struct
import threading
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import Protocol, runtime_checkable

from microstatedb.codec import Event, checksum, decode_events, encode_events, packb, unpackb
from microstatedb.errors import (
    ConfigurationError,
    CorruptData,
    DecodeError,
    IntegrityError,
    StoreClosed,
)
from microstatedb.log._event_check import normalized
from microstatedb.log._files import (
    FolderLock,
    os_error,
    remove_temporaries,
    write_atomic,
)

Dot = tuple[str, int]


@runtime_checkable
class EventStore(Protocol):
    """Where events go to stay: an archive of released segments, or an external store."""

    def append(self, events: Sequence[Event]) -> None:
        """Append all of ``events`` atomically; identical re-appends are no-ops."""
        ...

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[Event]:
        """Events in append order from index ``start``, at most ``limit`` of them."""
        ...

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        """Events of ``origin`` with ``seq > after_seq``, in append order."""
        ...

    def close(self) -> None:
        """Release resources; later calls raise ``StoreClosed``."""
        ...


def _check_read_args(start: int, limit: int | None) -> None:
    if type(start) is not int or start < 0:
        raise ConfigurationError(f"start must be an int >= 0, got {start!r}")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigurationError(f"limit must be None or an int >= 0, got {limit!r}")


def _new_events(events: Sequence[Event], lookup: Callable[[Dot], Event | None]) -> list[Event]:
    """Check a batch against itself and the store; returns the events not yet stored."""
    if isinstance(events, Event) or not isinstance(events, Sequence):
        raise ConfigurationError("append takes a sequence of events")
    batch: dict[Dot, Event] = {}
    fresh: list[Event] = []
    for ev in events:
        norm, _body = normalized(ev)
        dot = norm.dot
        seen = batch.get(dot)
        if seen is None:
            seen = lookup(dot)
            if seen is None:
                fresh.append(norm)
                seen = norm
            batch[dot] = seen
        if seen != norm:
            raise IntegrityError(
                f"event {dot} is already stored with other content; a dot names one event only"
            )
    return fresh


class MemoryEventStore:
    """An ``EventStore`` in a list: for tests and for logs that need no archive on disk."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._events: list[Event] = []
        self._index: dict[Dot, Event] = {}
        self._by_origin: dict[str, list[int]] = {}
        self._closed = False

    def _check(self) -> None:
        if self._closed:
            raise StoreClosed("the event store is closed")

    def append(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._check()
            fresh = _new_events(events, self._index.get)
            for ev in fresh:
                self._by_origin.setdefault(ev.origin, []).append(len(self._events))
                self._events.append(ev)
                self._index[ev.dot] = ev

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[Event]:
        _check_read_args(start, limit)
        with self._lock:
            self._check()
            end = len(self._events) if limit is None else start + limit
            return iter(self._events[start:end])

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        with self._lock:
            self._check()
            found = [self._events[i] for i in self._by_origin.get(origin, ())]
        return (ev for ev in found if ev.seq > after_seq)

    def close(self) -> None:
        self._closed = True

    def __len__(self) -> int:
        return len(self._events)


# A batch file: b"MSDA" | u8 format | u32 meta length | meta | 8-byte checksum of all before |
# events (codec.encode_events) | 16-byte checksum of everything before it.
# meta = msgpack [count, [[origin, min_seq, max_seq], ...]] so that opening reads headers only.
_MAGIC = b"MSDA"
_FORMAT = 1
_HEAD = struct.Struct(">4sBI")


class _Batch:
    __slots__ = ("count", "first", "origins", "path")

    def __init__(self, first: int, count: int, origins: dict[str, tuple[int, int]], path: Path):
        self.first = first
        self.count = count
        self.origins = origins
        self.path = path


class FolderEventStore:
    """An ``EventStore`` in a local folder: one checksummed file per appended batch.

    Each batch is written to a temporary file, fsynced and renamed, so a crash leaves either
    the whole batch or nothing. Memory holds a few numbers per batch file, never per event.
    """

    def __init__(self, path: str | os.PathLike[str]) -> None:
        if not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"path must be a str or a path, got {path!r}")
        self._dir = Path(path)
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise os_error(f"creating the archive folder {self._dir}", exc) from exc
        self._folder_lock = FolderLock(self._dir)
        self._lock = threading.Lock()
        self._closed = False
        self._batches: list[_Batch] = []
        self._firsts: list[int] = []
        self._top: dict[str, int] = {}  # per origin, the highest seq stored
        try:
            self._open()
        except BaseException:
            self._folder_lock.release()
            raise

    def _open(self) -> None:
        remove_temporaries(self._dir)
        names = sorted(p for p in self._dir.iterdir() if p.suffix == ".batch" and p.stem.isdigit())
        expected = 0
        for path in names:
            first = int(path.stem)
            count, origins = self._read_meta(path)
            if first != expected:
                raise CorruptData(
                    f"archive batch starts at {first} where {expected} was expected: "
                    "a batch file is missing",
                    path=str(path),
                    offset=0,
                )
            self._add_batch(_Batch(first, count, origins, path))
            expected = first + count

    @staticmethod
    def _read_meta(path: Path) -> tuple[int, dict[str, tuple[int, int]]]:
        with path.open("rb") as f:
            head = f.read(_HEAD.size)
            if len(head) < _HEAD.size:
                raise CorruptData("archive batch header is truncated", path=str(path), offset=0)
            magic, version, meta_len = _HEAD.unpack(head)
            if magic != _MAGIC or version != _FORMAT or meta_len > 1 << 28:
                raise CorruptData("not a supported archive batch file", path=str(path), offset=0)
            meta = f.read(meta_len)
            tag = f.read(8)
        if checksum(head + meta) != tag:
            raise CorruptData(
                "archive batch header checksum does not verify", path=str(path), offset=0
            )
        try:
            count, spans = unpackb(meta)
            origins = {str(o): (int(lo), int(hi)) for o, lo, hi in spans}
        except (DecodeError, TypeError, ValueError) as exc:
            raise CorruptData(
                "archive batch header does not decode", path=str(path), offset=_HEAD.size
            ) from exc
        return int(count), origins

    @staticmethod
    def _load(path: Path) -> list[Event]:
        try:
            data = path.read_bytes()
        except OSError as exc:
            raise os_error(f"reading {path}", exc) from exc
        if len(data) < _HEAD.size + 8 + 16 or checksum(data[:-16], 16) != data[-16:]:
            raise CorruptData(
                "archive batch checksum does not verify", path=str(path), offset=len(data) - 16
            )
        _magic, _version, meta_len = _HEAD.unpack_from(data)
        start = _HEAD.size + meta_len + 8
        try:
            return decode_events(data[start:-16])
        except DecodeError as exc:
            raise CorruptData(
                "archive batch does not decode", path=str(path), offset=start
            ) from exc

    def _check(self) -> None:
        if self._closed:
            raise StoreClosed("the event store is closed")

    def _add_batch(self, batch: _Batch) -> None:
        self._batches.append(batch)
        self._firsts.append(batch.first)
        for origin, (_lo, hi) in batch.origins.items():
            if hi > self._top.get(origin, 0):
                self._top[origin] = hi

    def _lookup(self, cache: dict[Path, dict[Dot, Event]]) -> Callable[[Dot], Event | None]:
        def find(dot: Dot) -> Event | None:
            origin, seq = dot
            if seq > self._top.get(origin, 0):
                return None  # the common case of an archive: newer than anything stored
            for batch in self._batches:
                span = batch.origins.get(origin)
                if span is None or not span[0] <= seq <= span[1]:
                    continue
                table = cache.get(batch.path)
                if table is None:
                    table = cache[batch.path] = {ev.dot: ev for ev in self._load(batch.path)}
                found = table.get(dot)
                if found is not None:
                    return found
            return None

        return find

    def append(self, events: Sequence[Event]) -> None:
        with self._lock:
            self._check()
            fresh = _new_events(events, self._lookup({}))
            if not fresh:
                return
            origins: dict[str, tuple[int, int]] = {}
            for ev in fresh:
                lo, hi = origins.get(ev.origin, (ev.seq, ev.seq))
                origins[ev.origin] = (min(lo, ev.seq), max(hi, ev.seq))
            meta = packb([len(fresh), [[o, lo, hi] for o, (lo, hi) in sorted(origins.items())]])
            head = _HEAD.pack(_MAGIC, _FORMAT, len(meta)) + meta
            data = head + checksum(head) + encode_events(fresh)
            data += checksum(data, 16)
            first = self._batches[-1].first + self._batches[-1].count if self._batches else 0
            path = self._dir / f"{first:020d}.batch"
            try:
                write_atomic(path, data)
            except OSError as exc:
                raise os_error(f"writing archive batch {path}", exc) from exc
            self._add_batch(_Batch(first, len(fresh), origins, path))

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[Event]:
        _check_read_args(start, limit)
        with self._lock:
            self._check()
            index = max(bisect.bisect_right(self._firsts, start) - 1, 0)
            plan = [(b.first, b.path) for b in self._batches[index:]]
        return self._read(plan, start, limit)

    def _read(self, plan: list[tuple[int, Path]], start: int, limit: int | None) -> Iterator[Event]:
        left = limit
        for first, path in plan:
            for ev in self._load(path)[max(start - first, 0) :]:
                if left is not None:
                    if left <= 0:
                        return
                    left -= 1
                yield ev

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        with self._lock:
            self._check()
            paths = [
                b.path
                for b in self._batches
                if origin in b.origins and b.origins[origin][1] > after_seq
            ]
        return (
            ev
            for path in paths
            for ev in self._load(path)
            if ev.origin == origin and ev.seq > after_seq
        )

    def close(self) -> None:
        with self._lock:
            if not self._closed:
                self._closed = True
                self._folder_lock.release()

    def __len__(self) -> int:
        return self._batches[-1].first + self._batches[-1].count if self._batches else 0
