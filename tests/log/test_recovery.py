"""Recovery: torn tails are cut and reported; any other damage is refused or repaired exactly."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

import pytest
import zstandard
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.errors import CorruptData
from microstatedb.log import EventLog

from .helpers import HEADER, ev, fill, frame_spans, segment_files


def test_torn_final_frame_is_cut_and_reported(tmp_path: Path) -> None:
    events = fill(tmp_path, 40)
    last = segment_files(tmp_path)[-1]
    data = last.read_bytes()
    start, end = frame_spans(data)[-1]
    for cut in (start + 1, start + 11, start + 12, end - 1):
        last.write_bytes(data[:cut])
        with EventLog(tmp_path) as log:
            assert log.recovery.torn_bytes == cut - start
            assert list(log.read()) == events[:-1]
            assert log.next_position == len(events) - 1
        assert last.stat().st_size == start  # the cut is on disk
        last.write_bytes(data)


@settings(max_examples=30)
@given(st.integers(1, 40), st.integers(1, 30))
def test_any_torn_tail_keeps_every_complete_frame(cut: int, n: int) -> None:
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp)
        events = fill(path, n)
        last = segment_files(path)[-1]
        data = last.read_bytes()
        start, end = frame_spans(data)[-1]
        cut = min(start + cut, end - 1)
        last.write_bytes(data[:cut])
        with EventLog(path) as log:
            assert log.recovery.torn_bytes == cut - start
            assert list(log.read()) == events[:-1]
            log.append(ev("z", 1))
        with EventLog(path) as log:
            assert log.recovery.clean
            assert list(log.read()) == [*events[:-1], ev("z", 1)]


def test_zero_filled_tail_is_torn(tmp_path: Path) -> None:
    events = fill(tmp_path, 10)
    last = segment_files(tmp_path)[-1]
    last.write_bytes(last.read_bytes() + bytes(300))
    with EventLog(tmp_path) as log:
        assert log.recovery.torn_bytes == 300
        assert list(log.read()) == events


def test_torn_segment_header_after_a_roll_is_dropped(tmp_path: Path) -> None:
    events = fill(tmp_path, 30)
    nxt = segment_files(tmp_path)[-1]
    # A crash right after creating the next segment file, inside its header write.
    with EventLog(tmp_path) as log:
        end = log.next_position
    half = tmp_path / f"{end + 1000:020d}.seg"
    half.write_bytes(nxt.read_bytes()[:HEADER][:10])
    with EventLog(tmp_path) as log:
        assert log.recovery.torn_bytes == 10
        assert list(log.read()) == events
    assert not half.exists()


def test_damage_before_the_tail_is_corruption_not_a_torn_write(tmp_path: Path) -> None:
    fill(tmp_path, 40, compress=False)
    first = segment_files(tmp_path)[0]
    data = bytearray(first.read_bytes())
    start, _end = frame_spans(bytes(data))[1]
    data[start + 1] ^= 0xFF  # the length of the second frame now points past the end
    first.write_bytes(bytes(data))
    with pytest.raises(CorruptData) as info:
        EventLog(tmp_path)
    assert (info.value.path, info.value.offset) == (str(first), start)
    assert str(first) in str(info.value)


def test_a_missing_segment_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 60)
    files = segment_files(tmp_path)
    files[1].unlink()
    with pytest.raises(CorruptData) as info:
        EventLog(tmp_path)
    assert info.value.path == str(files[2])


def _try_open(path: Path) -> tuple[EventLog | None, CorruptData | None]:
    try:
        return EventLog(path), None
    except CorruptData as exc:
        return None, exc


def _plain(path: Path) -> bytes:
    data = path.read_bytes()
    return zstandard.ZstdDecompressor().decompress(data) if path.suffix == ".zst" else data


def _expected_outcome(files: list[Path], victim: int, offset: int, original: bytes) -> int | None:
    """Index of the event whose frame holds ``offset`` in a plain segment, else None."""
    first_event = sum(len(frame_spans(_plain(f))) for f in files[:victim])
    for i, (start, end) in enumerate(frame_spans(original)):
        if start <= offset < end:
            return first_event + i
    return None


@pytest.mark.parametrize("compress", [False, True])
def test_flipped_bytes_give_right_data_or_corrupt_data(compress: bool) -> None:
    @settings(max_examples=20)
    @given(st.data())
    def run(data: st.DataObject) -> None:
        with tempfile.TemporaryDirectory() as tmp:
            root = Path(tmp) / "log"
            events = fill(root, 45, compress=compress, segment_bytes=700)
            dots = [e.dot for e in events]
            files = segment_files(root)
            counts = [len(frame_spans(_plain(f))) for f in files]
            victim = data.draw(st.integers(0, len(files) - 1), label="file")
            original = files[victim].read_bytes()
            offset = data.draw(st.integers(0, len(original) - 1), label="offset")
            mask = data.draw(st.integers(1, 255), label="mask")
            damaged = bytearray(original)
            damaged[offset] ^= mask
            files[victim].write_bytes(bytes(damaged))
            copy = Path(tmp) / "copy"
            shutil.copytree(root, copy)
            last_plain = victim == len(files) - 1
            hit = (
                _expected_outcome(files, victim, offset, original)
                if last_plain or not compress
                else None
            )

            # without repair: exactly the right events, a torn-tail prefix, or CorruptData
            log, error = _try_open(root)
            if error is not None:
                assert error.path == str(files[victim])
                assert error.offset is not None
                if not files[victim].name.endswith(".zst"):
                    assert error.offset <= offset
            else:
                assert log is not None
                with log:
                    got = list(log.read())
                    if log.recovery.torn_bytes:
                        # only a damaged length in the very last frame looks like a torn write
                        assert last_plain
                        assert hit == len(events) - 1
                        assert got == events[:-1]
                    else:
                        assert got == events

            # with repair: the prefix before the damage, and exactly the decodable lost dots
            with EventLog(copy, repair=True) as log:
                got = list(log.read())
                rec = log.recovery
                assert got == events[: len(got)]
                kept = len(got)
                lost = list(rec.lost_dots)
                if rec.torn_bytes:
                    assert got == events[:-1]
                    assert lost == []
                elif not rec.quarantined:
                    assert got == events  # the flip did not matter (zstd's unused bits)
                elif files[victim].name.endswith(".seg"):
                    missing = [] if hit is None or hit < kept else [dots[hit]]
                    assert lost == [d for d in dots[kept:] if d not in missing]
                    assert rec.undecodable_bytes > 0
                else:
                    # a damaged compressed segment: what it still yields varies, but the
                    # later segments are intact, so all their events are reported lost
                    assert set(lost) <= set(dots[kept:])
                    assert lost == sorted(lost, key=dots.index)
                    assert set(dots[sum(counts[: victim + 1]) :]) <= set(lost)
                if rec.quarantined:
                    assert log.next_position >= len(events)  # positions are never reused
                log.append(ev("new", 1))
            with EventLog(copy) as log:
                assert log.recovery.torn_bytes == 0
                assert not log.recovery.quarantined
                assert list(log.read()) == [*got, ev("new", 1)]

    run()
