"""Registers: last-writer-wins (ordered by HLC, then replica id) and multi-value."""

from __future__ import annotations

from typing import Any

from microstatedb.clock import Dot
from microstatedb.crdt._base import Clock, _Base, default_clock, register_kind
from microstatedb.crdt._context import DotContext, decode_dot
from microstatedb.crdt._values import register_value
from microstatedb.errors import DecodeError

Stamp = tuple[int, str]
"""A write's timestamp: (hybrid logical clock, replica id), compared as a tuple."""

_U64 = (1 << 64) - 1


def _decode_stamp(data: Any) -> Stamp | None:
    if data is None:
        return None
    if (
        type(data) in (list, tuple)
        and len(data) == 2
        and type(data[0]) is int
        and 0 <= data[0] <= _U64
        and type(data[1]) is str
        and data[1]
    ):
        return (data[0], data[1])
    raise DecodeError(f"a register stamp must be [hlc: int, replica: str] or None, got {data!r}")


@register_kind
class LWWRegister(_Base):
    """A last-writer-wins register: the write with the larger ``(hlc, replica)`` stamp wins.

    ``reset()`` sets a floor at the largest stamp seen: writes at or below it are invisible,
    a write concurrent with the reset (stamped above it) stays.

    Delta and state: ``[stamp, value, floor]``, stamps as ``[hlc, replica]`` or None.
    """

    __slots__ = ("_floor", "_stamp", "_val")

    kind = "register"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._stamp: Stamp | None = None
        self._val: Any = None
        self._floor: Stamp | None = None

    @property
    def value(self) -> Any:
        """The winning value, or None when never set (or reset since)."""
        return self._val

    @property
    def stamp(self) -> Stamp | None:
        """The stamp of the visible write, or None."""
        return self._stamp

    def set(self, v: Any) -> Any:
        """Write ``v`` (msgpack data); returns the delta."""
        t = type(v)
        if t is not str and t is not bool and t is not float and v is not None:
            v = register_value(v)
        clock = self._clock
        if clock is None:
            clock = self._clock = default_clock()
        ts = clock()
        # A write must beat every write this replica has seen, even if the clock lags.
        top = self._stamp or self._floor
        if top is not None and ts <= top[0]:
            ts = top[0] + 1
        r = self.replica
        self._stamp = (ts, r)
        self._val = v
        delta = [[ts, r], v, None]
        if self._parent is None:
            cb = self.on_change
            if cb is not None:
                cb(delta)
            return delta
        return self._emit(delta)

    @classmethod
    def _decode(cls, delta: Any) -> tuple[Stamp | None, Any, Stamp | None]:
        if type(delta) not in (list, tuple) or len(delta) != 3:
            raise DecodeError(f"a register delta must be [stamp, value, floor], got {delta!r}")
        stamp = _decode_stamp(delta[0])
        floor = _decode_stamp(delta[2])
        if stamp is None and delta[1] is not None:
            raise DecodeError("a register delta without a stamp cannot carry a value")
        return stamp, delta[1], floor

    def _join(self, parsed: tuple[Stamp | None, Any, Stamp | None]) -> None:
        stamp, value, floor = parsed
        if floor is not None and (self._floor is None or floor > self._floor):
            self._floor = floor
        if stamp is not None and (self._stamp is None or stamp > self._stamp):
            self._stamp = stamp
            self._val = value
        # Writes at or below the floor are gone for good: forget them (one canonical state).
        if self._floor is not None and self._stamp is not None and self._stamp <= self._floor:
            self._stamp = None
            self._val = None

    def state(self) -> list[Any]:
        s, f = self._stamp, self._floor
        return [None if s is None else list(s), self._val, None if f is None else list(f)]

    def _reset_delta(self) -> list[Any]:
        top = self._stamp or self._floor
        delta = [None, None, None if top is None else list(top)]
        self.apply(delta)
        return delta

    def _is_empty(self) -> bool:
        return self._stamp is None and self._floor is None


@register_kind
class MVRegister(_Base):
    """A multi-value register: keeps every concurrent write; a write replaces what it saw.

    Delta and state: ``[[[dot, value], ...], context]``.
    """

    __slots__ = ("_ctx", "_entries", "_value")

    kind = "mvregister"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._entries: dict[Dot, Any] = {}
        self._ctx = DotContext()
        self._value: tuple[Any, ...] = ()

    @property
    def value(self) -> tuple[Any, ...]:
        """The concurrent values, ordered by dot; ``()`` when never set."""
        return self._value

    def set(self, v: Any) -> Any:
        """Write ``v`` (msgpack data), replacing every value seen; returns the delta."""
        v = register_value(v)
        d = self._ctx.next_dot(self.replica)
        seen = [list(o) for o in self._entries]
        seen.append(list(d))
        self._entries = {d: v}
        self._value = (v,)
        delta = [[[list(d), v]], [{}, seen]]
        return self._emit(delta)

    @classmethod
    def _decode(cls, delta: Any) -> tuple[dict[Dot, Any], DotContext]:
        if type(delta) not in (list, tuple) or len(delta) != 2:
            raise DecodeError(f"an mvregister delta must be [entries, context], got {delta!r}")
        raw, raw_ctx = delta
        if type(raw) not in (list, tuple):
            raise DecodeError(f"mvregister entries must be a list of [dot, value], got {raw!r}")
        theirs: dict[Dot, Any] = {}
        for item in raw:
            if type(item) not in (list, tuple) or len(item) != 2:
                raise DecodeError(f"an mvregister entry must be [dot, value], got {item!r}")
            d = decode_dot(item[0])
            if d in theirs:
                raise DecodeError(f"dot {item[0]!r} appears twice in one mvregister delta")
            theirs[d] = item[1]
        return theirs, DotContext.decode(raw_ctx)

    def _join(self, parsed: tuple[dict[Dot, Any], DotContext]) -> None:
        theirs, ctx2 = parsed
        mine, ctx1 = self._entries, self._ctx
        out = {d: v for d, v in mine.items() if d in theirs or not ctx2.contains(d)}
        for d, v in theirs.items():
            if d not in mine and not ctx1.contains(d):
                out[d] = v
        ctx1.join(ctx2)
        for d in theirs:
            ctx1.add(d)
        self._entries = out
        self._value = tuple(out[d] for d in sorted(out))

    def state(self) -> list[Any]:
        e = self._entries
        return [[[list(d), e[d]] for d in sorted(e)], self._ctx.encode()]

    def _reset_delta(self) -> list[Any]:
        delta = [[], [{}, [list(d) for d in sorted(self._entries)]]]
        self.apply(delta)
        return delta

    def _is_empty(self) -> bool:
        return not self._entries and self._ctx.is_empty()
