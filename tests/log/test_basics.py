"""Round trips of the event log for every durability policy, in memory and on disk."""

from __future__ import annotations

import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import zstandard

from microstatedb.codec import EVENT_FORMAT, Event, pack_trusted
from microstatedb.errors import ConfigurationError, DataError, InvalidOperation, StoreClosed
from microstatedb.log import EventLog, LogStats, _log

from .helpers import fill, segment_files

POLICIES = ["none", "batch", "always"]


def ev(origin: str, seq: int, op: object = 1) -> Event:
    return Event(origin, seq, seq * 10, {}, f"k{seq % 3}", "counter", op)


def test_memory_round_trip() -> None:
    log = EventLog(None)
    assert log.append(ev("a", 1)) == 0
    assert log.append_many([ev("a", 2), ev("b", 1)]) == 2
    assert list(log.read()) == [ev("a", 1), ev("a", 2), ev("b", 1)]
    assert list(log.read(2)) == [ev("b", 1)]
    assert list(log.read_origin("a", 1)) == [ev("a", 2)]
    assert (log.first_position, log.next_position) == (0, 3)


@pytest.mark.parametrize("durability", POLICIES)
def test_durable_round_trip(tmp_path: Path, durability: str) -> None:
    events = [ev("ab"[i % 2], i // 2 + 1, [i, "x" * (i % 7)]) for i in range(300)]
    with EventLog(tmp_path, durability=durability, segment_bytes=2048) as log:
        for i, e in enumerate(events[:200]):
            assert log.append(e) == i
        assert log.append_many(events[200:]) == 299
        assert list(log.read()) == events
    with EventLog(tmp_path, durability=durability, segment_bytes=2048) as log:
        assert log.recovery.clean
        assert list(log.read()) == events
        assert list(log.read(123)) == events[123:]
        assert list(log.read_origin("b", 100)) == [e for e in events if e.origin == "b"][100:]
        stats = log.stats()
        assert stats.segments > 3
        assert stats.sealed_segments == stats.segments - 1
        assert stats.next_position == 300


def test_policies_and_sizes_are_checked(tmp_path: Path) -> None:
    bad: list[dict[str, object]] = [
        {"durability": "sometimes"},
        {"segment_bytes": 10},
        {"segment_bytes": 1.5},
        {"batch_interval": 0},
        {"batch_interval": float("nan")},
        {"batch_interval": "1"},
        {"keep_snapshots": 0},
    ]
    for kwargs in bad:
        with pytest.raises(ConfigurationError):
            EventLog(tmp_path, **kwargs)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        EventLog(42)  # type: ignore[arg-type]


@pytest.mark.parametrize("durable", [False, True])
def test_bad_events_are_refused_and_batches_are_all_or_nothing(
    tmp_path: Path, durable: bool
) -> None:
    with EventLog(tmp_path if durable else None) as log:
        log.append(ev("a", 1))
        bad: list[object] = [("a", 2)]
        if durable:  # in memory only the envelope is checked: the hot path stays a list append
            bad += [
                Event("a", "2", 0, {}, "k", "c", 1),  # type: ignore[arg-type]
                Event("a", 2, 0, {1: 2}, "k", "c", 1),  # type: ignore[dict-item]
                Event("a", 2, 0, {}, "k", "c", {1, 2}),
            ]
        for item in bad:
            with pytest.raises(DataError):
                log.append_many([ev("a", 2), item])  # type: ignore[list-item]
        with pytest.raises(DataError):
            log.append(("a", 2))  # type: ignore[arg-type]
        with pytest.raises(ConfigurationError):
            log.append_many(ev("a", 2))  # type: ignore[arg-type]
        assert log.append_many([]) == 0
        assert list(log.read()) == [ev("a", 1)]
        assert log.next_position == 1
        with pytest.raises(ConfigurationError):
            list(log.read(-1))
        with pytest.raises(ConfigurationError):
            list(log.read_origin(1))  # type: ignore[arg-type]
        assert list(log.read(5)) == []


@pytest.mark.parametrize("durable", [False, True])
def test_a_closed_log_refuses_work(tmp_path: Path, durable: bool) -> None:
    log = EventLog(tmp_path if durable else None)
    log.append(ev("a", 1))
    log.close()
    log.close()
    for call in (
        lambda: log.append(ev("a", 2)),
        lambda: log.append_many([ev("a", 2)]),
        lambda: log.read(),
        lambda: log.read_origin("a"),
        lambda: log.flush(),
        lambda: log.release(0),
    ):
        with pytest.raises(StoreClosed):
            call()
    assert log.stats().next_position == 1
    assert "EventLog(" in repr(log)


def test_one_open_log_per_folder(tmp_path: Path) -> None:
    with EventLog(tmp_path), pytest.raises(InvalidOperation, match="already open"):
        EventLog(tmp_path)
    EventLog(tmp_path).close()


def test_memory_log_is_thread_safe() -> None:
    log = EventLog(None)
    positions: list[list[int]] = [[] for _ in range(4)]

    def writer(i: int) -> None:
        for seq in range(1, 501):
            positions[i].append(log.append(ev(f"w{i}", seq)))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    events = list(log.read())
    assert sorted(p for ps in positions for p in ps) == list(range(2000))
    for i, ps in enumerate(positions):
        assert [events[p].dot for p in ps] == [(f"w{i}", s) for s in range(1, 501)]
    assert log.stats() == LogStats(2000, 0, 0, 0, 0, 2000, 0)


def test_always_shares_fsyncs_between_threads(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = _log._fsync
    gate = threading.Barrier(8)

    def slow_fsync(fd: int) -> None:
        time.sleep(0.003)  # a slow disk: while one thread syncs, the others queue up
        real(fd)

    monkeypatch.setattr(_log, "_fsync", slow_fsync)
    log = EventLog(tmp_path, durability="always")
    start = log.stats().fsyncs

    def writer(i: int) -> None:
        gate.wait()
        for seq in range(1, 21):
            log.append(ev(f"w{i}", seq))

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    fsyncs = log.stats().fsyncs - start
    assert fsyncs < 160 / 2  # group commit: far fewer fsyncs than appends
    log.close()
    with EventLog(tmp_path) as again:
        assert len(list(again.read())) == 160


def test_batch_commits_in_the_background(tmp_path: Path) -> None:
    log = EventLog(tmp_path, durability="batch", batch_interval=0.001)
    start = log.stats().fsyncs
    log.append(ev("a", 1))
    deadline = time.monotonic() + 5
    while log.stats().fsyncs == start and time.monotonic() < deadline:
        time.sleep(0.001)
    assert log.stats().fsyncs == start + 1  # one commit, no caller waited for it
    log.close()
    with EventLog(tmp_path) as again:
        assert [e.dot for e in again.read()] == [("a", 1)]


def test_durable_read_by_origin_skips_segments(tmp_path: Path) -> None:
    with EventLog(tmp_path, segment_bytes=512) as log:
        for i in range(1, 41):
            log.append(ev("early", i))
        for i in range(1, 41):
            log.append(ev("late", i))
        log.flush()
        assert [e.seq for e in log.read_origin("late", 35)] == [36, 37, 38, 39, 40]
        assert [e.seq for e in log.read_origin("early", 38)] == [39, 40]
        assert list(log.read_origin("nobody")) == []


@pytest.mark.parametrize("n_origins", [1, 3, 40])
def test_each_segment_knows_the_largest_seq_of_every_origin(tmp_path: Path, n_origins: int) -> None:
    # One origin, a few (a scan per origin) and many (a sort): the index read_origin uses to
    # skip segments must hold each origin's largest seq per segment, whatever the order.
    from .helpers import ev

    origins = [f"n{i:02d}" for i in range(n_origins)]
    events = [ev(o, s) for s in range(1, 31) for o in origins]
    with EventLog(tmp_path, segment_bytes=2048) as log:
        log.append_many(events[: len(events) // 2])
        log.append_many(events[len(events) // 2 :])
        log.flush()
        for seg in log._segments:
            held = events[seg.first : seg.end]
            expect: dict[str, int] = {}
            for e in held:
                expect[e.origin] = max(expect.get(e.origin, 0), e.seq)
            assert seg.origins == expect
        for o in origins:
            assert [e.seq for e in log.read_origin(o, 27)] == [28, 29, 30]


def test_an_event_bigger_than_a_segment_gets_its_own(tmp_path: Path) -> None:
    big = ev("a", 2, "x" * 5000)
    with EventLog(tmp_path, segment_bytes=1024) as log:
        log.append_many([ev("a", 1), big, ev("a", 3)])
    with EventLog(tmp_path, segment_bytes=1024) as log:
        assert list(log.read()) == [ev("a", 1), big, ev("a", 3)]
        assert log.stats().segments == 3


def test_compression_can_be_turned_on_later(tmp_path: Path) -> None:
    events = fill(tmp_path, 60, compress=False)
    assert all(p.suffix == ".seg" for p in segment_files(tmp_path))
    with EventLog(tmp_path) as log:
        stats = log.stats()
        assert list(log.read()) == events
    sealed = [p for p in segment_files(tmp_path) if p.suffix == ".zst"]
    assert len(sealed) == stats.sealed_segments == stats.segments - 1
    assert stats.bytes == sum(p.stat().st_size for p in segment_files(tmp_path))


def test_an_interrupted_seal_keeps_the_copy_that_verifies(tmp_path: Path) -> None:
    events = fill(tmp_path, 60, compress=False)
    plain = segment_files(tmp_path)[0]
    sealed = plain.with_name(plain.name + ".zst")
    sealed.write_bytes(zstandard.ZstdCompressor().compress(plain.read_bytes()))
    (tmp_path / "stray.seg.zst.tmp").write_bytes(b"half written")
    with EventLog(tmp_path) as log:
        assert list(log.read()) == events
    assert not plain.exists()
    assert not (tmp_path / "stray.seg.zst.tmp").exists()
    # and a damaged compressed copy loses to the plain original
    second = segment_files(tmp_path)[1]
    assert second.suffix == ".zst"
    original = zstandard.ZstdDecompressor().decompress(second.read_bytes())
    second.with_name(second.name[: -len(".zst")]).write_bytes(original)
    second.write_bytes(second.read_bytes()[:-3])
    with EventLog(tmp_path) as log:
        assert list(log.read()) == events


def test_unclosed_batch_logs_are_flushed_at_exit(tmp_path: Path) -> None:
    code = (
        "import sys\n"
        "from microstatedb.codec import Event\n"
        "from microstatedb.log import EventLog\n"
        "log = EventLog(sys.argv[1], durability='batch', batch_interval=60)\n"
        "log.append(Event('a', 1, 1, {}, 'k', 'counter', 1))\n"
    )
    subprocess.run([sys.executable, "-c", code, str(tmp_path)], check=True)
    with EventLog(tmp_path) as log:
        assert [e.dot for e in log.read()] == [("a", 1)]


def _encoded(*fields: object) -> bytes:
    return pack_trusted((EVENT_FORMAT, *fields))


def test_encoded_events_is_the_in_memory_trusted_fast_path() -> None:
    log = EventLog(None)
    add = log.encoded_events().append
    add(_encoded("a", 1, 1, {}, "k", "counter", [1]))
    deps = {"b": 1}
    add(_encoded("a", 2, 2, deps, "k", "counter", [2]))
    deps["c"] = 9  # encoded before it was appended: a later change of the dict is not logged
    assert [e.seq for e in log.read()] == [1, 2]
    assert next(log.read(1)).deps == {"b": 1}
    assert log.next_position == 2
    log.write_snapshot(b"state", {"a": 1}, 1)
    log.release(1)
    add(_encoded("a", 3, 3, {}, "k", "counter", [3]))  # still the same list after a release
    assert [e.seq for e in log.read(1)] == [2, 3]
    assert all(type(e) is Event for e in log.read(1))
    assert log.append_encoded(_encoded("a", 4, 4, {}, "k", "counter", [4]), "a", 4) == 3


def test_in_memory_log_holds_no_objects_for_the_garbage_collector() -> None:
    import gc

    log = EventLog(None)
    add = log.encoded_events().append
    before = len(gc.get_objects())
    for i in range(1, 2001):
        add(_encoded("a", i, i, {}, "k", "counter", [{"a": i}, {}, {}, {}]))
    assert len(gc.get_objects()) - before < 100  # bytes are not tracked; dicts would be


def test_durable_logs_take_encoded_events_through_append_encoded(tmp_path: Path) -> None:
    with EventLog(tmp_path / "d", durability="none") as log:
        with pytest.raises(ConfigurationError, match="append_encoded"):
            log.encoded_events()
        assert log.append_encoded(_encoded("a", 1, 1, {}, "k", "counter", [1]), "a", 1) == 0
        assert [e.seq for e in log.read()] == [1]
        assert [e.seq for e in log.read_origin("a")] == [1]
    with EventLog(tmp_path / "d") as log:
        assert [e.dot for e in log.read()] == [("a", 1)]
