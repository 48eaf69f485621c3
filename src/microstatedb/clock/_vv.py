"""Version vectors and dots as plain dicts and tuples: cheap to copy, msgpack-native."""

from __future__ import annotations

from collections.abc import Mapping

Dot = tuple[str, int]
"""An event's identity: (origin node id, that node's sequence number starting at 1)."""

VersionVector = dict[str, int]
"""Events seen per origin: ``{node: highest contiguous sequence number}``."""


def vv_dominates(a: Mapping[str, int], b: Mapping[str, int]) -> bool:
    """True when ``a`` has seen everything ``b`` has (a >= b entry-wise)."""
    return all(a.get(node, 0) >= n for node, n in b.items())


def vv_merge(a: Mapping[str, int], b: Mapping[str, int]) -> VersionVector:
    """The entry-wise maximum of two version vectors."""
    out = dict(a)
    for node, n in b.items():
        if n > out.get(node, 0):
            out[node] = n
    return out
