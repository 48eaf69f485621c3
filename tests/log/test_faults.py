"""Faults from below: failing fsyncs and writes, unreadable files, readers racing housekeeping."""

from __future__ import annotations

import errno
import gc
import threading
from pathlib import Path

import pytest

from microstatedb.errors import InvalidOperation, OperationalError
from microstatedb.log import EventLog, _log

from .helpers import ev, fill, segment_files


def _failing_fsync(fd: int) -> None:
    raise OSError(errno.EIO, "simulated I/O error")


def test_a_failed_fsync_fails_the_append_and_the_log(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(tmp_path, durability="always")
    log.append(ev("a", 1))
    monkeypatch.setattr(_log, "_fsync", _failing_fsync)
    with pytest.raises(OperationalError, match="fsync"):
        log.append(ev("a", 2))
    # the log cannot tell what reached the disk: it refuses work until reopened
    with pytest.raises(OperationalError, match="reopen"):
        log.append(ev("a", 3))
    with pytest.raises(OperationalError):
        log.flush()
    monkeypatch.undo()
    log.close()
    with EventLog(tmp_path) as again:
        assert [e.dot for e in again.read()][:1] == [("a", 1)]


def test_a_failed_write_fails_the_flush(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    log = EventLog(tmp_path, durability="none")
    log.append(ev("a", 1))

    def no_space(self: EventLog, chunk: list[bytes]) -> None:
        raise OSError(errno.ENOSPC, "no space left on device")

    monkeypatch.setattr(EventLog, "_write_out", no_space)
    with pytest.raises(OperationalError, match="no space"):
        log.flush()
    with pytest.raises(OperationalError):
        log.append(ev("a", 2))
    monkeypatch.undo()
    log.close()


def test_a_failed_background_commit_is_reported_to_the_next_append(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(tmp_path, durability="batch", batch_interval=0.001)
    monkeypatch.setattr(_log, "_fsync", _failing_fsync)
    log.append(ev("a", 1))
    assert log._thread is not None
    log._thread.join(timeout=10)
    assert not log._thread.is_alive()
    with pytest.raises(OperationalError):
        log.append(ev("a", 2))
    monkeypatch.undo()
    log.close()


def test_batch_applies_back_pressure_when_too_much_is_pending(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(_log, "_BATCH_BUFFER", 200)
    with EventLog(tmp_path, durability="batch", batch_interval=3600) as log:
        start = log.stats().fsyncs
        for i in range(1, 11):
            log.append(ev("a", i))
        assert log.stats().fsyncs > start  # appends committed themselves, not the thread


def test_an_unreferenced_log_flushes_and_its_thread_ends(tmp_path: Path) -> None:
    log = EventLog(tmp_path, durability="batch", batch_interval=3600)
    log.append(ev("a", 1))
    thread = log._thread
    assert thread is not None
    del log
    gc.collect()
    thread.join(timeout=10)
    assert not thread.is_alive()
    with EventLog(tmp_path) as again:  # the folder lock was released too
        assert [e.dot for e in again.read()] == [("a", 1)]


def test_unusable_paths_are_operational_errors(tmp_path: Path) -> None:
    (tmp_path / "file").write_text("not a folder")
    with pytest.raises(OperationalError):
        EventLog(tmp_path / "file" / "log")
    (tmp_path / "log").mkdir()
    (tmp_path / "log" / f"{0:020d}.seg").mkdir()
    with pytest.raises(OperationalError):
        EventLog(tmp_path / "log")
    EventLog(tmp_path / "log2").close()  # the lock of a failed open is released


def test_a_reader_follows_a_segment_sealed_under_it(tmp_path: Path) -> None:
    with EventLog(tmp_path, durability="none", segment_bytes=1024) as log:
        log.append_many([ev("a", i) for i in range(1, 6)])
        reader = log.read(0)  # planned while the first segment is plain and active
        log.append_many([ev("a", i) for i in range(6, 80)])
        log.flush()
        log._wait_sealed()
        assert segment_files(tmp_path)[0].suffix == ".zst"
        assert [e.seq for e in reader] == [1, 2, 3, 4, 5]


def test_a_memory_reader_is_told_when_positions_leave(tmp_path: Path) -> None:
    log = EventLog(None)
    events = [ev("a", i) for i in range(1, 5001)]
    log.append_many(events)
    reader = log.read(0)
    got = [next(reader)]
    log.write_snapshot(b"s", {"a": 5000}, 5000)
    log.release(5000)
    with pytest.raises(InvalidOperation):
        got.extend(reader)  # what was already fetched comes out right, then the error
    assert got == events[: len(got)]
    assert len(got) < len(events)


def test_flush_in_memory_is_a_no_op() -> None:
    log = EventLog(None)
    log.flush()
    assert log.stats().fsyncs == 0


def test_leftover_files_do_not_confuse_opening(tmp_path: Path) -> None:
    events = fill(tmp_path, 30)
    (tmp_path / "notes.txt").write_text("hello")
    (tmp_path / "abc.seg").write_text("not a segment name")
    with EventLog(tmp_path) as log:
        assert list(log.read()) == events


def _gated_compress(monkeypatch: pytest.MonkeyPatch) -> threading.Event:
    """Make sealing wait for the returned gate: a slow compression, under the test's control."""
    gate = threading.Event()
    real = _log.compress

    def slow(data: bytes) -> bytes:
        assert gate.wait(timeout=30)
        return real(data)

    monkeypatch.setattr(_log, "compress", slow)
    return gate


def test_appends_under_always_do_not_wait_for_sealing(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _gated_compress(monkeypatch)
    with EventLog(tmp_path, durability="always", segment_bytes=512) as log:
        for i in range(1, 61):
            log.append(ev("a", i))  # rolls several times while no seal can finish
        assert log.next_position == 60
        assert all(p.suffix == ".seg" for p in segment_files(tmp_path))
        gate.set()
    assert all(p.suffix == ".zst" for p in segment_files(tmp_path)[:-1])


def test_a_release_during_a_seal_leaves_no_trace(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    gate = _gated_compress(monkeypatch)
    log = EventLog(tmp_path, durability="none", segment_bytes=512)
    log.append_many([ev("a", i) for i in range(1, 61)])
    log.flush()
    log.write_snapshot(b"s", {"a": 60}, 60)
    gone = log.release(60)
    assert gone > 0
    gate.set()
    log._wait_sealed()
    first = log.first_position
    log.close()
    assert all(int(p.name.split(".")[0]) >= first for p in segment_files(tmp_path))
    assert not list(tmp_path.glob("*.tmp"))
    with EventLog(tmp_path) as again:
        assert again.first_position == first
        assert [e.seq for e in again.read(first)] == list(range(first + 1, 61))


def test_a_failed_seal_leaves_a_valid_plain_segment(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def no_space(path: Path, data: bytes) -> Path:
        raise OSError(errno.ENOSPC, "no space left on device")

    monkeypatch.setattr(_log, "write_temporary", no_space)
    with EventLog(tmp_path, durability="none", segment_bytes=512) as log:
        log.append_many([ev("a", i) for i in range(1, 61)])
        log.flush()
        log._wait_sealed()
        assert all(p.suffix == ".seg" for p in segment_files(tmp_path))
        assert [e.seq for e in log.read()] == list(range(1, 61))
    monkeypatch.undo()
    with EventLog(tmp_path) as log:  # opening seals what was left plain
        assert [e.seq for e in log.read()] == list(range(1, 61))
    assert all(p.suffix == ".zst" for p in segment_files(tmp_path)[:-1])
