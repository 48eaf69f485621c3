"""Repair, case by case: what stays, what is moved aside, what is reported lost."""

from __future__ import annotations

import shutil
import struct
from pathlib import Path

import pytest

from microstatedb.codec import checksum
from microstatedb.errors import CorruptData
from microstatedb.log import EventLog
from microstatedb.log._format import encode_frame

from .helpers import HEADER, ev, fill, frame_counts, frame_spans, segment_files


def _flip(path: Path, offset: int) -> None:
    data = bytearray(path.read_bytes())
    data[offset] ^= 0x20
    path.write_bytes(bytes(data))


def test_a_damaged_frame_in_the_middle(tmp_path: Path) -> None:
    events = fill(tmp_path, 60, compress=False)
    files = segment_files(tmp_path)
    before = len(frame_spans(files[0].read_bytes()))
    spans = frame_spans(files[1].read_bytes())
    start = spans[2][0]
    _flip(files[1], start + 14)  # inside the third frame's body
    with pytest.raises(CorruptData) as info:
        EventLog(tmp_path)
    assert (info.value.path, info.value.offset) == (str(files[1]), start)
    with EventLog(tmp_path, repair=True) as log:
        rec = log.recovery
        kept = before + 2
        assert list(log.read()) == events[:kept]
        assert rec.lost_dots == tuple(e.dot for e in events[kept + 1 :])
        assert rec.undecodable_bytes == spans[2][1] - spans[2][0]
        assert len(rec.quarantined) == len(files) - 1
        assert all(Path(q).parent == tmp_path / "quarantine" for q in rec.quarantined)
        assert log.next_position >= len(events)
        assert list(log.read(kept)) == []
        log.append(ev("z", 1))
    with EventLog(tmp_path) as log:
        assert log.recovery.clean
        assert list(log.read()) == [*events[:kept], ev("z", 1)]


def test_undecodable_bytes_count_the_damaged_frame(tmp_path: Path) -> None:
    fill(tmp_path, 30, compress=False)
    last = segment_files(tmp_path)[-1]
    spans = frame_spans(last.read_bytes())
    start, end = spans[0]
    _flip(last, start + 5)  # the checksum of the first frame of the last segment
    with EventLog(tmp_path, repair=True) as log:
        assert log.recovery.undecodable_bytes == end - start
        assert len(log.recovery.lost_dots) == len(spans) - 1


def test_a_damaged_header_loses_no_decodable_event(tmp_path: Path) -> None:
    events = fill(tmp_path, 60, compress=False)
    files = segment_files(tmp_path)
    before = len(frame_spans(files[0].read_bytes()))
    _flip(files[1], 10)
    with EventLog(tmp_path, repair=True) as log:
        assert list(log.read()) == events[:before]
        assert log.recovery.lost_dots == tuple(e.dot for e in events[before:])
        assert log.recovery.undecodable_bytes == HEADER


def test_a_damaged_compressed_segment_keeps_what_still_decompresses(tmp_path: Path) -> None:
    # segments of several zstd blocks (128 KiB each), so that a late flip spares the first
    events = fill(tmp_path, 20_000, segment_bytes=1 << 19)
    files = segment_files(tmp_path)
    assert files[0].suffix == ".zst"
    size = files[0].stat().st_size
    first_len = len(frame_spans(_decompressed(str(files[0]))))
    _flip(files[0], size - 100)  # late in the frame: the blocks before it still decode
    with pytest.raises(CorruptData) as info:
        EventLog(tmp_path)
    assert info.value.path == str(files[0])
    with EventLog(tmp_path, repair=True) as log:
        got = list(log.read())
        rec = log.recovery
        assert 0 < len(got) < len(events)
        assert got == events[: len(got)]
        lost = set(rec.lost_dots)
        assert lost <= {e.dot for e in events[len(got) :]}
        assert {e.dot for e in events[first_len:]} <= lost
        assert rec.undecodable_bytes > 0
        assert log.next_position >= len(events)
    with EventLog(tmp_path) as log:
        assert list(log.read()) == got


def _decompressed(path: str) -> bytes:
    import zstandard

    return zstandard.ZstdDecompressor().decompress(Path(path).read_bytes())


def test_repair_twice_keeps_both_quarantined_copies(tmp_path: Path) -> None:
    fill(tmp_path, 40, compress=False)
    last = segment_files(tmp_path)[-1]
    _flip(last, frame_spans(last.read_bytes())[0][0] + 6)
    with EventLog(tmp_path, repair=True) as log:
        log.append_many([ev("z", i) for i in range(1, 40)])
    files = segment_files(tmp_path)
    _flip(files[-2], 10)
    with EventLog(tmp_path, repair=True) as log:
        assert len(log.recovery.quarantined) >= 2
    assert len(list((tmp_path / "quarantine").iterdir())) >= 3


def test_a_checksummed_frame_that_is_not_an_event_is_corruption(tmp_path: Path) -> None:
    events = fill(tmp_path, 10)
    last = segment_files(tmp_path)[-1]
    with last.open("ab") as f:
        f.write(encode_frame(b"\x93not an event"))
    with pytest.raises(CorruptData, match="does not decode"):
        EventLog(tmp_path)
    with EventLog(tmp_path, repair=True) as log:
        assert list(log.read()) == events
        assert log.recovery.lost_dots == ()
        assert log.recovery.undecodable_bytes == 12 + 13


def _rewrite_header(path: Path, **fields: int) -> None:
    data = path.read_bytes()
    magic, version, flags, first, gap = struct.unpack(">4sHHQQ", data[:24])
    values = {"version": version, "first": first, "gap": gap, **fields}
    head = struct.pack(
        ">4sHHQQ",
        b"XXXX" if fields.get("magic") else magic,
        values["version"],
        flags,
        values["first"],
        values["gap"],
    )
    path.write_bytes(head + checksum(head) + data[32:])


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"magic": 1}, "bad magic"),
        ({"version": 9}, "format 9"),
        ({"gap": 10**6}, "gap_from after first"),
        ({"first": 5, "gap": 5}, "does not match the file name"),
    ],
)
def test_headers_that_verify_but_do_not_fit(
    tmp_path: Path, change: dict[str, int], message: str
) -> None:
    fill(tmp_path, 60, compress=False)
    victim = segment_files(tmp_path)[1]
    _rewrite_header(victim, **change)
    with pytest.raises(CorruptData, match=message) as info:
        EventLog(tmp_path)
    assert info.value.path == str(victim)


def test_an_incomplete_header_before_the_last_segment_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 60, compress=False)
    victim = segment_files(tmp_path)[1]
    victim.write_bytes(victim.read_bytes()[:20])
    with pytest.raises(CorruptData, match="header is incomplete"):
        EventLog(tmp_path)


def test_a_torn_frame_before_the_last_segment_is_corruption(tmp_path: Path) -> None:
    fill(tmp_path, 60, compress=False)
    victim = segment_files(tmp_path)[1]
    victim.write_bytes(victim.read_bytes()[:-3])
    with pytest.raises(CorruptData, match="ends inside a frame") as info:
        EventLog(tmp_path)
    assert info.value.path == str(victim)


def test_a_snapshot_ahead_of_the_damage_pushes_the_next_position(tmp_path: Path) -> None:
    with EventLog(tmp_path, segment_bytes=1024) as log:
        log.append_many([ev("a", i) for i in range(1, 61)])
        log.write_snapshot(b"s", {"a": 60}, 60)
    first = segment_files(tmp_path)[0]
    _flip(first, 10)
    with EventLog(tmp_path, repair=True) as log:
        assert list(log.read()) == []
        assert log.next_position >= 60
        assert log.first_position == 0


def test_a_compressed_segment_with_a_damaged_zstd_header(tmp_path: Path) -> None:
    events = fill(tmp_path, 60)
    files = segment_files(tmp_path)
    _flip(files[1], 0)
    with pytest.raises(CorruptData) as info:
        EventLog(tmp_path)
    assert info.value.path == str(files[1])
    with EventLog(tmp_path, repair=True) as log:
        got = list(log.read())
        assert got == events[: len(got)]
        assert log.recovery.undecodable_bytes > 0
        assert {e.dot for e in events[len(got) :]} >= set(log.recovery.lost_dots)


@pytest.mark.parametrize("per_frame", [1, 3])
def test_every_flipped_byte_of_a_small_plain_log(tmp_path: Path, per_frame: int) -> None:
    """A sweep over every 11th byte of each segment (the stride crosses headers, lengths,
    checksums and bodies of frames of varied sizes): each flip is found and repaired with
    exactly the events before the damaged frame kept, the damaged frame's events gone, and
    every later one reported lost. Frames hold one event, or several as a write puts them."""
    pristine = tmp_path / "pristine"
    events = fill(pristine, 14, compress=False, segment_bytes=256, per_frame=per_frame)
    dots = [e.dot for e in events]
    files = segment_files(pristine)
    assert len(files) >= 3
    work = tmp_path / "work"
    first_event = widest = 0
    for victim in files:
        original = victim.read_bytes()
        spans = frame_spans(original)
        counts = frame_counts(original)
        widest = max(widest, *counts)
        starts = [first_event + sum(counts[:i]) for i in range(len(spans))]
        for offset in range(first_event % 11, len(original), 11):
            shutil.rmtree(work, ignore_errors=True)
            shutil.copytree(pristine, work)
            _flip(work / victim.name, offset)
            hit = next((i for i, (s, e) in enumerate(spans) if s <= offset < e), None)
            with EventLog(work, repair=True, compress_sealed=False) as log:
                got = list(log.read())
                rec = log.recovery
            is_last = victim == files[-1]
            if rec.torn_bytes:  # a damaged length in the very last frame reads as torn
                assert is_last
                assert hit == len(spans) - 1
                assert got == events[: -counts[-1]]
                continue
            kept = starts[hit] if hit is not None else first_event
            gone = counts[hit] if hit is not None else 0
            assert got == events[:kept], (victim.name, offset)
            assert list(rec.lost_dots) == dots[kept + gone :], (victim.name, offset)
            assert rec.undecodable_bytes == (
                HEADER if hit is None else spans[hit][1] - spans[hit][0]
            )
        first_event += sum(counts)
    assert widest == per_frame


def test_format_1_segments_still_read(tmp_path: Path) -> None:
    # Format 1 held one event per frame; format 2 adds frames of several. Both read.
    events = fill(tmp_path, 60, compress=False)
    for path in segment_files(tmp_path):
        _rewrite_header(path, version=1)
    with EventLog(tmp_path) as log:
        assert list(log.read()) == events
        assert log.recovery.clean
