"""The causal context of a CRDT object: which dots (events inside this object) it has seen.

Dots are per object: ``(replica, n)`` with ``n`` counting that replica's dots in this object,
so the context stays a compact version vector plus a small cloud of out-of-order dots.
"""

from __future__ import annotations

from collections.abc import Iterable
from typing import Any

from microstatedb.clock import Dot
from microstatedb.errors import DecodeError

_MAX_N = (1 << 64) - 1


def decode_dot(data: Any) -> Dot:
    """A dot from its wire form ``[replica, n]``; raises ``DecodeError``."""
    if (
        type(data) in (list, tuple)
        and len(data) == 2
        and type(data[0]) is str
        and data[0]
        and type(data[1]) is int
        and 0 < data[1] <= _MAX_N
    ):
        return (data[0], data[1])
    raise DecodeError(f"a dot must be [replica: str, n: int >= 1], got {data!r}")


def decode_dots(data: Any) -> list[Dot]:
    """A list of dots from their wire form; raises ``DecodeError``."""
    if type(data) not in (list, tuple):
        raise DecodeError(f"expected a list of dots, got {data!r}")
    return [decode_dot(d) for d in data]


class DotContext:
    """A set of dots: a version vector (contiguous prefixes) plus a cloud of the rest.

    The compact form is unique for a given set of dots (no cloud dot is at or next to its
    replica's version vector entry), so equal contexts encode to equal bytes.
    """

    __slots__ = ("cloud", "vv")

    def __init__(
        self, vv: dict[str, int] | None = None, cloud: Iterable[Dot] | None = None
    ) -> None:
        self.vv: dict[str, int] = dict(vv) if vv else {}
        self.cloud: set[Dot] = set(cloud) if cloud else set()
        if self.cloud:
            self.compact()

    def __repr__(self) -> str:
        return f"DotContext({self.vv!r}, {sorted(self.cloud)!r})"

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, DotContext):
            return NotImplemented
        return self.vv == other.vv and self.cloud == other.cloud

    __hash__ = None  # type: ignore[assignment]

    def contains(self, dot: Dot) -> bool:
        """True when the dot has been seen."""
        return self.vv.get(dot[0], 0) >= dot[1] or dot in self.cloud

    __contains__ = contains

    def next_dot(self, replica: str) -> Dot:
        """A fresh dot for ``replica``, added to the context."""
        vv = self.vv
        n = vv.get(replica, 0) + 1
        cloud = self.cloud
        if cloud:
            # Dots already seen right after the prefix are absorbed, not reused.
            while (replica, n) in cloud:
                cloud.discard((replica, n))
                n += 1
        vv[replica] = n
        return (replica, n)

    def add(self, dot: Dot) -> None:
        """Record one dot as seen."""
        r, n = dot
        vv = self.vv
        v = vv.get(r, 0)
        if n <= v:
            return
        if n == v + 1:
            cloud = self.cloud
            if cloud:
                while (r, n + 1) in cloud:
                    cloud.discard((r, n + 1))
                    n += 1
            vv[r] = n
        else:
            self.cloud.add(dot)

    def join(self, other: DotContext) -> None:
        """Union with another context."""
        vv = self.vv
        jumped = False
        for r, n in other.vv.items():
            if n > vv.get(r, 0):
                vv[r] = n
                jumped = True
        if jumped and self.cloud:
            # A version vector entry moved past cloud dots (a full-state merge): recompact.
            self.cloud |= other.cloud
            self.compact()
            return
        # A delta's few dots go in one at a time: O(their number), not O(cloud).
        add = self.add
        for d in other.cloud:
            add(d)

    def compact(self) -> None:
        """Move cloud dots that extend a contiguous prefix into the version vector."""
        vv = self.vv
        keep: set[Dot] = set()
        for dot in sorted(self.cloud):
            r, n = dot
            v = vv.get(r, 0)
            if n <= v:
                continue
            if n == v + 1:
                vv[r] = n
            else:
                keep.add(dot)
        self.cloud = keep

    def dots(self) -> list[Dot]:
        """Every dot, expanded (for tests and small contexts)."""
        out = [(r, i) for r, n in self.vv.items() for i in range(1, n + 1)]
        out.extend(self.cloud)
        out.sort()
        return out

    def copy(self) -> DotContext:
        ctx = DotContext()
        ctx.vv = dict(self.vv)
        ctx.cloud = set(self.cloud)
        return ctx

    def is_empty(self) -> bool:
        return not self.vv and not self.cloud

    def encode(self) -> list[Any]:
        """Canonical wire form ``[vv_dict, sorted_cloud]``."""
        return [
            {r: self.vv[r] for r in sorted(self.vv)},
            [[r, n] for r, n in sorted(self.cloud)],
        ]

    @classmethod
    def decode(cls, data: Any) -> DotContext:
        """A context from its wire form; raises ``DecodeError`` on a bad shape."""
        if type(data) not in (list, tuple) or len(data) != 2 or type(data[0]) is not dict:
            raise DecodeError(f"a causal context must be [vv: dict, cloud: list], got {data!r}")
        raw_vv, raw_cloud = data
        vv: dict[str, int] = {}
        for r, n in raw_vv.items():
            if type(r) is not str or not r or type(n) is not int or not 0 <= n <= _MAX_N:
                raise DecodeError(
                    f"a version vector maps replica ids to counts >= 0, got {r!r}: {n!r}"
                )
            if n:
                vv[r] = n
        ctx = cls()
        ctx.vv = vv
        cloud = decode_dots(raw_cloud)
        if cloud:
            ctx.cloud = set(cloud)
            ctx.compact()
        return ctx
