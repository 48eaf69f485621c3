"""Merkle summaries of a version vector: find which origins two replicas disagree on cheaply.

A version vector says, per origin, the range ``1..n`` of that origin's events a replica holds
(dots are unique and applied in order, so the range is the whole story). The summary is a
two-level Merkle tree over those ranges: origins fall into ``BUCKETS`` buckets by a hash of
their id, each bucket hashes its sorted ``(origin, n)`` pairs, and the root hashes the buckets.

Two replicas compare roots (16 bytes) and, when they differ, the bucket hashes; only the
entries of differing buckets then cross the network, so a fleet of hundreds does not ship
whole version vectors on every round.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from functools import lru_cache

from blake3 import blake3

from microstatedb.codec import packb
from microstatedb.errors import DecodeError

BUCKETS = 16
"""Number of buckets under the root."""
_BUCKET_HASH = 8
_ROOT_HASH = 16
_EMPTY = blake3(b"").digest(_BUCKET_HASH)


@lru_cache(maxsize=65_536)
def bucket_of(origin: str) -> int:
    """The bucket an origin's range falls in (stable across processes and versions)."""
    return blake3(origin.encode()).digest(1)[0] % BUCKETS


@dataclass(frozen=True, slots=True)
class VVSummary:
    """A Merkle summary of one version vector."""

    root: bytes
    """16-byte hash of the bucket hashes: equal roots mean equal version vectors."""
    buckets: tuple[bytes, ...]
    """One 8-byte hash per bucket."""

    def differing(self, other: VVSummary) -> list[int]:
        """The buckets whose hashes differ (empty when the roots agree)."""
        if self.root == other.root:
            return []
        return [i for i in range(BUCKETS) if self.buckets[i] != other.buckets[i]]

    def to_wire(self) -> list[bytes]:
        """``[root, bucket hashes joined]``, msgpack-ready."""
        return [self.root, b"".join(self.buckets)]

    @classmethod
    def from_wire(cls, data: object) -> VVSummary:
        """Parse ``to_wire`` output; anything else raises ``DecodeError``."""
        if (
            not isinstance(data, list)
            or len(data) != 2
            or not isinstance(data[0], bytes)
            or len(data[0]) != _ROOT_HASH
            or not isinstance(data[1], bytes)
            or len(data[1]) != BUCKETS * _BUCKET_HASH
        ):
            raise DecodeError("a version-vector summary must be [16-byte root, bucket hashes]")
        raw = data[1]
        buckets = tuple(raw[i : i + _BUCKET_HASH] for i in range(0, len(raw), _BUCKET_HASH))
        return cls(data[0], buckets)


def summarize(vv: Mapping[str, int]) -> VVSummary:
    """The Merkle summary of ``vv`` (zero entries count as absent)."""
    groups: list[list[tuple[str, int]]] = [[] for _ in range(BUCKETS)]
    for origin, n in vv.items():
        if n:
            groups[bucket_of(origin)].append((origin, n))
    buckets = tuple(blake3(packb(sorted(g))).digest(_BUCKET_HASH) if g else _EMPTY for g in groups)
    return VVSummary(blake3(b"".join(buckets)).digest(_ROOT_HASH), buckets)


def entries_in(vv: Mapping[str, int], buckets: Iterable[int]) -> dict[str, int]:
    """The non-zero entries of ``vv`` whose origins fall in ``buckets``."""
    wanted = set(buckets)
    return {o: n for o, n in vv.items() if n and bucket_of(o) in wanted}


def patch(
    base: Mapping[str, int], buckets: Iterable[int], entries: Mapping[str, int]
) -> dict[str, int]:
    """``base`` with the origins of ``buckets`` replaced by ``entries`` (absent means 0).

    How one replica rebuilds a peer's whole vector from the entries of the differing buckets:
    in the other buckets the two agreed.
    """
    wanted = set(buckets)
    out = {o: n for o, n in base.items() if bucket_of(o) not in wanted}
    out.update((o, n) for o, n in entries.items() if bucket_of(o) in wanted)
    return out


class SummaryCache:
    """Recomputes a replica's summary only when its version vector moved.

    Entries only grow, so the sum of the vector changes whenever the vector does.
    """

    __slots__ = ("_key", "_summary")

    def __init__(self) -> None:
        self._key = -1
        self._summary = summarize({})

    def get(self, vv: Mapping[str, int]) -> VVSummary:
        """The summary of ``vv``, cached while its sum is unchanged."""
        key = sum(vv.values())
        if key != self._key:
            self._summary = summarize(vv)
            self._key = key
        return self._summary
