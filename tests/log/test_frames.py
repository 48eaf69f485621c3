"""The compiled commit (in ``microstatedb._speedups``): its blake3, its frames and the log's
commits are the Python path's, byte for byte, and it refuses what it cannot write."""

from __future__ import annotations

import errno
import os
import threading
from pathlib import Path

import pytest
from blake3 import blake3
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb import _speedups as _frames
from microstatedb.codec import encode_event
from microstatedb.log import EventLog
from microstatedb.log._format import FRAME_TARGET, HEADER_SIZE, frame_parts, iter_frames

from .helpers import ev

# Lengths at the edges of BLAKE3's blocks (64 bytes), chunks (1,024) and tree levels.
_EDGES = sorted(
    {
        n + d
        for n in (64, 1024, 2048, 3072, 4096, 8192, 9216, 16384, 31744, 65536, 73728)
        for d in (-1, 0, 1)
    }
)


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=5000), st.data())
def test_checksum_is_blake3(data: bytes, draw: st.DataObject) -> None:
    cut = draw.draw(st.integers(0, len(data)))
    assert _frames.checksum(data[:cut], data[cut:]) == blake3(data).digest(8)


@settings(max_examples=60, deadline=None)
@given(st.integers(8 * 1024, 40 * 1024), st.integers(0, 2000))
def test_checksum_is_blake3_where_eight_chunks_go_at_once(n: int, cut: int) -> None:
    # past eight whole chunks the AVX2 path takes them together (where the CPU has it)
    data = os.urandom(n)
    assert _frames.checksum(data[:cut], data[cut:]) == blake3(data).digest(8)


@pytest.mark.parametrize("n", [0, *_EDGES, 1 << 20, 5 * (1 << 20) + 13])
def test_checksum_is_blake3_at_block_chunk_and_tree_edges(n: int) -> None:
    data = os.urandom(n)
    assert _frames.checksum(b"", data) == blake3(data).digest(8)
    assert _frames.checksum(data[:7], data[7:]) == blake3(data).digest(8)


def _python_frames(events: bytes, spans: list[int]) -> bytes:
    view = memoryview(events)
    return b"".join(
        bytes(part)
        for k in range(0, len(spans), 3)
        for part in frame_parts(view[spans[k] : spans[k + 1]], spans[k + 2])
    )


def _commit(path: Path, events: list[bytes], target: int) -> bytes:
    """What commit_to writes of ``events`` into a new file, cutting frames at ``target``."""
    buffer = _frames.EncodedEvents(dots=True)
    buffer.add_many(events, ["a"] * len(events), list(range(1, len(events) + 1)))
    fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        n, size, full, maxima = buffer.commit_to(fd, 1 << 40, True, target)
    finally:
        os.close(fd)
    data = path.read_bytes()
    assert (n, size, full) == (len(events), len(data), False)
    assert maxima == ({"a": len(events)} if events else {})
    return data


@settings(max_examples=100, deadline=None)
@given(st.lists(st.binary(min_size=1, max_size=100), max_size=300), st.integers(20, 600))
def test_frames_are_the_python_paths(
    tmp_path_factory: pytest.TempPathFactory, events: list[bytes], target: int
) -> None:
    # an event larger than the target goes alone into a frame of the same segment
    path = tmp_path_factory.mktemp("f") / "seg"
    expected = _python_frames(b"".join(events), _plan(events, target))
    assert _commit(path, events, target) == expected


@pytest.mark.parametrize("count", [1, 15, 16, 65535, 65536])
def test_every_array_header_size(tmp_path: Path, count: int) -> None:
    # one frame of `count` events: no header, fixarray, array 16 and array 32
    event = b"\x93\x01\x02\x03"
    data = _commit(tmp_path / "seg", [event] * count, 1 << 30)
    assert data == _python_frames(event * count, [0, 4 * count, count])
    ((_offset, body),) = list(iter_frames(data, 0, "seg"))
    assert len(body) == 4 * count + {1: 0, 15: 1, 16: 3, 65535: 3, 65536: 5}[count]


def test_more_frames_than_one_writev_takes(tmp_path: Path) -> None:
    # 2 buffers per frame: 700 one-event frames need two writev calls of at most 1,024
    events = [os.urandom(10) for _ in range(700)]
    spans = [x for k in range(700) for x in (10 * k, 10 * k + 10, 1)]
    assert _commit(tmp_path / "seg", events, 10) == _python_frames(b"".join(events), spans)


def test_a_failed_write_is_an_oserror_with_its_errno(tmp_path: Path) -> None:
    path = tmp_path / "seg"
    path.write_bytes(b"")
    buffer = _frames.EncodedEvents(dots=True)
    buffer.add(b"\x93\x01\x02\x03", "a", 1)
    fd = os.open(path, os.O_RDONLY)
    try:
        with pytest.raises(OSError, match="Bad file descriptor") as failed:
            buffer.commit_to(fd, 1000, True, 1000)
        assert failed.value.errno == errno.EBADF
    finally:
        os.close(fd)
    assert len(buffer) == 1  # still pending
    with pytest.raises(TypeError, match="takes"):
        _frames.checksum(b"a")  # type: ignore[call-arg]


# ----------------------------------------------- the log's commit (EncodedEvents.commit_to)


def _segments(folder: Path) -> dict[str, bytes]:
    return {p.name: p.read_bytes() for p in sorted(folder.glob("*.seg*"))}


@settings(max_examples=40, deadline=None)
@given(
    sizes=st.lists(st.integers(9, 700), max_size=80),
    commits=st.lists(st.integers(1, 30), min_size=1, max_size=6),
    segment_bytes=st.sampled_from([256, 600, 2048]),
)
def test_the_compiled_commit_writes_the_python_commits_bytes(
    tmp_path_factory: pytest.TempPathFactory,
    sizes: list[int],
    commits: list[int],
    segment_bytes: int,
) -> None:
    # Segments small enough to roll inside a commit, events larger than an empty segment.
    events = [ev("ab"[i % 2], i // 2 + 1, "x" * size) for i, size in enumerate(sizes)]
    written = {}
    for native in (True, False):
        folder = tmp_path_factory.mktemp("log")
        with pytest.MonkeyPatch.context() as patch:
            patch.setattr(EventLog, "_native_frames", native)
            with EventLog(
                folder, durability="none", segment_bytes=segment_bytes, compress_sealed=False
            ) as log:
                at = k = 0
                while at < len(events):
                    step = commits[k % len(commits)]
                    log.append_many(events[at : at + step])
                    log.flush()
                    at += step
                    k += 1
                assert log.stats().events == len(events)
        written[native] = _segments(folder)
        with EventLog(folder) as again:
            assert list(again.read()) == events
            assert list(again.read_origin("b")) == [e for e in events if e.origin == "b"]
    assert written[True] == written[False]


@pytest.mark.parametrize("native", [True, False])
def test_an_event_over_the_frame_target_stays_in_a_segment_with_room(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, native: bool
) -> None:
    monkeypatch.setattr(EventLog, "_native_frames", native)
    small = [ev("a", i, "s") for i in range(1, 4)]
    big = ev("a", 4, "b" * (FRAME_TARGET + 1000))
    with EventLog(tmp_path, durability="none", compress_sealed=False) as log:
        log.append_many([*small, big, ev("a", 5, "t")])
        log.flush()
        assert log.stats().segments == 1
    ((name, data),) = _segments(tmp_path).items()
    bodies = [body for _offset, body in iter_frames(data, HEADER_SIZE, name)]
    assert bodies[1] == encode_event(big)  # alone in its frame, after the small ones
    assert len(bodies) == 3
    with EventLog(tmp_path) as again:
        assert list(again.read()) == [*small, big, ev("a", 5, "t")]


def test_a_writer_appending_during_commits_loses_and_repeats_nothing(tmp_path: Path) -> None:
    # The single writer goes on appending while the commit thread writes from its buffer
    # without the GIL; a buffer that must grow meanwhile waits for the write to finish.
    log = EventLog(tmp_path, durability="batch", batch_interval=0.0005, segment_bytes=1 << 16)
    append = log.single_writer()
    bodies = [encode_event(ev("a", i, "y" * (i % 300))) for i in range(1, 60_001)]
    for i, body in enumerate(bodies, 1):
        append(body, "a", i)
    log.close()
    with EventLog(tmp_path) as again:
        assert [e.seq for e in again.read()] == list(range(1, 60_001))
        assert again.recovery.clean


def test_commit_to_refuses_bad_arguments_and_leaves_the_events_pending(tmp_path: Path) -> None:
    buffer = _frames.EncodedEvents(dots=True)
    buffer.add(b"\x93\x01\x02\x03", "a", 1)
    fd = os.open(tmp_path / "seg", os.O_WRONLY | os.O_CREAT, 0o644)
    try:
        with pytest.raises(TypeError, match="commit_to takes"):
            buffer.commit_to(fd, 100, True)  # type: ignore[call-arg]
        with pytest.raises(ValueError, match="commit_to"):
            buffer.commit_to(-1, 100, True, 1000)
        with pytest.raises(ValueError, match="commit_to"):
            buffer.commit_to(fd, 100, True, 0)
        with pytest.raises(TypeError):
            buffer.commit_to(fd, "100", True, 1000)  # type: ignore[arg-type]
        with pytest.raises(TypeError, match="keeps dots"):
            _frames.EncodedEvents().commit_to(fd, 100, True, 1000)
        assert _frames.EncodedEvents(dots=True).commit_to(fd, 100, True, 1000) == (0, 0, False, {})
        assert len(buffer) == 1
        # no room left in a segment that has events: nothing written, the segment is full
        assert buffer.commit_to(fd, 0, False, 1000) == (0, 0, True, {})
        assert buffer.commit_to(fd, 100, True, 1000) == (1, 16, False, {"a": 1})
        assert len(buffer) == 1  # the caller drops what it counted
    finally:
        os.close(fd)
    assert (tmp_path / "seg").read_bytes() == _python_frames(b"\x93\x01\x02\x03", [0, 4, 1])


def test_a_writer_that_must_grow_its_buffer_waits_for_the_write_from_it() -> None:
    # commit_to writes into a pipe that a slow reader drains, so the write is still running
    # while this thread appends far more than the buffer holds. The buffer must not move
    # under the write: the bytes that come out of the pipe are exactly the first events'
    # frames, and every event appended meanwhile is still pending after them.
    buffer = _frames.EncodedEvents(dots=True)
    first = [bytes([0x91]) + os.urandom(200) for _ in range(2000)]  # about 400 KB
    buffer.add_many(first, ["a"] * len(first), list(range(1, len(first) + 1)))
    expected = _python_frames(b"".join(first), _plan(first, 1 << 18))
    r, w = os.pipe()
    received = bytearray()
    result: list[tuple[int, int, bool, dict[str, int]]] = []

    def commit() -> None:
        result.append(buffer.commit_to(w, 1 << 30, True, 1 << 18))
        os.close(w)

    def drain() -> None:
        while chunk := os.read(r, 4096):
            received.extend(chunk)

    committer = threading.Thread(target=commit)
    committer.start()
    received.extend(os.read(r, 1))  # the write has begun: the pipe had room for its start
    more = [bytes([0x91]) + os.urandom(300) for _ in range(20_000)]  # forces the buffer to grow
    reader = threading.Thread(target=drain)
    reader.start()
    buffer.add_many(more, ["b"] * len(more), list(range(1, len(more) + 1)))
    committer.join()
    reader.join()
    os.close(r)
    assert bytes(received) == expected
    assert result == [(len(first), len(expected), False, {"a": len(first)})]
    del buffer[: len(first)]
    assert buffer[:] == more


def _plan(events: list[bytes], target: int) -> list[int]:
    """Frames as the log cuts them in one segment with room enough: up to ``target`` bytes."""
    spans, start, count, at = [], 0, 0, 0
    for event in events:
        head = 0 if count + 1 == 1 else (1 if count + 1 < 16 else 3 if count + 1 < 65536 else 5)
        if count and at + len(event) - start + head > target:
            spans += (start, at, count)
            start, count = at, 0
        at += len(event)
        count += 1
    return [*spans, start, at, count] if count else spans
