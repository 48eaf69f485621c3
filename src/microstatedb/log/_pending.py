"""A durable log's pending events in Python: what ``_speedups.EncodedEvents(dots=True)`` is
compiled, for a build without the extension.

Events wait here, encoded and unframed, with their dots, until the log's writer takes them for
the disk. A commit needs each origin's largest seq per segment, which ``Dots.maxima`` gives.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from itertools import accumulate

_SCAN_ORIGINS = 16
"""Up to this many distinct origins in a range, one C-level scan each; above, one sort."""


class Dots:
    """The origins and seqs of events taken together, in order."""

    __slots__ = ("_origins", "_seqs")

    def __init__(self, origins: list[str], seqs: list[int]) -> None:
        self._origins = origins
        self._seqs = seqs

    def __len__(self) -> int:
        return len(self._seqs)

    def maxima(self, lo: int, hi: int) -> dict[str, int]:
        """``{origin: largest seq}`` over the events ``lo`` to ``hi - 1``."""
        if not 0 <= lo <= hi <= len(self._seqs):
            raise ValueError(f"maxima({lo}, {hi}) of {len(self._seqs)} events")
        origins, seqs = self._origins[lo:hi], self._seqs[lo:hi]
        if not origins:
            return {}
        first = origins[0]
        if origins.count(first) == len(origins):  # a store's own writes: one origin
            return {first: max(seqs)}
        distinct = set(origins)
        if len(distinct) <= _SCAN_ORIGINS:  # a few peers' events applied together
            return {o: max(itertools.compress(seqs, map(o.__eq__, origins))) for o in distinct}
        # sorted by (origin, seq), a dict keeps each origin's largest seq
        return dict(sorted(zip(origins, seqs, strict=True)))


class PendingEvents:
    """Encoded events with their dots, in three lists.

    ``add`` takes no lock: it appends body, origin, then seq, and an event counts (``len``)
    once its seq is there. So a ``take`` that runs between the appends of one ``add`` (the
    GIL may switch threads between any two) leaves that event whole for the next one.
    """

    __slots__ = ("bodies", "origins", "seqs")

    def __init__(self) -> None:
        self.bodies: list[bytes] = []
        self.origins: list[str] = []
        self.seqs: list[int] = []

    def __len__(self) -> int:
        return len(self.seqs)

    def add(self, body: bytes, origin: str, seq: int) -> None:
        self.bodies.append(body)
        self.origins.append(origin)
        self.seqs.append(seq)  # last: the event counts once its seq is here

    def add_many(
        self, bodies: Sequence[bytes], origins: Sequence[str], seqs: Sequence[int]
    ) -> None:
        """Several events; the caller holds the log's lock."""
        self.bodies.extend(bodies)
        self.origins.extend(origins)
        self.seqs.extend(seqs)

    def take(self, n: int) -> tuple[bytes, Sequence[int], Dots]:
        """The first ``n`` events leave: their bytes back to back, where each ends, their dots."""
        bodies, origins, seqs = self.bodies[:n], self.origins[:n], self.seqs[:n]
        del self.bodies[:n], self.origins[:n], self.seqs[:n]
        return b"".join(bodies), list(accumulate(map(len, bodies))), Dots(origins, seqs)
