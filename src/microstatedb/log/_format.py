"""On-disk layout of segments and frames, and the scanning that verifies them.

Segment: a 32-byte header, then frames.

    header = magic b"MSDL" | u16 format | u16 flags | u64 first position | u64 gap_from
             | 8-byte blake3 checksum of the 24 bytes before it
    frame  = u32 body length | 8-byte blake3 checksum of (length bytes + body) | body
    body   = one encoded event, or a msgpack array of encoded events (format 2)

A frame holds what one write put down together, up to ``FRAME_TARGET`` bytes of events:
one checksum per frame instead of one per event keeps the write path's cost per event low, and
a torn frame is the unacknowledged tail either way.

``gap_from`` equals the first position except after a repair: positions in
``[gap_from, first)`` were lost and are never reused. The checksum covers the length too, so a
flipped length byte is caught instead of being mistaken for a torn tail.
"""

from __future__ import annotations

import struct
from collections.abc import Iterator
from dataclasses import dataclass

import zstandard

from microstatedb.codec import checksum, checksum_of_parts
from microstatedb.errors import CorruptData, TornWrite

SEGMENT_FORMAT = 2
"""Format version written in every segment header (1: one event per frame, still read)."""
READABLE_FORMATS = (1, 2)

MAGIC = b"MSDL"
HEADER_SIZE = 32
FRAME_OVERHEAD = 12
MAX_BODY = 1 << 30
MIN_EVENT = 9
"""The fewest bytes an encoded event takes, so a span of lost bytes held at most
``ceil(bytes / MIN_EVENT)`` events."""
FRAME_TARGET = 1 << 18
"""A write starts a new frame once the current one holds this many bytes of events."""

_HEAD = struct.Struct(">4sHHQQ")
_LEN = struct.Struct(">I")
_ARRAY16 = struct.Struct(">BH")
_ARRAY32 = struct.Struct(">BI")
_ZSTD_LEVEL = 3


def encode_header(first: int, gap_from: int) -> bytes:
    """The header of a segment whose first event gets position ``first``."""
    head = _HEAD.pack(MAGIC, SEGMENT_FORMAT, 0, first, gap_from)
    return head + checksum(head)


def decode_header(data: bytes, path: str) -> tuple[int, int]:
    """Verify a segment header; returns ``(first, gap_from)``."""
    if len(data) < HEADER_SIZE:
        raise TornWrite("segment header is incomplete", path=path, offset=len(data))
    head = data[: HEADER_SIZE - 8]
    if checksum(head) != data[HEADER_SIZE - 8 : HEADER_SIZE]:
        raise CorruptData("segment header checksum does not verify", path=path, offset=0)
    magic, version, _flags, first, gap_from = _HEAD.unpack(head)
    if magic != MAGIC:
        raise CorruptData("not a MicroStateDB log segment (bad magic)", path=path, offset=0)
    if version not in READABLE_FORMATS:
        raise CorruptData(
            f"segment format {version} is not supported (this version reads "
            f"{', '.join(map(str, READABLE_FORMATS))})",
            path=path,
            offset=4,
        )
    if gap_from > first:
        raise CorruptData("segment header has gap_from after first", path=path, offset=0)
    return first, gap_from


def encode_frame(body: bytes) -> bytes:
    """Frame one body: an encoded event or a msgpack array of several."""
    return frame_head(body) + body


def frame_head(body: bytes | memoryview) -> bytes:
    """What precedes ``body`` in its frame: length and checksum (a writer that writes the two
    apart saves copying the body)."""
    size = _LEN.pack(len(body))
    return size + checksum_of_parts(size, body)


def frame_parts(events: bytes | memoryview, count: int) -> tuple[bytes | memoryview, ...]:
    """The frame holding ``count`` encoded events, given back to back in ``events``, as parts
    to write one after another: the events themselves are not copied."""
    if count == 1:
        return frame_head(events), events
    head = (
        bytes((0x90 | count,))
        if count < 16
        else _ARRAY16.pack(0xDC, count)
        if count < 1 << 16
        else _ARRAY32.pack(0xDD, count)
    )
    size = _LEN.pack(len(head) + len(events))
    return size + checksum_of_parts(size + head, events), head, events


def _frame_at(data: bytes, offset: int) -> int:
    """Length of the verified frame at ``offset``, or -1 when none starts there."""
    end = len(data)
    if offset + FRAME_OVERHEAD > end:
        return -1
    size: int = _LEN.unpack_from(data, offset)[0]
    stop = offset + FRAME_OVERHEAD + size
    if size == 0 or size > MAX_BODY or stop > end:
        return -1
    body = data[offset + FRAME_OVERHEAD : stop]
    if (
        checksum_of_parts(data[offset : offset + 4], body)
        != data[offset + 4 : offset + FRAME_OVERHEAD]
    ):
        return -1
    return FRAME_OVERHEAD + size


def iter_frames(data: bytes, offset: int, path: str) -> Iterator[tuple[int, bytes]]:
    """Yield ``(offset, body)`` of each frame from ``offset`` to the end of ``data``.

    Raises ``TornWrite`` when the data ends inside a frame (or in zero bytes, a tail the file
    system extended but never wrote) with no verified frame after it, ``CorruptData`` for any
    other frame that does not verify.
    """
    end = len(data)
    while offset < end:
        n = _frame_at(data, offset)
        if n < 0:
            raise _damage(data, offset, path)
        yield offset, data[offset + FRAME_OVERHEAD : offset + n]
        offset += n


def _damage(data: bytes, offset: int, path: str) -> CorruptData:
    end = len(data)
    rest = data[offset:]
    if offset + FRAME_OVERHEAD <= end:
        (size,) = _LEN.unpack_from(data, offset)
        complete = size > 0 and offset + FRAME_OVERHEAD + size <= end
    else:
        complete = False
    zeros = rest.count(0) == len(rest)
    # A crash leaves at most one incomplete frame at the very end; if any verified frame
    # follows, the bytes were damaged in place, which is corruption, not a torn write.
    if (not complete or zeros) and not any(True for _ in salvage_frames(data, offset + 1)):
        return TornWrite(
            f"incomplete final frame ({end - offset} bytes): a write was interrupted",
            path=path,
            offset=offset,
        )
    return CorruptData("frame checksum or length does not verify", path=path, offset=offset)


def salvage_frames(data: bytes, offset: int) -> Iterator[tuple[int, bytes]]:
    """Yield every verified frame from ``offset`` on, resynchronising past damaged bytes."""
    end = len(data)
    while offset + FRAME_OVERHEAD <= end:
        n = _frame_at(data, offset)
        if n < 0:
            offset += 1
            continue
        yield offset, data[offset + FRAME_OVERHEAD : offset + n]
        offset += n


def compress(data: bytes) -> bytes:
    """One zstd frame with its content size and content checksum."""
    return zstandard.ZstdCompressor(
        level=_ZSTD_LEVEL, write_checksum=True, write_content_size=True
    ).compress(data)


def decompress(data: bytes, path: str) -> bytes:
    """Decompress a sealed segment, verifying zstd's content checksum."""
    try:
        return zstandard.ZstdDecompressor().decompress(data)
    except zstandard.ZstdError as exc:
        raise CorruptData(
            f"sealed segment does not decompress ({exc})", path=path, offset=0
        ) from exc


@dataclass(frozen=True, slots=True)
class Salvaged:
    """What could be recovered from a damaged compressed segment."""

    data: bytes
    """The bytes decompressed before the damage stopped the decoder."""
    size: int
    """The segment's plain size as its zstd header declares it (an estimate if unreadable)."""


def salvage_zstd(data: bytes) -> Salvaged:
    """Decompress as much of a damaged zstd frame as possible."""
    out = bytearray()
    try:
        declared = zstandard.frame_content_size(data)
    except zstandard.ZstdError:
        declared = -1
    reader = zstandard.ZstdDecompressor().stream_reader(data)
    try:
        while True:
            chunk = reader.read(1 << 16)
            if not chunk:
                break
            out += chunk
    except zstandard.ZstdError:
        pass
    if 0 <= declared <= MAX_BODY * 4:
        size = max(declared, len(out))
    else:
        # The header that declares the size is damaged: count the compressed bytes as well,
        # an estimate, so that a loss is never reported as zero.
        size = len(out) + len(data)
    return Salvaged(bytes(out), size)
