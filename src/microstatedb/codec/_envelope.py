"""The versioned, checksummed (optionally keyed) envelope of every message between stores.

Layout: ``b"MSDB"``, a version byte, a kind byte, a flags byte, the body, and a 16-byte blake3
tag over everything before it (a keyed MAC when a shared key is set).
"""

from __future__ import annotations

from microstatedb.codec._checksum import checksum, keyed_mac
from microstatedb.errors import AuthenticationError, CorruptData, DecodeError

ENVELOPE_VERSION = 1
_MAGIC = b"MSDB"
_HEADER = 7
_TAG = 16
_FLAG_KEYED = 1


def seal_envelope(kind: int, body: bytes, key: bytes | None = None) -> bytes:
    """Wrap ``body`` with magic, version, ``kind`` and a checksum or keyed MAC."""
    flags = _FLAG_KEYED if key is not None else 0
    head = _MAGIC + bytes((ENVELOPE_VERSION, kind, flags))
    data = head + body
    tag = keyed_mac(key, data, _TAG) if key is not None else checksum(data, _TAG)
    return data + tag


def open_envelope(data: bytes, kind: int, key: bytes | None = None) -> bytes:
    """Verify an envelope and return its body.

    Raises ``CorruptData`` for damaged or foreign bytes, ``AuthenticationError`` when a key is
    expected and the MAC does not verify (or the message is not keyed).
    """
    if not isinstance(data, bytes | bytearray | memoryview):
        raise DecodeError(f"expected bytes, got {type(data).__name__}")
    data = bytes(data)
    if len(data) < _HEADER + _TAG or data[:4] != _MAGIC:
        raise CorruptData("not a MicroStateDB message (bad magic or too short)")
    version, got_kind, flags = data[4], data[5], data[6]
    if version != ENVELOPE_VERSION:
        raise CorruptData(
            f"message version {version} is not supported (this version reads {ENVELOPE_VERSION})"
        )
    if got_kind != kind:
        raise CorruptData(f"message kind {got_kind} where {kind} was expected")
    payload, tag = data[:-_TAG], data[-_TAG:]
    if key is not None:
        if not flags & _FLAG_KEYED or keyed_mac(key, payload, _TAG) != tag:
            raise AuthenticationError("message failed authentication (wrong key or tampered)")
    elif flags & _FLAG_KEYED:
        raise AuthenticationError("message is authenticated but no key is configured here")
    elif checksum(payload, _TAG) != tag:
        raise CorruptData("message checksum does not verify (damaged or tampered)")
    return payload[_HEADER:]
