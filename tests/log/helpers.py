"""Shared helpers of the log tests: events, a filled log, and an independent frame parser."""

from __future__ import annotations

import struct
from pathlib import Path

from microstatedb.codec import Event
from microstatedb.log import EventLog

HEADER = 32


def ev(origin: str, seq: int, op: object = None) -> Event:
    return Event(
        origin, seq, 1000 + seq, {}, f"k{seq % 3}", "counter", op if op is not None else seq
    )


def fill(
    path: Path,
    n: int,
    *,
    compress: bool = True,
    segment_bytes: int = 1024,
    per_frame: int = 1,
) -> list[Event]:
    """A closed log at ``path`` holding ``n`` events from three origins, written
    ``per_frame`` at a time so that each frame holds that many (the last may hold fewer)."""
    events = [ev("abc"[i % 3], i // 3 + 1, ["x" * (i % 11), i]) for i in range(n)]
    with EventLog(
        path, durability="none", segment_bytes=segment_bytes, compress_sealed=compress
    ) as log:
        for i in range(0, n, per_frame):
            log.append_many(events[i : i + per_frame])
            log.flush()
    return events


def segment_files(path: Path) -> list[Path]:
    return sorted(p for p in path.iterdir() if p.name.endswith((".seg", ".seg.zst")))


def frame_spans(data: bytes) -> list[tuple[int, int]]:
    """``(start, end)`` of each frame of a plain segment, parsed without the library."""
    spans = []
    offset = HEADER
    while offset + 12 <= len(data):
        (size,) = struct.unpack_from(">I", data, offset)
        spans.append((offset, offset + 12 + size))
        offset += 12 + size
    return spans


def frame_counts(data: bytes) -> list[int]:
    """How many events each frame of a plain segment holds, parsed without the library: a
    body is one event (an array whose first item is the format int) or an array of them."""
    counts = []
    for start, end in frame_spans(data):
        body = data[start + 12 : end]
        if body[1] < 0x80:  # a positive fixint: the event's format
            counts.append(1)
        elif body[0] & 0xF0 == 0x90:
            counts.append(body[0] & 0x0F)
        else:
            counts.append(struct.unpack_from(">H", body, 1)[0])
    return counts
