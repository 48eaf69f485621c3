"""Snapshots (write, load, keep, fall back) and release of covered events (memory, archive)."""

from __future__ import annotations

import errno
import struct
import sys
import tempfile
import threading
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.codec import digest_of
from microstatedb.errors import (
    ConfigurationError,
    InvalidOperation,
    OperationalError,
    StoreClosed,
)
from microstatedb.log import EventLog, FolderEventStore, MemoryEventStore, _log

from .helpers import ev, fill, segment_files


def _snap_files(path: Path) -> list[Path]:
    return sorted((path / "snapshots").glob("*.snap"))


@pytest.mark.parametrize("durable", [False, True])
def test_snapshot_round_trip_and_keep(tmp_path: Path, durable: bool) -> None:
    log = EventLog(tmp_path if durable else None, keep_snapshots=2)
    assert log.latest_snapshot() is None
    log.append_many([ev("a", i) for i in range(1, 11)])
    infos = [log.write_snapshot(f"state{i}".encode(), {"a": 3 * i}, 3 * i) for i in (1, 2, 3)]
    snap = log.latest_snapshot()
    assert snap is not None
    assert snap.state == b"state3"
    assert snap.info == infos[-1]
    assert (snap.info.position, dict(snap.info.vv), snap.info.size) == (9, {"a": 9}, 6)
    assert len(snap.info.id) == 64
    if durable:
        assert [Path(i.path or "") for i in infos[1:]] == _snap_files(tmp_path)
        log.close()
        with EventLog(tmp_path) as again:
            loaded = again.latest_snapshot()
            assert loaded == snap
    else:
        assert snap.info.path is None
        log.close()


def test_equal_content_gives_equal_ids() -> None:
    log = EventLog(None)
    log.append(ev("a", 1))
    one = log.write_snapshot(b"s", {"a": 1}, 1)
    two = log.write_snapshot(b"s", {"a": 1}, 1)
    three = log.write_snapshot(b"s", {"a": 1}, 0)
    assert one.id == two.id != three.id


def test_a_damaged_snapshot_falls_back_to_the_older_one(tmp_path: Path) -> None:
    with EventLog(tmp_path) as log:
        log.append_many([ev("a", i) for i in range(1, 6)])
        log.write_snapshot(b"old", {"a": 2}, 2)
        log.write_snapshot(b"new", {"a": 5}, 5)
    newest = _snap_files(tmp_path)[-1]
    data = bytearray(newest.read_bytes())
    data[12] ^= 1
    newest.write_bytes(bytes(data))
    with EventLog(tmp_path) as log:
        assert log.recovery.damaged_snapshots == (str(newest),)
        snap = log.latest_snapshot()
        assert snap is not None
        assert snap.state == b"old"
        # a new snapshot keeps the valid older one rather than counting the damaged one
        log.write_snapshot(b"newer", {"a": 5}, 5)
        assert newest.exists()
        assert len(_snap_files(tmp_path)) == 3
    with EventLog(tmp_path, repair=True) as log:
        assert any("quarantine" in q for q in log.recovery.quarantined)
        assert len(_snap_files(tmp_path)) == 2


def test_damage_found_after_opening_is_reported_too(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append(ev("a", 1))
    log.write_snapshot(b"only", {"a": 1}, 1)
    only = _snap_files(tmp_path)[0]
    only.write_bytes(only.read_bytes()[:-1])
    assert log.latest_snapshot() is None  # full replay from position 0
    assert log.recovery.damaged_snapshots == (str(only),)
    assert log.latest_snapshot() is None
    assert len(log.recovery.damaged_snapshots) == 1
    log.close()


@settings(max_examples=30)
@given(which=st.integers(0, 1), offset=st.integers(0, 10_000), mask=st.integers(1, 255))
def test_flipped_snapshot_bytes_never_give_wrong_state(which: int, offset: int, mask: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        states = [b"first state " * 20, b"second state " * 30]
        with EventLog(path) as log:
            log.append_many([ev("a", i) for i in range(1, 5)])
            log.write_snapshot(states[0], {"a": 2}, 2)
            log.write_snapshot(states[1], {"a": 4}, 4)
        victim = _snap_files(path)[which]
        data = bytearray(victim.read_bytes())
        data[offset % len(data)] ^= mask
        victim.write_bytes(bytes(data))
        with EventLog(path) as log:
            snap = log.latest_snapshot()
            assert snap is not None
            assert log.recovery.damaged_snapshots == (str(victim),)
            assert snap.state == states[1 - which]
            assert snap.info.position == (4 if which == 0 else 2)


def test_snapshot_arguments_are_checked(tmp_path: Path) -> None:
    log = EventLog(tmp_path)
    log.append(ev("a", 1))
    bad_calls = [
        ("state", {"a": 1}, 1),
        (b"s", {"a": "1"}, 1),
        (b"s", [("a", 1)], 1),
        (b"s", {"a": 1}, 2),
        (b"s", {"a": 1}, -1),
    ]
    for state, vv, position in bad_calls:
        with pytest.raises(ConfigurationError):
            log.write_snapshot(state, vv, position)  # type: ignore[arg-type]
    log.close()
    with pytest.raises(StoreClosed):
        log.write_snapshot(b"s", {}, 0)


def test_release_in_memory_drops_covered_events_into_the_archive() -> None:
    log = EventLog(None)
    events = [ev("a", i) for i in range(1, 21)]
    log.append_many(events)
    with pytest.raises(InvalidOperation):
        log.release(5)  # no snapshot covers it yet
    log.write_snapshot(b"s", {"a": 12}, 12)
    archive = MemoryEventStore()
    assert log.release(12, archive) == 12
    assert log.release(12, archive) == 0
    assert list(archive.read()) == events[:12]
    assert log.first_position == 12
    assert list(log.read(12)) == events[12:]
    assert list(log.read_origin("a", 15)) == events[15:]
    with pytest.raises(InvalidOperation, match="snapshot"):
        list(log.read(3))
    with pytest.raises(InvalidOperation):
        log.release(13)
    with pytest.raises(ConfigurationError):
        log.release(99)
    assert log.append(ev("a", 21)) == 20
    assert log.stats().events == 9


def test_release_on_disk_archives_whole_sealed_segments(tmp_path: Path) -> None:
    events = fill(tmp_path / "log", 90)
    archive = FolderEventStore(tmp_path / "archive")
    with EventLog(tmp_path / "log", segment_bytes=1024) as log:
        before = log.stats()
        log.write_snapshot(b"s", {}, 50)
        gone = log.release(50, archive)
        after = log.stats()
        assert 0 < gone <= 50
        assert log.first_position == gone
        assert after.segments < before.segments
        assert list(archive.read()) == events[:gone]
        assert list(log.read(gone)) == events[gone:]
        with pytest.raises(InvalidOperation):
            next(log.read(0))
        assert log.release(50, archive) == 0
    with EventLog(tmp_path / "log", segment_bytes=1024) as log:
        assert log.first_position == gone
        assert list(log.read(gone)) == events[gone:]
        log.write_snapshot(b"s", {}, 90)
        assert log.release(90) > 0  # no archive: the segments are simply deleted
        assert [e.dot for e in log.read(log.first_position)] == [
            e.dot for e in events[log.first_position :]
        ]
    archive.close()


def test_a_reader_of_a_released_segment_is_told_to_use_the_snapshot(tmp_path: Path) -> None:
    fill(tmp_path, 90)
    with EventLog(tmp_path, segment_bytes=1024) as log:
        reader = log.read(0)
        log.write_snapshot(b"s", {}, 60)
        log.release(60)
        with pytest.raises(InvalidOperation):
            list(reader)


def test_reopen_after_release_survives_a_crash_between_archive_and_delete(
    tmp_path: Path,
) -> None:
    events = fill(tmp_path / "log", 60)
    archive = FolderEventStore(tmp_path / "archive")
    first = segment_files(tmp_path / "log")[0]
    kept = first.read_bytes()
    with EventLog(tmp_path / "log") as log:
        log.write_snapshot(b"s", {}, 30)
        gone = log.release(30, archive)
    first.write_bytes(kept)  # as if the delete had not happened
    with EventLog(tmp_path / "log") as log:
        log.write_snapshot(b"s", {}, 30)
        assert log.release(30, archive) == gone  # archived again: an idempotent no-op
    assert list(archive.read()) == events[:gone]
    archive.close()


def _rename_to_content(path: Path, data: bytes) -> Path:
    ident = digest_of(data[:-32]).hex()
    target = path.with_name(f"{9:012d}-{ident}.snap")
    path.unlink()
    target.write_bytes(data)
    return target


@pytest.mark.parametrize("damage", ["renamed", "magic", "meta", "short"])
def test_snapshot_files_that_are_not_snapshots_are_skipped(tmp_path: Path, damage: str) -> None:
    with EventLog(tmp_path) as log:
        log.append(ev("a", 1))
        log.write_snapshot(b"good", {"a": 1}, 1)
    [path] = _snap_files(tmp_path)
    data = path.read_bytes()
    if damage == "renamed":
        target = path.with_name(f"{2:012d}-{'0' * 64}.snap")
        path.rename(target)
        path = target
    elif damage in ("magic", "meta"):
        body = (
            b"XXXX" + data[4:-32]
            if damage == "magic"
            else struct.pack(">4sBI", b"MSDS", 1, 1) + b"\xc1" + b"state"
        )
        path = _rename_to_content(path, body + digest_of(body))
    else:
        path.write_bytes(b"tiny")
    with EventLog(tmp_path) as log:
        assert log.recovery.damaged_snapshots == (str(path),)
        assert log.latest_snapshot() is None


def test_concurrent_releases_and_appends_in_memory() -> None:
    log = EventLog(None)
    events = [ev("a", i) for i in range(1, 4001)]
    log.append_many(events[:2000])
    log.write_snapshot(b"s", {"a": 2000}, 2000)
    archive = MemoryEventStore()
    gone: list[int] = []

    def releaser(upto: int) -> None:
        gone.append(log.release(upto, archive))

    def appender() -> None:
        for e in events[2000:]:
            log.append(e)

    threads = [threading.Thread(target=releaser, args=(u,)) for u in (500, 1000, 1500, 2000)]
    threads.append(threading.Thread(target=appender))
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert sum(gone) == 2000
    assert log.first_position == 2000
    assert list(archive.read()) == events[:2000]
    assert list(log.read(2000)) == events[2000:]


def test_memory_readers_never_see_a_shifted_event_during_releases() -> None:
    log = EventLog(None)
    log.append_many([ev("a", i) for i in range(1, 20_001)])  # position p holds seq p + 1
    log.write_snapshot(b"s", {"a": 20_000}, 20_000)
    wrong: list[tuple[int, int]] = []
    done = threading.Event()

    def reader() -> None:
        while not done.is_set():
            start = log.first_position
            try:
                for pos, e in enumerate(log.read(start), start):
                    if e.seq != pos + 1:
                        wrong.append((pos, e.seq))
            except InvalidOperation:
                continue  # released under the reader: start again from the new first

    t = threading.Thread(target=reader)
    interval = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # switch threads between nearly every bytecode
    try:
        t.start()
        for upto in range(200, 20_001, 200):
            log.release(upto)
    finally:
        done.set()
        t.join()
        sys.setswitchinterval(interval)
    assert wrong == []
    assert log.first_position == 20_000


# Snapshots handed to a batch log's commit thread (write_snapshot(..., wait=False)). A long
# batch_interval keeps that thread asleep, so the test decides when the snapshot is written.


def _idle_batch_log(path: Path, **options: object) -> EventLog:
    return EventLog(path, durability="batch", batch_interval=3600, **options)  # type: ignore[arg-type]


def test_a_handed_over_snapshot_is_written_after_the_log_up_to_it(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = _idle_batch_log(tmp_path)
    log.append_many([ev("a", i) for i in range(1, 11)])
    assert log.write_snapshot(b"s10", {"a": 10}, 10, wait=False) is None
    assert log.latest_snapshot() is None  # nothing on disk yet: the writer did not wait
    durable_when_written = []
    write_atomic = _log.write_atomic

    def watched(path: Path, data: bytes) -> None:
        durable_when_written.append(log._durable)
        write_atomic(path, data)

    monkeypatch.setattr(_log, "write_atomic", watched)
    log.flush()
    assert durable_when_written == [10]  # the log reached the disk first
    snap = log.latest_snapshot()
    assert snap is not None
    assert (snap.state, snap.info.position) == (b"s10", 10)
    log.close()


def test_a_newer_handed_over_snapshot_replaces_one_not_yet_written(tmp_path: Path) -> None:
    log = _idle_batch_log(tmp_path, keep_snapshots=5)
    log.append_many([ev("a", i) for i in range(1, 11)])
    log.write_snapshot(b"s5", {"a": 5}, 5, wait=False)
    log.write_snapshot(b"s10", {"a": 10}, 10, wait=False)
    log.flush()
    assert len(_snap_files(tmp_path)) == 1
    snap = log.latest_snapshot()
    assert snap is not None
    assert snap.state == b"s10"
    log.close()


def test_snapshots_are_written_in_the_order_asked_for(tmp_path: Path) -> None:
    log = _idle_batch_log(tmp_path, keep_snapshots=5)
    log.append_many([ev("a", i) for i in range(1, 11)])
    log.write_snapshot(b"s5", {"a": 5}, 5, wait=False)
    info = log.write_snapshot(b"s10", {"a": 10}, 10)  # waits: the handed-over one goes first
    assert info is not None
    assert len(_snap_files(tmp_path)) == 2
    snap = log.latest_snapshot()
    assert snap is not None
    assert snap.info == info
    log.close()


def test_close_writes_a_handed_over_snapshot(tmp_path: Path) -> None:
    log = _idle_batch_log(tmp_path)
    log.append_many([ev("a", i) for i in range(1, 4)])
    log.write_snapshot(b"s3", {"a": 3}, 3, wait=False)
    log.close()
    with EventLog(tmp_path) as again:
        snap = again.latest_snapshot()
        assert snap is not None
        assert (snap.state, dict(snap.info.vv)) == (b"s3", {"a": 3})


def test_release_writes_the_handed_over_snapshot_that_covers_it(tmp_path: Path) -> None:
    events = fill(tmp_path, 90)
    with _idle_batch_log(tmp_path, segment_bytes=1024) as log:
        log.write_snapshot(b"s", {}, 60, wait=False)
        gone = log.release(60)
        assert gone > 0
        assert list(log.read(gone)) == events[gone:]
        assert log.latest_snapshot() is not None


@pytest.mark.parametrize("durability", ["none", "always"])
def test_logs_without_a_commit_thread_always_wait(tmp_path: Path, durability: str) -> None:
    with EventLog(tmp_path, durability=durability) as log:
        log.append(ev("a", 1))
        info = log.write_snapshot(b"s", {"a": 1}, 1, wait=False)
        assert info is not None
        assert [Path(info.path or "")] == _snap_files(tmp_path)
    memory = EventLog(None)
    memory.append(ev("a", 1))
    assert memory.write_snapshot(b"s", {"a": 1}, 1, wait=False) is not None


def test_a_failed_background_snapshot_is_kept_and_raised_by_flush(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    log = EventLog(tmp_path, durability="batch", batch_interval=0.001)
    tried = threading.Event()

    def no_space(path: Path, data: bytes) -> None:
        tried.set()
        raise OSError(errno.ENOSPC, "no space left on device")

    monkeypatch.setattr(_log, "write_atomic", no_space)
    log.append_many([ev("a", i) for i in range(1, 6)])
    log.write_snapshot(b"s5", {"a": 5}, 5, wait=False)
    assert tried.wait(10)  # the commit thread tried it
    with pytest.raises(OperationalError, match="no space"):
        log.flush()
    with pytest.raises(OperationalError, match="no space"):
        log.release(5)  # it tries the snapshot that would cover it
    assert log.append(ev("a", 6)) == 5  # the log itself is fine
    monkeypatch.undo()
    log.flush()  # the kept snapshot is written now
    snap = log.latest_snapshot()
    assert snap is not None
    assert snap.state == b"s5"
    log.close()
    with EventLog(tmp_path) as again:
        assert [e.dot for e in again.read()] == [("a", i) for i in range(1, 7)]
