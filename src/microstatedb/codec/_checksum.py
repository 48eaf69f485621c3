"""blake3 checksums (integrity against accidents) and keyed MACs (against tampering)."""

from __future__ import annotations

from blake3 import blake3


def checksum(data: bytes, length: int = 8) -> bytes:
    """A short blake3 checksum: enough to catch torn and flipped bytes, not an adversary."""
    return blake3(data).digest(length)


def checksum_of_parts(first: bytes, second: bytes | memoryview, length: int = 8) -> bytes:
    """``checksum(first + second)`` without building the concatenation."""
    h = blake3(first)
    h.update(second)
    return h.digest(length)


def digest_of(data: bytes) -> bytes:
    """A full 32-byte blake3 digest, for identities (snapshots, state digests)."""
    return blake3(data).digest()


def keyed_mac(key: bytes, data: bytes, length: int = 16) -> bytes:
    """A blake3 keyed MAC; ``key`` must be 32 bytes."""
    return blake3(data, key=key).digest(length)
