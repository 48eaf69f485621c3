"""Wall clocks behind one small protocol, so tests and the simulator control time."""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

try:  # the compiled write path reads this clock without a Python call
    from microstatedb._speedups import coarse_time as _coarse_time
except ImportError:  # pragma: no cover - a build without the C extension
    _coarse_time = time.time

coarse_time: Callable[[], float] = _coarse_time
"""Seconds since the epoch as of the kernel's last timer tick (a tick is 1-10 ms on Linux; the
precise clock where there is no coarse one): a quarter of the cost of ``time.time()``."""


class Clock(Protocol):
    """A source of time. ``now()`` is wall time, ``monotonic()`` never goes back."""

    def now(self) -> float:
        """Seconds since the epoch (may jump, forwards or back)."""
        ...

    def monotonic(self) -> float:
        """Seconds from an arbitrary origin; never decreases."""
        ...


class RealClock:
    """The machine's clocks (the builtins themselves: no Python frame on the write path).

    ``coarse`` is the wall clock at the kernel's tick resolution, which ``HLC`` stamps events
    with: it lags ``now`` by at most one tick and costs a quarter as much.
    """

    now = staticmethod(time.time)
    monotonic = staticmethod(time.monotonic)
    coarse = staticmethod(coarse_time)


class ManualClock:
    """A clock that moves only when told to: for tests and the deterministic simulator."""

    def __init__(self, start: float = 1_700_000_000.0) -> None:
        self._wall = start
        self._mono = 0.0

    def now(self) -> float:
        return self._wall

    def monotonic(self) -> float:
        return self._mono

    def advance(self, seconds: float) -> None:
        """Move both clocks forward."""
        if seconds < 0:
            raise ValueError("advance() takes a non-negative duration; use set_wall() to jump")
        self._wall += seconds
        self._mono += seconds

    def set_wall(self, wall: float) -> None:
        """Jump the wall clock (forwards or back) without moving the monotonic one."""
        self._wall = wall
