"""The append-only event log: in memory, or segmented files with a durability policy.

Inside this package: ``_format`` (bytes of segment headers and frames) and ``_snapshots``
(bytes of snapshot files) only encode and verify; ``_files`` does the fsync, atomic replace and
folder lock; ``_stores`` holds the archives. This module ties them together and is the only
one that knows about positions, durability and recovery.

Locks, always taken in this order when nested: ``_release_lock`` (one release at a time),
``_snap_lock`` (one snapshot written at a time, in order: it is held across the commit up to
the snapshot's position and the file),
``_cv`` (group commit bookkeeping), ``_io_lock`` (the active file, the segment list, rolling,
sealing), ``_lock`` (positions and the pending buffer; held only for a few attribute updates,
so appends never wait for the disk).
"""

from __future__ import annotations

import atexit
import contextlib
import math
import os
import threading
import weakref
from bisect import bisect_right
from collections.abc import Callable, Iterator, Mapping, Sequence
from dataclasses import replace
from pathlib import Path
from types import TracebackType
from typing import TYPE_CHECKING, Any, TypeAlias

try:  # the events' buffers and single_writer() compiled; the Python twins are below
    from microstatedb import _speedups
except ImportError:  # pragma: no cover - a build without the C extension
    _speedups = None  # type: ignore[assignment]

from microstatedb.codec import (
    Event,
    event_from_fields,
    unpackb,
)
from microstatedb.errors import (
    ConfigurationError,
    CorruptData,
    DecodeError,
    InvalidOperation,
    MicroStateError,
    OperationalError,
    StoreClosed,
    TornWrite,
)
from microstatedb.log._event_check import encode_checked
from microstatedb.log._files import (
    FolderLock,
    fsync_dir,
    os_error,
    remove_temporaries,
    write_atomic,
    write_temporary,
)
from microstatedb.log._format import (
    FRAME_OVERHEAD,
    FRAME_TARGET,
    HEADER_SIZE,
    MIN_EVENT,
    compress,
    decode_header,
    decompress,
    encode_header,
    frame_parts,
    iter_frames,
    salvage_frames,
    salvage_zstd,
)
from microstatedb.log._pending import Dots, PendingEvents
from microstatedb.log._records import LogStats, RecoveryReport, Snapshot, SnapshotInfo
from microstatedb.log._snapshots import (
    decode_snapshot,
    encode_snapshot,
    list_snapshots,
    snapshot_name,
)
from microstatedb.log._stores import EventStore

DURABILITY_POLICIES = ("none", "batch", "always")
"""Accepted values of ``durability``."""

_NONE_BUFFER = 1024
"""Under ``none``, appends collect in process up to this many events before one write()."""
_BATCH_BUFFER = 1 << 20
"""Under ``batch``, an append waits for a commit only when this many events are pending."""
_MIN_SEGMENT = 256
_READ_CHUNK = 1024
_PLAIN = ".seg"
_SEALED = ".seg.zst"


def _stored(data: bytes) -> Event:
    """An event this log encoded itself (checked when appended: no second check)."""
    fields = unpackb(data)
    return tuple.__new__(Event, fields[1:])


def _fsync(fd: int) -> None:
    os.fsync(fd)


class _Segment:
    """What the log keeps per segment: a few numbers and the largest seq of each origin."""

    __slots__ = (
        "count",
        "disk_bytes",
        "first",
        "gap_from",
        "gone",
        "origins",
        "path",
        "sealed",
        "size",
    )

    def __init__(self, first: int, gap_from: int, path: Path, sealed: bool) -> None:
        self.first = first
        self.gap_from = gap_from
        self.count = 0
        self.size = HEADER_SIZE
        self.disk_bytes = HEADER_SIZE
        self.origins: dict[str, int] = {}  # the largest seq of each origin in the segment
        self.path = path
        self.sealed = sealed
        self.gone = False  # released: a seal in progress must not bring it back

    @property
    def end(self) -> int:
        return self.first + self.count

    def note(self, origin: str, seq: int) -> None:
        if seq > self.origins.get(origin, 0):
            self.origins[origin] = seq


def _batch_loop(ref: weakref.ref[EventLog], wake: threading.Event, interval: float) -> None:
    """The group-commit thread of a ``batch`` log; holds the log only weakly."""
    while not wake.wait(interval):
        log = ref()
        if log is None:
            return
        try:
            log._commit_pending()
        except MicroStateError:  # recorded in _failed; appends and flush report it
            return
        if log._queued_snap is not None and log._snap_failed is None:
            # A failure is recorded with the snapshot kept: flush, close and the next
            # snapshot try again and raise it; this thread does not retry it every interval.
            with contextlib.suppress(MicroStateError):
                log._write_queued_snapshot()
        del log


_OPEN_LOGS: weakref.WeakSet[EventLog] = weakref.WeakSet()


@atexit.register
def _flush_open_logs() -> None:
    # A batch log's commit thread is a daemon: flush what it had not written yet at exit.
    for log in list(_OPEN_LOGS):
        with contextlib.suppress(MicroStateError, OSError):
            log.close()


def _seal_loop(
    ref: weakref.ref[EventLog],
    cv: threading.Condition,
    queue: list[_Segment],
    stop: threading.Event,
) -> None:
    """Compress rolled segments off the write path; holds the log only while sealing."""
    while True:
        with cv:
            while not queue and not stop.is_set():
                cv.wait()
            if not queue:
                return
            seg = queue[0]
        log = ref()
        try:
            if log is not None:
                log._seal(seg)
        except (OSError, MicroStateError):
            pass  # the segment stays plain, which is valid; the next open seals it
        finally:
            with cv:
                queue.pop(0)
                cv.notify_all()
        if log is None:
            return
        del log


_IOV_MAX = 1024  # buffers per writev: IOV_MAX on Linux and the BSDs


def _array_header(n: int) -> int:
    """Bytes of the msgpack array header of a frame holding ``n > 1`` events."""
    return 1 if n < 16 else 3 if n < 1 << 16 else 5


if TYPE_CHECKING:
    from microstatedb._speedups import EncodedEvents, TakenDots

    # Encoded events in order: a list, or compiled the same reads, append, extend and
    # ``del b[:n]`` over one buffer.
    EventBuffer: TypeAlias = list[bytes] | EncodedEvents
    # A durable log's pending events with their dots: compiled, or the Python twin.
    Pending: TypeAlias = EncodedEvents | PendingEvents


def _take(pending: Pending, n: int) -> tuple[bytes, Sequence[int], Dots | TakenDots]:
    """The first ``n`` pending events leave: their bytes back to back, where each ends, and
    their dots."""
    if isinstance(pending, PendingEvents):
        return pending.take(n)
    events, ends, dots = pending.take(n)
    assert dots is not None  # a durable log's pending events keep their dots
    return events, memoryview(ends).cast("q"), dots


def _segment_path(folder: Path, first: int, sealed: bool) -> Path:
    return folder / f"{first:020d}{_SEALED if sealed else _PLAIN}"


def frame_events(body: bytes) -> list[Event]:
    """The events of one frame body (one event, or an array of them); ``DecodeError`` if bad."""
    fields = unpackb(body)
    if type(fields) is list and fields and type(fields[0]) is list:
        return [event_from_fields(f) for f in fields]
    return [event_from_fields(fields)]


def _decode(body: bytes, path: Path | str, offset: int) -> list[Event]:
    try:
        return frame_events(body)
    except DecodeError as exc:
        # The checksum verified, so these bytes were written like this: refuse, never guess.
        raise CorruptData(
            f"frame does not decode as events ({exc})", path=str(path), offset=offset
        ) from exc


class EventLog:
    """An append-only log of ``codec.Event`` with global positions starting at 0.

    ``path=None`` keeps the events encoded in a list (the embedded default); a path keeps
    them in segment files under that folder with the ``durability`` policy (see
    docs/durability.md). Thread-safe, except that no append may run at the same time as a
    call of a ``single_writer()``. One ``EventLog`` per folder at a time.
    """

    # Whether single_writer() returns the compiled append (tests switch it off to hold the
    # Python one to the same protocol).
    _native: bool = _speedups is not None
    # Whether a commit frames, checksums and writes in C with the GIL released (tests switch
    # it off to hold the Python commit to the same bytes).
    _native_frames: bool = _speedups is not None

    def __init__(
        self,
        path: str | os.PathLike[str] | None,
        *,
        durability: str = "batch",
        segment_bytes: int = 16 * 2**20,
        batch_interval: float = 0.005,
        repair: bool = False,
        compress_sealed: bool = True,
        keep_snapshots: int = 2,
    ) -> None:
        if durability not in DURABILITY_POLICIES:
            raise ConfigurationError(
                f"durability must be one of {DURABILITY_POLICIES}, got {durability!r}"
            )
        if type(segment_bytes) is not int or segment_bytes < _MIN_SEGMENT:
            raise ConfigurationError(
                f"segment_bytes must be an int >= {_MIN_SEGMENT}, got {segment_bytes!r}"
            )
        if (
            not isinstance(batch_interval, int | float)
            or not math.isfinite(batch_interval)
            or batch_interval <= 0
        ):
            raise ConfigurationError(
                f"batch_interval must be a positive number of seconds, got {batch_interval!r}"
            )
        if type(keep_snapshots) is not int or keep_snapshots < 1:
            raise ConfigurationError(f"keep_snapshots must be an int >= 1, got {keep_snapshots!r}")
        if path is not None and not isinstance(path, str | os.PathLike):
            raise ConfigurationError(f"path must be a str, a path or None, got {path!r}")
        self._durability = durability
        self._always = durability == "always"
        # events pending: none writes them out at this many; batch makes appends wait past it
        self._buffer_limit = _NONE_BUFFER if durability == "none" else _BATCH_BUFFER
        self._segment_bytes = segment_bytes
        self._batch_interval = float(batch_interval)
        self._compress = compress_sealed
        self._keep = keep_snapshots
        self._lock = threading.Lock()
        self._release_lock = threading.Lock()
        self._closed = False
        self.recovery = RecoveryReport()
        self._snap_position = -1  # position of the newest snapshot written or found
        # A snapshot handed over with wait=False, for the commit thread: (state, vv, position)
        self._queued_snap: tuple[bytes, dict[str, int], int] | None = None
        self._snap_failed: MicroStateError | None = None  # why writing the queued one failed
        self._failed: BaseException | None = None
        self._refusing = False  # closed or failed: one attribute for the lock-free writer
        # in memory
        # In memory, events are kept encoded: a retained Event holds dicts, which the cyclic
        # garbage collector would scan again and again (it cost more than the write itself),
        # and the bytes take about a tenth of the memory. Compiled, they lie back to back in
        # one buffer, with no object per event at all.
        self._events: EventBuffer = _speedups.EncodedEvents() if self._native else []
        self._base = 0
        self._mem_snaps: list[Snapshot] = []
        self._dir: Path | None = None
        if path is None:
            return
        # durable
        self._dir = Path(path)
        self._snap_dir = self._dir / "snapshots"
        self._io_lock = threading.Lock()
        self._snap_lock = threading.Lock()
        self._cv = threading.Condition(threading.Lock())
        self._syncing = False
        # Pending events, encoded and unframed, with their dots; _taken counts those that left
        # for the disk, so the next position is _taken + len(_pending).
        self._pending: Pending = (
            _speedups.EncodedEvents(dots=True) if self._native else PendingEvents()
        )
        self._taken = 0
        self._segments: list[_Segment] = []
        self._firsts: list[int] = []
        self._fd = -1
        self._fsyncs = 0
        self._snap_generation = 0
        self._seal_cv = threading.Condition(threading.Lock())
        self._to_seal: list[_Segment] = []
        self._seal_stop = threading.Event()
        self._sealer: threading.Thread | None = None
        self._closed = True  # until the folder is open: nothing for close() or __del__ to do
        try:
            self._dir.mkdir(parents=True, exist_ok=True)
            self._snap_dir.mkdir(exist_ok=True)
        except OSError as exc:
            raise os_error(f"creating the log folder {self._dir}", exc) from exc
        self._folder_lock = FolderLock(self._dir)
        try:
            self._open_snapshots(repair)
            self._open_segments(repair)
        except BaseException:
            if self._fd >= 0:
                os.close(self._fd)
            self._folder_lock.release()
            raise
        self._taken = self._written = self._durable = self._segments[-1].end
        self._closed = False
        self._wake = threading.Event()
        self._thread: threading.Thread | None = None
        if durability == "batch":
            self._thread = threading.Thread(
                target=_batch_loop,
                args=(weakref.ref(self), self._wake, self._batch_interval),
                name=f"msdb-log-commit:{self._dir}",
                daemon=True,
            )
            self._thread.start()
        _OPEN_LOGS.add(self)

    # ----------------------------------------------------------------- appending

    def append(self, event: Event) -> int:
        """Append one event; returns its position. Durable as the policy says."""
        return self.append_encoded(encode_checked(event), event.origin, event.seq)

    def encoded_events(self) -> EventBuffer:
        """The in-memory log's sequence of encoded events, for one trusted writer that appends
        each event encoded as ``pack_trusted((EVENT_FORMAT, *fields))`` itself (the store's
        write path): a list, or compiled an ``EncodedEvents`` with the same ``append``. It
        stays the same object for the life of the log.

        Nothing is checked or decoded: bytes that are not such an event corrupt the log.
        A durable log takes such bytes through ``append_encoded`` instead.
        """
        if self._dir is not None:
            raise ConfigurationError(
                "encoded_events() is for in-memory logs; durable ones take append_encoded()"
            )
        return self._events

    def append_encoded(self, body: bytes, origin: str, seq: int) -> int:
        """Append one event already encoded as ``encoded_events`` says, for a trusted writer;
        returns its position. ``origin`` and ``seq`` must be the event's own."""
        if self._dir is None:
            if self._closed:
                raise StoreClosed("the event log is closed; open a new EventLog to continue")
            with self._lock:
                self._events.append(body)
                return self._base + len(self._events) - 1
        # Durable: the body waits unframed; the writer frames many at once (_write_pending).
        # acquire/release, not ``with``: the context manager protocol costs more than the
        # rest of this append.
        lock = self._lock
        lock.acquire()
        try:
            if self._closed or self._failed is not None:
                self._check_open()
            self._pending.add(body, origin, seq)
            pending = len(self._pending)
            pos = self._taken + pending - 1
        finally:
            lock.release()
        if self._always or pending >= self._buffer_limit:
            self._after_append(pos + 1)
        return pos

    def single_writer(self) -> Callable[[bytes, str, int], None]:
        """A durable log's append for the one thread that writes it, as ``append_encoded``
        takes it but with no lock and no position returned (the store's write path).

        Lock-free: it appends to the pending lists in an order the committing thread reads
        safely, so no other append to this log (by any method, from any thread) may run at
        the same time as one of its calls; one after another is fine. Under ``always`` use
        ``append_encoded``: each append waits for its fsync anyway.
        """
        if self._dir is None or self._always:
            raise ConfigurationError(
                "single_writer() is for durable logs under 'none' or 'batch'; in memory use "
                "encoded_events(), under 'always' append_encoded()"
            )
        pending = self._pending
        if not isinstance(pending, PendingEvents):
            return _speedups.appender(self, pending, self._buffer_limit)
        add = pending.add
        limit = self._buffer_limit

        def append(body: bytes, origin: str, seq: int) -> None:
            if self._refusing:
                self._check_open()
            add(body, origin, seq)
            if len(pending) >= limit:
                self._after_append(self._end())

        return append

    def _refuse_appends(self) -> None:
        """Closed or failed: the lock-free appenders check first from now on."""
        self._refusing = True
        if self._dir is not None and not isinstance(self._pending, PendingEvents):
            self._pending.refusing = True  # what the compiled appender reads

    def _end(self) -> int:
        """The next position; exact under ``_lock``, else at most one append behind."""
        return self._taken + len(self._pending)

    def append_many(self, events: Sequence[Event]) -> int:
        """Append all of ``events`` or none of them; returns the last one's position.

        An empty sequence appends nothing and returns ``next_position - 1``.
        """
        if isinstance(events, Event) or not isinstance(events, Sequence):
            raise ConfigurationError("append_many takes a sequence of events")
        if self._dir is None:
            encoded = [encode_checked(ev) for ev in events]
            with self._lock:
                if self._closed:
                    raise StoreClosed("the event log is closed; open a new EventLog to continue")
                self._events.extend(encoded)
                return self._base + len(self._events) - 1
        bodies = [encode_checked(ev) for ev in events]
        with self._lock:
            self._check_open()
            self._pending.add_many(bodies, [ev.origin for ev in events], [ev.seq for ev in events])
            pending = len(self._pending)
            upto = self._taken + pending
        if bodies and (self._always or pending >= self._buffer_limit):
            self._after_append(upto)
        return upto - 1

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed("the event log is closed; open a new EventLog to continue")
        self._check_open_or_failed()

    def _check_open_or_failed(self) -> None:
        if self._failed is not None:
            raise OperationalError(
                f"the event log at {self._dir} failed to write ({self._failed}); "
                "close it and reopen to recover"
            ) from self._failed

    def _after_append(self, upto: int) -> None:
        if self._always:
            self._commit(upto)
        elif self._durability == "none":
            with self._io_lock:
                self._write_pending()
        else:
            self._commit(upto)  # back-pressure: the disk is slower than the writers

    # ----------------------------------------------------------------- writing

    def _write_pending(self) -> None:
        """Write the pending frames to the OS (no fsync). Caller holds ``_io_lock``.

        A failed write, or a failed roll on the way, fails the log: what reached the file is
        unknown, so it refuses appends until reopened."""
        try:
            if self._native_frames and not isinstance(self._pending, PendingEvents):
                self._commit_native()
            else:
                self._commit_python()
        except OSError as exc:
            self._failed = exc
            self._refuse_appends()
            raise os_error(f"writing the log segment in {self._dir}", exc) from exc

    def _commit_python(self) -> None:
        with self._lock:
            # The buffer stays the same object (a single writer holds its appends), so take a
            # prefix: the whole events there are now.
            n = len(self._pending)
            events, ends, dots = _take(self._pending, n)
            self._taken += n
            upto = self._taken
        if n:
            self._write_items(events, ends, dots)
            self._written = upto

    def _commit_native(self) -> None:
        # EncodedEvents.commit_to frames, checksums and writes what is pending with the GIL
        # released once, straight from the writer's buffer: under a writer that never pauses,
        # each time the commit thread takes the GIL back it waits for the switch interval
        # (docs/durability.md). A full segment rolls, and what is pending then follows.
        pending = self._pending
        assert not isinstance(pending, PendingEvents)
        while len(pending):
            seg = self._segments[-1]
            n, size, full, tops = pending.commit_to(
                self._fd, self._segment_bytes - seg.size, seg.count == 0, FRAME_TARGET
            )
            with self._lock:
                del pending[:n]
                self._taken += n
                self._written = self._taken
            seg.count += n
            seg.size += size
            self._finish(seg, tops)
            if not full:
                return
            self._roll()

    def _write_items(self, events: bytes, ends: Sequence[int], dots: Dots | TakenDots) -> None:
        # ``events`` back to back, event i ending at ends[i]. Per event only C-level work
        # (bisect, scans); the Python loop runs per frame. A frame takes events up to
        # FRAME_TARGET bytes and up to what the segment has room for. An event larger than
        # that goes alone into a frame: in this segment if it has room, else the segment
        # rolls, and an event larger than an empty segment goes alone into it. (commit_to in
        # _speedups cuts the frames by the same rule.)
        view = memoryview(events)
        n = len(ends)
        seg = self._segments[-1]
        frames: list[bytes | memoryview] = []
        first = i = 0  # first: the first event of ``frames``
        while i < n:
            done = ends[i - 1] if i else 0
            room = self._segment_bytes - seg.size - FRAME_OVERHEAD
            cap = min(FRAME_TARGET, room)
            m = bisect_right(ends, done + cap, i)
            while m - i > 1 and ends[m - 1] - done + _array_header(m - i) > cap:
                m -= 1
            if m == i:
                if seg.count and ends[i] - done > room:
                    self._write_out(frames)
                    self._finish(seg, dots.maxima(first, i))
                    frames = []
                    first = i
                    seg = self._roll()
                    continue
                m = i + 1
            parts = frame_parts(view[done : ends[m - 1]], m - i)
            frames += parts
            seg.size += FRAME_OVERHEAD + sum(map(len, parts[1:]))
            seg.count += m - i
            i = m
        self._write_out(frames)
        self._finish(seg, dots.maxima(first, n))

    def _finish(self, seg: _Segment, tops: dict[str, int]) -> None:
        """A segment's bookkeeping once frames are written to it: their bytes and origins."""
        seg.disk_bytes = seg.size
        top = seg.origins
        for origin, seq in tops.items():
            if seq > top.get(origin, 0):
                top[origin] = seq

    def _write_out(self, parts: list[bytes | memoryview]) -> None:
        # writev: the frames' parts go to the file without being joined into one copy first
        for i in range(0, len(parts), _IOV_MAX):
            group = parts[i : i + _IOV_MAX]
            done = os.writev(self._fd, group)
            want = sum(map(len, group))
            if done < want:  # a short write (a signal, a full disk): the rest byte-wise
                view = memoryview(b"".join(group))[done:]
                while view:
                    view = view[os.write(self._fd, view) :]

    def _roll(self) -> _Segment:
        """Close the active segment and start the next one. Caller holds ``_io_lock``."""
        assert self._dir is not None
        old = self._segments[-1]
        old.disk_bytes = old.size
        # A segment that is not the last never holds a torn tail: make it whole on disk first.
        _fsync(self._fd)
        self._fsyncs += 1
        os.close(self._fd)
        self._fd = -1
        new = self._create_segment(old.end, old.end)
        old.sealed = True
        if self._compress:
            with self._seal_cv:
                self._to_seal.append(old)
                if self._sealer is None:
                    self._sealer = threading.Thread(
                        target=_seal_loop,
                        args=(weakref.ref(self), self._seal_cv, self._to_seal, self._seal_stop),
                        name=f"msdb-log-seal:{self._dir}",
                        daemon=True,
                    )
                    self._sealer.start()
                self._seal_cv.notify()
        return new

    def _create_segment(self, first: int, gap_from: int) -> _Segment:
        assert self._dir is not None
        path = _segment_path(self._dir, first, False)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC | os.O_APPEND, 0o644)
        header = encode_header(first, gap_from)
        os.write(fd, header)
        _fsync(fd)
        self._fsyncs += 1
        fsync_dir(self._dir)
        self._fd = fd
        seg = _Segment(first, gap_from, path, False)
        self._segments.append(seg)
        self._firsts.append(first)
        return seg

    def _seal(self, seg: _Segment) -> None:
        """Replace a complete plain segment by its zstd form (crash-safe).

        Runs without ``_io_lock`` but for the swap: the plain file is immutable since the
        roll fsynced it, and a release meanwhile marks the segment gone.
        """
        assert self._dir is not None
        plain = seg.path
        packed = compress(plain.read_bytes())
        target = _segment_path(self._dir, seg.first, True)
        tmp = write_temporary(target, packed)
        with self._io_lock:
            if seg.gone:
                tmp.unlink()
                return
            os.replace(tmp, target)
            fsync_dir(self._dir)
            seg.path = target
            seg.disk_bytes = len(packed)
        # If this unlink is lost in a crash, opening finds both copies and keeps one.
        plain.unlink()

    def _wait_sealed(self) -> None:
        """Wait until the segments rolled so far are compressed (tests and close)."""
        if self._dir is not None:
            with self._seal_cv:
                while self._to_seal:
                    self._seal_cv.wait()

    def _commit(self, upto: int) -> None:
        """Return once positions below ``upto`` are written and fsynced (group commit).

        The first caller to find no commit running becomes the leader: it writes everything
        pending (its followers' frames included) and fsyncs once; followers wait for it.
        """
        with self._cv:
            while self._durable < upto:
                self._check_open_or_failed()
                if not self._syncing:
                    self._syncing = True
                    break
                self._cv.wait()
            else:
                return
        done = -1
        try:
            with self._io_lock:
                self._write_pending()
                done = self._written
                if done > self._durable:
                    try:
                        _fsync(self._fd)
                    except OSError as exc:
                        self._failed = exc
                        self._refuse_appends()
                        raise os_error(f"fsync of the log segment in {self._dir}", exc) from exc
                    self._fsyncs += 1
        finally:
            with self._cv:
                self._syncing = False
                if done > self._durable:
                    self._durable = done
                self._cv.notify_all()

    def _commit_pending(self) -> None:
        end = self._end()
        if end > self._durable and self._failed is None:
            self._commit(end)

    def flush(self) -> None:
        """Return once everything appended so far is written and fsynced."""
        if self._dir is None:
            self._check_open()
            return
        self._check_open()
        with self._lock:
            end = self._end()
        self._commit(end)
        self._write_queued_snapshot()

    # ----------------------------------------------------------------- reading

    @property
    def first_position(self) -> int:
        """Position of the first event still held locally."""
        if self._dir is None:
            return self._base
        # gap_from: positions lost in a repair count as held, so reading from them is no error
        return self._segments[0].gap_from

    @property
    def next_position(self) -> int:
        """Position the next appended event gets."""
        if self._dir is None:
            return self._base + len(self._events)
        with self._lock:
            return self._end()

    def _check_start(self, start: int) -> None:
        if type(start) is not int or start < 0:
            raise ConfigurationError(f"start must be an int >= 0, got {start!r}")
        if start < self.first_position:
            raise InvalidOperation(
                f"positions below {self.first_position} were released from this log; "
                "load the latest snapshot and read from its position instead"
            )

    def read(self, start: int = 0) -> Iterator[Event]:
        """The events from position ``start`` on, in order, up to ``next_position`` now.

        Positions lost in a repair (see ``recovery``) are skipped.
        """
        if self._closed:
            raise StoreClosed("the event log is closed; open a new EventLog to continue")
        self._check_start(start)
        if self._dir is None:
            return self._read_memory(start, self.next_position)
        plan = self._plan(lambda seg: seg.end > start)
        return self._read_segments(plan, start)

    def _read_memory(self, start: int, end: int) -> Iterator[Event]:
        # Chunks copied under the lock: a release shifts the list and moves the base in two
        # steps, which a reader must never see half done.
        pos = start
        while pos < end:
            with self._lock:
                index = pos - self._base
                if index < 0:
                    raise InvalidOperation(
                        f"position {pos} was released while being read; use the latest snapshot"
                    )
                chunk = self._events[index : index + min(end - pos, _READ_CHUNK)]
            if not chunk:
                return
            yield from map(_stored, chunk)
            pos += len(chunk)

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        """The events of ``origin`` with ``seq > after_seq`` still held locally, in log order."""
        if self._closed:
            raise StoreClosed("the event log is closed; open a new EventLog to continue")
        if type(origin) is not str or type(after_seq) is not int:
            raise ConfigurationError("read_origin takes origin: str and after_seq: int")
        if self._dir is None:
            return self._read_origin_memory(origin, after_seq, self.next_position)
        plan = self._plan(lambda seg: origin in seg.origins and seg.origins[origin] > after_seq)
        return (
            ev for ev in self._read_segments(plan, 0) if ev.origin == origin and ev.seq > after_seq
        )

    def _read_origin_memory(self, origin: str, after_seq: int, end: int) -> Iterator[Event]:
        # A linear scan: the in-memory log keeps no index so that append stays a list append.
        for ev in self._read_memory(self._base, end):
            if ev.origin == origin and ev.seq > after_seq:
                yield ev

    def _plan(self, wanted: Any) -> list[tuple[_Segment, int, int]]:
        """Segments to read as ``(segment, first, byte size now)``, captured under the lock."""
        with self._io_lock:
            self._write_pending()
            return [(seg, seg.first, seg.size) for seg in self._segments if wanted(seg)]

    def _read_segments(self, plan: list[tuple[_Segment, int, int]], start: int) -> Iterator[Event]:
        for seg, first, size in plan:
            data, path = self._load(seg, first)
            data = data[:size]
            skip = start - first
            for offset, body in iter_frames(data, HEADER_SIZE, str(path)):
                events = _decode(body, path, offset)
                if skip >= len(events):
                    skip -= len(events)
                    continue
                yield from events[skip:] if skip > 0 else events
                skip = 0

    def _load(self, seg: _Segment, first: int) -> tuple[bytes, Path]:
        path = seg.path
        try:
            raw = path.read_bytes()
        except FileNotFoundError:
            if seg.path != path:
                # sealed meanwhile: the compressed copy was in place before the plain one went
                return self._load(seg, first)
            raise InvalidOperation(
                f"the segment from position {first} was released while being read; "
                "use the latest snapshot"
            ) from None
        except OSError as exc:
            raise os_error(f"reading {path}", exc) from exc
        return (decompress(raw, str(path)) if path.suffix == ".zst" else raw), path

    # ----------------------------------------------------------------- snapshots

    def write_snapshot(
        self, state: bytes, vv: Mapping[str, int], position: int, *, wait: bool = True
    ) -> SnapshotInfo | None:
        """Store a snapshot of the derived state covering the first ``position`` events.

        The log is flushed up to ``position`` first, so a snapshot never covers events that a
        crash could still take away. Keeps the newest ``keep_snapshots`` snapshots.

        With ``wait=False``, a ``batch`` log hands that disk work to its commit thread and
        returns None at once: a writer that snapshots every so many events does not wait for
        two fsyncs. Until it is written, the previous snapshot and the log cover the state. A
        newer handed-over snapshot replaces one not yet written; ``flush``, ``close``,
        ``release`` and a waiting ``write_snapshot`` write it first, and raise the error of a
        failed attempt. Logs in memory or under ``none`` or ``always`` always wait.
        """
        if self._closed:
            raise StoreClosed("the event log is closed; open a new EventLog to continue")
        if not isinstance(state, bytes | bytearray | memoryview):
            raise ConfigurationError(f"snapshot state must be bytes, got {type(state).__name__}")
        if not isinstance(vv, Mapping) or not all(
            type(k) is str and type(n) is int and n >= 0 for k, n in vv.items()
        ):
            raise ConfigurationError("snapshot vv must map node ids (str) to ints >= 0")
        if type(position) is not int or not 0 <= position <= self.next_position:
            raise ConfigurationError(
                f"snapshot position must be an int in [0, {self.next_position}], got {position!r}"
            )
        state = bytes(state)
        if self._dir is None:
            ident, _data = encode_snapshot(state, vv, position)
            info = SnapshotInfo(
                id=ident, vv=dict(vv), position=position, path=None, size=len(state)
            )
            with self._lock:
                self._mem_snaps.append(Snapshot(info=info, state=state))
                del self._mem_snaps[: -self._keep]
                self._snap_position = position
            return info
        if not wait and self._thread is not None:
            with self._lock:
                self._queued_snap = (state, dict(vv), position)
                self._snap_failed = None  # a new snapshot: the commit thread tries it once
            return None
        with self._snap_lock:
            self._write_queued_locked()  # snapshots are written in the order asked for
            return self._store_snapshot(state, vv, position)

    def _write_queued_snapshot(self) -> None:
        """Return once no snapshot handed over with ``wait=False`` is waiting or being
        written (by the commit thread meanwhile, or here)."""
        with self._snap_lock:
            self._write_queued_locked()

    def _write_queued_locked(self) -> None:
        with self._lock:
            queued, self._queued_snap = self._queued_snap, None
        if queued is None:
            return
        try:
            self._store_snapshot(*queued)
            self._snap_failed = None
        except MicroStateError as exc:
            with self._lock:
                if self._queued_snap is None:  # kept for the next try
                    self._queued_snap = queued
                    self._snap_failed = exc
            raise

    def _store_snapshot(self, state: bytes, vv: Mapping[str, int], position: int) -> SnapshotInfo:
        """The disk part of ``write_snapshot``. Caller holds ``_snap_lock``."""
        assert self._dir is not None
        ident, data = encode_snapshot(state, vv, position)
        if position > self._durable:
            self._commit(position)
        self._snap_generation += 1
        path = self._snap_dir / snapshot_name(self._snap_generation, ident)
        try:
            write_atomic(path, data)
            damaged = set(self.recovery.damaged_snapshots)
            valid = [p for _g, _i, p in list_snapshots(self._snap_dir) if str(p) not in damaged]
            for old in valid[self._keep :]:
                old.unlink(missing_ok=True)
        except OSError as exc:
            raise os_error(f"writing snapshot {path}", exc) from exc
        self._snap_position = position
        return SnapshotInfo(
            id=ident, vv=dict(vv), position=position, path=str(path), size=len(state)
        )

    def latest_snapshot(self) -> Snapshot | None:
        """The newest snapshot that verifies; damaged ones are skipped and reported."""
        if self._dir is None:
            with self._lock:
                return self._mem_snaps[-1] if self._mem_snaps else None
        for _gen, ident, path in list_snapshots(self._snap_dir):
            try:
                return decode_snapshot(path.read_bytes(), path, ident)
            except FileNotFoundError:
                continue  # pruned by a concurrent write_snapshot
            except CorruptData:
                self._report_damaged_snapshot(str(path))
        return None

    def _report_damaged_snapshot(self, path: str) -> None:
        with self._lock:
            rec = self.recovery
            if path not in rec.damaged_snapshots:
                self.recovery = replace(rec, damaged_snapshots=(*rec.damaged_snapshots, path))

    # ----------------------------------------------------------------- release

    def release(self, upto_position: int, archive: EventStore | None = None) -> int:
        """Let the events before ``upto_position`` leave this log; returns how many left.

        ``upto_position`` must be covered by a snapshot written through this log. In memory,
        every event before it leaves; on disk, whole sealed segments before it leave (after
        being appended to ``archive`` when one is given).
        """
        if self._closed:
            raise StoreClosed("the event log is closed; open a new EventLog to continue")
        if type(upto_position) is not int or not 0 <= upto_position <= self.next_position:
            raise ConfigurationError(
                f"upto_position must be an int in [0, {self.next_position}], got {upto_position!r}"
            )
        if upto_position > self._snap_position and self._dir is not None:
            self._write_queued_snapshot()  # the snapshot handed over may cover it
        if upto_position > self._snap_position:
            raise InvalidOperation(
                f"positions up to {upto_position} are not covered by a snapshot "
                f"(newest covers {max(self._snap_position, 0)}); call write_snapshot first"
            )
        if self._dir is None:
            with self._release_lock:
                with self._lock:
                    n = upto_position - self._base
                    if n <= 0:
                        return 0
                    # copied only for an archive: a copy of a long list touches every event
                    leaving = self._events[:n] if archive is not None else []
                if archive is not None:
                    # appends may go on meanwhile; they land after n
                    archive.append([_stored(b) for b in leaving])
                with self._lock:
                    del self._events[:n]
                    self._base = upto_position
                return n
        with self._release_lock:
            with self._io_lock:
                self._write_pending()
                leaving_segs = [
                    seg for seg in self._segments[:-1] if seg.sealed and seg.end <= upto_position
                ]
            gone = 0
            for seg in leaving_segs:
                if archive is not None:
                    data, path = self._load(seg, seg.first)
                    archive.append(
                        [
                            ev
                            for o, b in iter_frames(data, HEADER_SIZE, str(path))
                            for ev in _decode(b, path, o)
                        ]
                    )
                with self._io_lock:
                    seg.gone = True
                    try:
                        seg.path.unlink()
                        fsync_dir(self._dir)
                    except OSError as exc:
                        raise os_error(f"deleting released segment {seg.path}", exc) from exc
                    assert self._segments[0] is seg  # releases take a prefix, one at a time
                    del self._segments[0]
                    del self._firsts[0]
                gone += seg.count
            return gone

    # ----------------------------------------------------------------- stats, close

    def stats(self) -> LogStats:
        """A point-in-time summary."""
        if self._dir is None:
            with self._lock:
                n = len(self._events)
                return LogStats(
                    events=n,
                    bytes=0,
                    segments=0,
                    sealed_segments=0,
                    first_position=self._base,
                    next_position=self._base + n,
                    fsyncs=0,
                )
        with self._io_lock:
            segs = list(self._segments)
            fsyncs = self._fsyncs
        first, nxt = self.first_position, self.next_position
        return LogStats(
            events=nxt - first,
            bytes=sum(s.disk_bytes for s in segs),
            segments=len(segs),
            sealed_segments=sum(1 for s in segs if s.sealed),
            first_position=first,
            next_position=nxt,
            fsyncs=fsyncs,
        )

    def close(self) -> None:
        """Flush and release the folder. Closing twice is harmless."""
        with self._lock:  # appends racing with close either land before the flush or fail
            if self._closed:
                return
            self._closed = True
            self._refuse_appends()
        if self._dir is None:
            return
        here = threading.current_thread()  # __del__ may run in one of the log's threads
        if self._thread is not None:
            self._wake.set()
            if self._thread is not here:
                self._thread.join()
        try:
            if self._failed is None:
                self._commit(self._end())  # a single writer does not append during close()
                self._write_queued_snapshot()
        finally:
            with self._seal_cv:
                self._seal_stop.set()
                self._seal_cv.notify_all()
            if self._sealer is not None and self._sealer is not here:
                self._sealer.join()  # it finishes the queue: closed logs hold no plain seals
            with self._io_lock:
                if self._fd >= 0:
                    os.close(self._fd)
                    self._fd = -1
            self._folder_lock.release()
            _OPEN_LOGS.discard(self)

    def __del__(self) -> None:
        # Like a file object: an unreferenced durable log still writes what it buffered.
        if getattr(self, "_dir", None) is not None and not getattr(self, "_closed", True):
            with contextlib.suppress(Exception):
                self.close()

    def __enter__(self) -> EventLog:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def __repr__(self) -> str:
        where = "memory" if self._dir is None else str(self._dir)
        return f"EventLog({where}, durability={self._durability!r}, next={self.next_position})"

    # ----------------------------------------------------------------- opening

    def _open_snapshots(self, repair: bool) -> None:
        found = list_snapshots(self._snap_dir)
        remove_temporaries(self._snap_dir)
        if found:
            self._snap_generation = found[0][0]
        damaged: list[str] = []
        quarantined: list[str] = []
        for _gen, ident, path in found:
            try:
                snap = decode_snapshot(path.read_bytes(), path, ident)
            except CorruptData:
                damaged.append(str(path))
                if repair:
                    quarantined.append(self._move_aside(path))
                continue
            self._snap_position = max(self._snap_position, snap.info.position)
        self.recovery = RecoveryReport(
            damaged_snapshots=tuple(damaged), quarantined=tuple(quarantined)
        )

    def _quarantine_target(self, name: str) -> Path:
        """A free name in ``<path>/quarantine/``: earlier repairs' files are never replaced."""
        assert self._dir is not None
        qdir = self._dir / "quarantine"
        qdir.mkdir(exist_ok=True)
        target = qdir / name
        n = 0
        while target.exists():
            n += 1
            target = qdir / f"{name}.{n}"
        return target

    def _move_aside(self, path: Path) -> str:
        target = self._quarantine_target(path.name)
        os.replace(path, target)
        fsync_dir(target.parent)
        fsync_dir(path.parent)
        return str(target)

    def _segment_files(self) -> list[tuple[int, Path, bool]]:
        assert self._dir is not None
        remove_temporaries(self._dir)
        plain: dict[int, Path] = {}
        sealed: dict[int, Path] = {}
        for entry in os.scandir(self._dir):
            name = entry.name
            for suffix, table in ((_SEALED, sealed), (_PLAIN, plain)):
                stem = name[: -len(suffix)]
                if name.endswith(suffix) and stem.isdigit():
                    table[int(stem)] = Path(entry.path)
                    break
        for first in sorted(plain.keys() & sealed.keys()):
            # Sealing was interrupted after the rename: the compressed copy is whole unless it
            # was damaged since; keep whichever verifies, preferring the compressed one.
            try:
                decompress(sealed[first].read_bytes(), str(sealed[first]))
            except CorruptData:
                sealed.pop(first).unlink()
            else:
                plain.pop(first).unlink()
        files = [(f, p, False) for f, p in plain.items()] + [
            (f, p, True) for f, p in sealed.items()
        ]
        files.sort()
        return files

    def _open_segments(self, repair: bool) -> None:
        assert self._dir is not None
        files = self._segment_files()
        torn = 0
        prev_end: int | None = None
        restart: tuple[int, int] | None = None
        for index, (first, path, sealed) in enumerate(files):
            last = index == len(files) - 1
            data: bytes | None = None
            try:
                raw = path.read_bytes()
                data = decompress(raw, str(path)) if sealed else raw
                seg, cut = self._scan(first, path, data, sealed, last, prev_end)
                if seg is not None and sealed:
                    seg.disk_bytes = len(raw)
            except CorruptData as exc:
                if not repair:
                    raise
                restart = self._repair(files[index:], exc.offset or 0, data, prev_end)
                break
            except OSError as exc:
                raise os_error(f"reading {path}", exc) from exc
            torn += cut
            if seg is None:
                break
            self._segments.append(seg)
            self._firsts.append(seg.first)
            prev_end = seg.end
        if torn:
            self.recovery = replace(self.recovery, torn_bytes=torn)
        active = self._segments[-1] if self._segments and restart is None else None
        for seg in self._segments:
            if seg is not active:
                seg.sealed = True
                if self._compress and seg.path.suffix != ".zst":
                    self._seal(seg)
        if active is not None and not active.sealed:
            self._fd = os.open(active.path, os.O_WRONLY | os.O_APPEND)
        elif restart is not None:
            self._create_segment(*restart)
        else:
            start = active.end if active is not None else (files[0][0] if files else 0)
            self._create_segment(start, start)

    def _scan(
        self,
        first: int,
        path: Path,
        data: bytes,
        sealed: bool,
        last: bool,
        prev_end: int | None,
    ) -> tuple[_Segment | None, int]:
        """Verify one segment; returns it (None if its header was torn) and torn bytes cut."""
        where = str(path)
        tail_allowed = last and not sealed
        try:
            head_first, gap_from = decode_header(data, where)
        except TornWrite:
            if not tail_allowed:
                raise CorruptData("segment header is incomplete", path=where, offset=0) from None
            path.unlink()
            fsync_dir(path.parent)
            return None, len(data)
        if head_first != first:
            raise CorruptData("segment header does not match the file name", path=where, offset=0)
        if prev_end is not None and gap_from != prev_end:
            raise CorruptData(
                f"segment does not continue the previous one (ends at {prev_end}, this one "
                f"follows {gap_from}): a segment file is missing",
                path=where,
                offset=0,
            )
        seg = _Segment(first, gap_from, path, sealed)
        cut = 0
        try:
            for offset, body in iter_frames(data, HEADER_SIZE, where):
                for ev in _decode(body, path, offset):
                    seg.note(ev.origin, ev.seq)
                    seg.count += 1
                seg.size = offset + len(body) + FRAME_OVERHEAD
        except TornWrite as exc:
            if not tail_allowed:
                raise CorruptData(
                    "segment ends inside a frame", path=where, offset=exc.offset
                ) from None
            cut = len(data) - seg.size
            os.truncate(path, seg.size)
            fd = os.open(path, os.O_WRONLY)
            try:
                _fsync(fd)
            finally:
                os.close(fd)
        seg.disk_bytes = seg.size
        return seg, cut

    def _repair(
        self,
        files: list[tuple[int, Path, bool]],
        offset: int,
        data: bytes | None,
        prev_end: int | None,
    ) -> tuple[int, int]:
        """Move the damaged part (``files[0]`` from ``offset``, and every later file) aside.

        Keeps the verified prefix of ``files[0]``, records what the moved-aside bytes still
        hold, and returns ``(first, gap_from)`` for the new active segment: past every position
        the lost part may have used, so that no position is ever given to two events.
        """
        assert self._dir is not None
        lost: list[tuple[str, int]] = []
        undecodable = 0
        quarantined: list[str] = []
        kept_end = prev_end if prev_end is not None else files[0][0]
        high = kept_end
        for index, (first, path, sealed) in enumerate(files):
            raw = path.read_bytes()
            plain, declared, whole = _plain_for_repair(
                raw, path, sealed, data if index == 0 else None
            )
            try:
                head_first, _gap = decode_header(plain, str(path))
                header_ok = True
            except CorruptData:
                head_first, header_ok = first, False
            cut = 0
            if index == 0 and header_ok:
                cut = offset if whole else _verified_prefix(plain)
            seg: _Segment | None = None
            if cut > HEADER_SIZE:
                seg = _Segment(head_first, kept_end, path, True)
                for o, body in iter_frames(plain[:cut], HEADER_SIZE, str(path)):
                    for ev in _decode(body, path, o):
                        seg.note(ev.origin, ev.seq)
                        seg.count += 1
                seg.size = seg.disk_bytes = cut
                kept_end = seg.end
                start = accounted = cut
            else:
                start = accounted = HEADER_SIZE if header_ok else 0
            found = 0
            for _o, body in salvage_frames(plain, start):
                try:
                    events = frame_events(body)
                except DecodeError:
                    continue
                lost.extend(ev.dot for ev in events)
                found += len(events)
                accounted += len(body) + FRAME_OVERHEAD
            missing = max(declared - accounted, 0)
            undecodable += missing
            base = seg.end if seg is not None else max(head_first, kept_end)
            high = max(high, base + found + math.ceil(missing / MIN_EVENT))
            quarantined.append(self._quarantine_copy(path, raw))
            if seg is not None:
                target = _segment_path(self._dir, seg.first, False)
                write_atomic(target, plain[:cut])
                if path != target:
                    path.unlink()
                seg.path = target
                self._segments.append(seg)
                self._firsts.append(seg.first)
            else:
                path.unlink()
        fsync_dir(self._dir)
        rec = self.recovery
        self.recovery = replace(
            rec,
            quarantined=(*rec.quarantined, *quarantined),
            lost_dots=tuple(lost),
            undecodable_bytes=undecodable,
        )
        return max(high, kept_end, self._snap_position), kept_end

    def _quarantine_copy(self, path: Path, raw: bytes) -> str:
        target = self._quarantine_target(path.name)
        write_atomic(target, raw)
        return str(target)


def _plain_for_repair(
    raw: bytes, path: Path, sealed: bool, data: bytes | None
) -> tuple[bytes, int, bool]:
    """The plain bytes of a file being moved aside, its declared size, and whether whole."""
    if data is not None:
        return data, len(data), True
    if not sealed:
        return raw, len(raw), True
    try:
        plain = decompress(raw, str(path))
    except CorruptData:
        salvaged = salvage_zstd(raw)
        return salvaged.data, salvaged.size, False
    return plain, len(plain), True


def _verified_prefix(plain: bytes) -> int:
    """Where the run of verified, decodable frames after the header ends."""
    end = HEADER_SIZE
    try:
        for offset, body in iter_frames(plain, HEADER_SIZE, ""):
            frame_events(body)
            end = offset + FRAME_OVERHEAD + len(body)
    except (CorruptData, DecodeError):
        pass
    return end
