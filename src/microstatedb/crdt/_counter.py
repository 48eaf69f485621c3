"""PN-counter with reset floors, so that a removed map key's counter restarts from empty."""

from __future__ import annotations

from typing import Any

from microstatedb.crdt._base import Clock, _Base, register_kind
from microstatedb.errors import DecodeError, InvalidOperation

_U64 = (1 << 64) - 1


def _decode_part(part: Any) -> dict[str, int]:
    if type(part) is not dict:
        raise DecodeError(f"a counter delta part must be a dict of replica -> int, got {part!r}")
    for r, n in part.items():
        if type(r) is not str or not r or type(n) is not int or not 0 <= n <= _U64:
            raise DecodeError(
                f"a counter delta maps replica ids to ints in [0, 2**64), got {r!r}: {n!r}"
            )
    return part


def _sorted(d: dict[str, int]) -> dict[str, int]:
    return {k: d[k] for k in sorted(d)}


@register_kind
class PNCounter(_Base):
    """A counter that goes up and down.

    State: per replica the cumulative increments ``P`` and decrements ``N`` (join: max), and
    floors ``FP``/``FN`` set by ``reset()`` to what it had observed (join: max). The value is
    ``Σ max(0, P_r - FP_r) - Σ max(0, N_r - FN_r)``: a reset forgets what it saw, while an
    increment concurrent with it survives.

    Delta and state: ``[P, N, FP, FN]``, four dicts of replica id to int.
    """

    __slots__ = ("_fn", "_fp", "_n", "_p", "_value")

    kind = "counter"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._p: dict[str, int] = {}
        self._n: dict[str, int] = {}
        self._fp: dict[str, int] = {}
        self._fn: dict[str, int] = {}
        self._value = 0

    @property
    def value(self) -> int:
        return self._value

    def increment(self, n: int = 1) -> Any:
        """Add ``n`` (a non-negative int); returns the delta."""
        if type(n) is not int or n < 0:
            raise InvalidOperation(
                f"increment takes a non-negative int, got {n!r}; use decrement() to go down"
            )
        r = self.replica
        p = self._p
        old = p.get(r, 0)
        new = old + n
        if new > _U64:
            raise InvalidOperation("the counter's increments of this replica exceed 2**64 - 1")
        if new:  # no zero entries: the state stays canonical
            p[r] = new
        f = self._fp.get(r, 0)
        if old >= f:
            self._value += n
        elif new > f:
            self._value += new - f
        delta = [{r: new}, {}, {}, {}]
        # _emit inlined: this is the hottest path of the store
        if self._parent is None:
            cb = self.on_change
            if cb is not None:
                cb(delta)
            return delta
        return self._emit(delta)

    def decrement(self, n: int = 1) -> Any:
        """Subtract ``n`` (a non-negative int); returns the delta."""
        if type(n) is not int or n < 0:
            raise InvalidOperation(
                f"decrement takes a non-negative int, got {n!r}; use increment() to go up"
            )
        r = self.replica
        m = self._n
        old = m.get(r, 0)
        new = old + n
        if new > _U64:
            raise InvalidOperation("the counter's decrements of this replica exceed 2**64 - 1")
        if new:
            m[r] = new
        f = self._fn.get(r, 0)
        if old >= f:
            self._value -= n
        elif new > f:
            self._value -= new - f
        return self._emit([{}, {r: new}, {}, {}])

    @classmethod
    def _decode(cls, delta: Any) -> list[dict[str, int]]:
        if type(delta) not in (list, tuple) or len(delta) != 4:
            raise DecodeError(f"a counter delta must be [P, N, FP, FN], got {delta!r}")
        return [_decode_part(part) for part in delta]

    def _join(self, parts: list[dict[str, int]]) -> None:
        for mine, theirs in zip((self._p, self._n, self._fp, self._fn), parts, strict=True):
            for r, n in theirs.items():
                if n > mine.get(r, 0):
                    mine[r] = n
        self._value = self._compute()

    def _compute(self) -> int:
        fp, fn = self._fp, self._fn
        up = sum(max(0, n - fp.get(r, 0)) for r, n in self._p.items())
        down = sum(max(0, n - fn.get(r, 0)) for r, n in self._n.items())
        return up - down

    def state(self) -> list[dict[str, int]]:
        return [_sorted(self._p), _sorted(self._n), _sorted(self._fp), _sorted(self._fn)]

    def _reset_delta(self) -> list[dict[str, int]]:
        delta: list[dict[str, int]] = [{}, {}, dict(self._p), dict(self._n)]
        self._join(delta)
        return delta

    def _is_empty(self) -> bool:
        return not (self._p or self._n or self._fp or self._fn)
