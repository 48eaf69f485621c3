"""Deadlines: a time budget that travels with the work, from service to service.

A :class:`Deadline` is a point on a monotonic clock. It answers the budget left, refuses work
that cannot finish in time, shrinks for a sub-call (never grows), and crosses a service
boundary as a header carrying the remaining milliseconds (the receiving side rebuilds it on its
own clock, so clocks of different machines never need to agree).
"""

from __future__ import annotations

import asyncio
import contextvars
import inspect
import re
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from typing import TypeVar

from microstatedb.clock import Clock, RealClock
from microstatedb.errors import ConfigurationError, DeadlineExceeded, DecodeError

T = TypeVar("T")

_current: contextvars.ContextVar[Deadline | None] = contextvars.ContextVar(
    "microstatedb_deadline", default=None
)
_HEADER = re.compile(r"^([0-9]{1,8})([HMSmun])$")
_UNITS = {"H": 3600.0, "M": 60.0, "S": 1.0, "m": 1e-3, "u": 1e-6, "n": 1e-9}

HEADER_NAME = "grpc-timeout"
"""The header that carries the remaining budget (its format is gRPC's: digits and a unit)."""


class Deadline:
    """The monotonic instant ``at`` by which the work must be done, on ``clock``."""

    __slots__ = ("_clock", "at")

    def __init__(self, at: float, clock: Clock | None = None) -> None:
        if at != at:  # NaN never compares, so no budget could be computed from it
            raise ConfigurationError("a deadline needs a time, got nan")
        self.at = at
        self._clock: Clock = clock if clock is not None else RealClock()

    @classmethod
    def after(cls, seconds: float, clock: Clock | None = None) -> Deadline:
        """The deadline ``seconds`` from now."""
        if not seconds >= 0:
            raise ConfigurationError(f"a time budget must be >= 0 seconds, got {seconds!r}")
        clock = clock if clock is not None else RealClock()
        return cls(clock.monotonic() + seconds, clock)

    @property
    def clock(self) -> Clock:
        """The clock this deadline is measured on."""
        return self._clock

    def remaining(self) -> float:
        """Seconds left (0.0 once passed)."""
        return max(self.at - self._clock.monotonic(), 0.0)

    @property
    def expired(self) -> bool:
        """True once the deadline has passed."""
        return self._clock.monotonic() >= self.at

    def check(self, what: str = "the call") -> None:
        """Raise DeadlineExceeded if the budget is spent."""
        if self.expired:
            raise DeadlineExceeded(
                f"the time budget of {what} ran out; give the caller a longer timeout or do less"
            )

    def shrink(self, seconds: float) -> Deadline:
        """A deadline for a sub-call: at most ``seconds`` from now, never past this one."""
        if not seconds >= 0:
            raise ConfigurationError(f"a time budget must be >= 0 seconds, got {seconds!r}")
        return Deadline(min(self.at, self._clock.monotonic() + seconds), self._clock)

    def to_header(self) -> str:
        """The remaining budget as a header value (whole milliseconds, rounded down)."""
        ms = int(self.remaining() * 1000)
        return f"{min(ms, 99_999_999)}m"

    @classmethod
    def from_header(cls, value: str, clock: Clock | None = None) -> Deadline:
        """Rebuild a propagated deadline on this side's clock."""
        match = _HEADER.match(value.strip()) if isinstance(value, str) else None
        if match is None:
            raise DecodeError(
                f"{HEADER_NAME} header {value!r} is not 1-8 digits and a unit of H M S m u n"
            )
        return cls.after(int(match.group(1)) * _UNITS[match.group(2)], clock)

    @contextmanager
    def scope(self) -> Iterator[Deadline]:
        """Make this the current deadline (see :func:`current_deadline`) inside the block.

        An outer, earlier deadline still wins: the effective one is the earlier of the two.
        """
        outer = _current.get()
        effective = self if outer is None or self.at <= outer.at else outer
        token = _current.set(effective)
        try:
            yield effective
        finally:
            _current.reset(token)

    def __repr__(self) -> str:
        return f"Deadline(at={self.at!r}, remaining={self.remaining():.3f})"


def current_deadline() -> Deadline | None:
    """The deadline of the work in progress (set by :meth:`Deadline.scope`), if any."""
    return _current.get()


async def with_deadline(awaitable: Awaitable[T], deadline: Deadline) -> T:
    """Await ``awaitable``, cancelling it and raising DeadlineExceeded when the budget ends."""
    if deadline.expired:
        if inspect.iscoroutine(awaitable):
            awaitable.close()  # never started: close it so it does not warn when collected
        deadline.check()
    timer = asyncio.timeout(deadline.remaining())
    try:
        async with timer:
            return await awaitable
    except TimeoutError as exc:
        if not timer.expired():
            raise  # the work's own timeout, not ours
        raise DeadlineExceeded(
            "the awaited work outlived its deadline and was cancelled; "
            "give the caller a longer timeout or make the work cheaper"
        ) from exc
