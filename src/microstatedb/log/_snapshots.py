"""Snapshot files: opaque state bytes with the position and version vector they cover.

    file = magic b"MSDS" | u8 format | u32 meta length | meta | state | 32-byte blake3 digest
    meta = msgpack [position, [[node, n], ...] sorted by node]

The digest covers everything before it and its hex form is the snapshot's id, also written in
the file name (``<generation>-<id>.snap``), so a damaged or renamed file never verifies.
"""

from __future__ import annotations

import os
import struct
from collections.abc import Mapping
from pathlib import Path

from microstatedb.codec import digest_of, packb, unpackb
from microstatedb.errors import CorruptData, DecodeError
from microstatedb.log._records import Snapshot, SnapshotInfo

SNAPSHOT_FORMAT = 1
_MAGIC = b"MSDS"
_HEAD = struct.Struct(">4sBI")
_DIGEST = 32


def encode_snapshot(state: bytes, vv: Mapping[str, int], position: int) -> tuple[str, bytes]:
    """Returns ``(id, file bytes)``."""
    meta = packb([position, sorted([node, n] for node, n in vv.items())])
    body = _HEAD.pack(_MAGIC, SNAPSHOT_FORMAT, len(meta)) + meta + state
    digest = digest_of(body)
    return digest.hex(), body + digest


def decode_snapshot(data: bytes, path: Path | None, expected_id: str | None) -> Snapshot:
    """Verify snapshot bytes; raises ``CorruptData`` naming the file and offset."""
    where = str(path) if path is not None else None
    if len(data) < _HEAD.size + _DIGEST:
        raise CorruptData("snapshot is truncated", path=where, offset=len(data))
    body, digest = data[:-_DIGEST], data[-_DIGEST:]
    if digest_of(body) != digest:
        raise CorruptData("snapshot digest does not verify", path=where, offset=len(body))
    ident = digest.hex()
    if expected_id is not None and ident != expected_id:
        raise CorruptData("snapshot content does not match its name", path=where, offset=0)
    magic, version, meta_len = _HEAD.unpack_from(body)
    if magic != _MAGIC or version != SNAPSHOT_FORMAT:
        raise CorruptData("not a supported MicroStateDB snapshot", path=where, offset=0)
    start = _HEAD.size
    try:
        meta = unpackb(body[start : start + meta_len])
        position, pairs = meta
        vv = {str(node): int(n) for node, n in pairs}
        position = int(position)
    except (DecodeError, TypeError, ValueError) as exc:
        raise CorruptData("snapshot metadata does not decode", path=where, offset=start) from exc
    state = body[start + meta_len :]
    info = SnapshotInfo(id=ident, vv=vv, position=position, path=where, size=len(state))
    return Snapshot(info=info, state=state)


def snapshot_name(generation: int, ident: str) -> str:
    return f"{generation:012d}-{ident}.snap"


def list_snapshots(folder: Path) -> list[tuple[int, str, Path]]:
    """``(generation, id, path)`` of every snapshot file, newest first."""
    found = []
    if folder.is_dir():
        for entry in os.scandir(folder):
            name = entry.name
            if not name.endswith(".snap"):
                continue
            gen, _, ident = name[: -len(".snap")].partition("-")
            if gen.isdigit() and len(ident) == 2 * _DIGEST:
                found.append((int(gen), ident, Path(entry.path)))
    found.sort(reverse=True)
    return found
