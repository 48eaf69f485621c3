"""The Confluent wire format: magic byte 0, the schema id as 4 bytes big-endian, the payload."""

from __future__ import annotations

import struct

from microstatedb.errors import ConfigurationError, DecodeError

MAGIC = 0
"""The first byte of every framed value."""
HEADER = struct.Struct(">BI")
"""Magic byte and schema id."""


def frame(schema_id: int, payload: bytes) -> bytes:
    """``payload`` prefixed with the magic byte and ``schema_id``."""
    if not 0 <= schema_id < 2**32:
        raise ConfigurationError(f"schema id {schema_id} does not fit in 4 bytes")
    return HEADER.pack(MAGIC, schema_id) + payload


def unframe(data: bytes) -> tuple[int, bytes]:
    """The schema id and payload of a framed value; DecodeError if it is not one."""
    if len(data) < HEADER.size:
        raise DecodeError(f"a framed value has at least {HEADER.size} bytes, got {len(data)}")
    magic, schema_id = HEADER.unpack_from(data)
    if magic != MAGIC:
        raise DecodeError(f"unknown magic byte {magic} (expected {MAGIC}): not a framed value")
    return schema_id, bytes(data[HEADER.size :])
