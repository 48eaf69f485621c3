"""The add-wins (observed-remove) set."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

from microstatedb.clock import Dot
from microstatedb.crdt._base import Clock, _Base, register_kind
from microstatedb.crdt._context import DotContext
from microstatedb.crdt._dotmap import decode_entries, encode_entries, join_dots
from microstatedb.crdt._values import ElemKey, decode_elem, elem_key, key_elem, sort_key
from microstatedb.errors import DecodeError


@register_kind
class AWSet(_Base):
    """An add-wins set: an add concurrent with a remove of the same element survives.

    Each add tags its element with a fresh dot (replacing the dots it saw); a remove takes away
    exactly the dots its replica had seen. Elements are msgpack scalars (str, int, float, bytes,
    bool, None); ``1``, ``1.0`` and ``True`` are three elements, though ``value`` (a Python
    frozenset) shows them as one.

    Delta and state: ``[[[elem, [dot, ...]], ...], context]``.
    """

    __slots__ = ("_ctx", "_entries", "_frozen", "_tagged", "_where")

    kind = "set"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._entries: dict[ElemKey, tuple[Dot, ...]] = {}
        self._where: dict[Dot, ElemKey] = {}
        self._ctx = DotContext()
        self._frozen: frozenset[Any] | None = frozenset()
        self._tagged = False

    @property
    def value(self) -> frozenset[Any]:
        f = self._frozen
        if f is None:
            e = self._entries
            f = self._frozen = frozenset(map(key_elem, e) if self._tagged else e)
        return f

    def __contains__(self, x: Any) -> bool:
        return (x if type(x) is str else elem_key(x)) in self._entries

    def __len__(self) -> int:
        return len(self._entries)

    def __iter__(self) -> Iterator[Any]:
        return iter(self.value)

    def add(self, x: Any) -> Any:
        """Add ``x``; returns the delta."""
        if type(x) is str:
            k = x
        else:
            k = elem_key(x)
            if type(k) is tuple:
                self._tagged = True
            x = key_elem(k)
        r = self.replica
        ctx = self._ctx
        if ctx.cloud:
            r, n = ctx.next_dot(r)
        else:
            n = ctx.vv.get(r, 0) + 1
            ctx.vv[r] = n
        d = (r, n)
        entries = self._entries
        where = self._where
        old = entries.get(k)
        entries[k] = (d,)
        where[d] = k
        seen = [[r, n]]
        if old:
            for o in old:
                del where[o]
                seen.append([o[0], o[1]])
        else:
            self._frozen = None
        delta = [[[x, [[r, n]]]], [{}, seen]]
        if self._parent is None:
            cb = self.on_change
            if cb is not None:
                cb(delta)
            return delta
        return self._emit(delta)

    def remove(self, x: Any) -> Any:
        """Remove ``x`` as far as this replica has seen it; returns the delta."""
        k = x if type(x) is str else elem_key(x)
        old = self._entries.pop(k, None)
        seen = []
        if old:
            where = self._where
            for o in old:
                del where[o]
                seen.append(list(o))
            self._frozen = None
        delta: list[Any] = [[], [{}, seen]]
        return self._emit(delta)

    @classmethod
    def _decode(cls, delta: Any) -> tuple[dict[ElemKey, tuple[Dot, ...]], DotContext]:
        if type(delta) not in (list, tuple) or len(delta) != 2:
            raise DecodeError(f"a set delta must be [entries, context], got {delta!r}")
        return decode_entries(delta[0], decode_elem), DotContext.decode(delta[1])

    def _join(self, parsed: tuple[dict[ElemKey, tuple[Dot, ...]], DotContext]) -> None:
        theirs, ctx2 = parsed
        if join_dots(self._entries, self._where, self._ctx, theirs, ctx2):
            self._frozen = None
            if not self._tagged and any(type(k) is tuple for k in theirs):
                self._tagged = True

    def state(self) -> list[Any]:
        return [encode_entries(self._entries, key_elem, sort_key), self._ctx.encode()]

    def _reset_delta(self) -> list[Any]:
        delta = [[], [{}, [list(d) for d in sorted(self._where)]]]
        self.apply(delta)
        return delta

    def _is_empty(self) -> bool:
        return not self._entries and self._ctx.is_empty()
