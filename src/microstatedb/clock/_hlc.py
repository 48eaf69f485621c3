"""Hybrid logical clock (Kulkarni et al., 2014).

A timestamp is one int: the physical part in milliseconds in the high bits and a 16-bit
logical counter in the low bits, so that timestamps compare as plain ints and pack small.
"""

from __future__ import annotations

from collections.abc import Callable

from microstatedb.clock._clocks import Clock, RealClock
from microstatedb.errors import ClockSkew, ConfigurationError

try:  # the compiled write path steps `last` and `edge` in place
    from microstatedb._speedups import HLCState as _State
except ImportError:  # pragma: no cover - a build without the C extension

    class _State:  # type: ignore[no-redef]
        __slots__ = ("edge", "last")
        last: int
        edge: float


LOGICAL_BITS = 16
"""Width of the logical counter in the low bits of a timestamp."""
_LOGICAL_MASK = (1 << LOGICAL_BITS) - 1


def make_hlc(physical_ms: int, logical: int = 0) -> int:
    """Pack a physical time in milliseconds and a logical counter into one timestamp."""
    return (physical_ms << LOGICAL_BITS) | logical


def hlc_physical_ms(ts: int) -> int:
    """The physical part of a timestamp, in milliseconds since the epoch."""
    return ts >> LOGICAL_BITS


def hlc_logical(ts: int) -> int:
    """The logical counter of a timestamp."""
    return ts & _LOGICAL_MASK


class HLC(_State):
    """A hybrid logical clock over an injectable wall clock.

    ``now()`` is strictly increasing even when the wall clock jumps back; ``update(remote)``
    merges a remote timestamp, and refuses (``ClockSkew``) one that is more than
    ``max_drift`` seconds ahead of the local wall clock instead of adopting it.
    """

    __slots__ = ("_clock", "max_drift_ms", "wall")

    def __init__(self, clock: Clock | None = None, *, max_drift: float = 60.0) -> None:
        if max_drift <= 0:
            raise ConfigurationError(f"max_drift must be positive seconds, got {max_drift!r}")
        self._clock: Clock = clock if clock is not None else RealClock()
        # A clock's coarse reading where it has one (RealClock): one timer tick of resolution
        # is well inside the clock skew between machines that timestamps must live with anyway.
        self.wall: Callable[[], float] = getattr(self._clock, "coarse", self._clock.now)
        """The wall clock read by ``now()``, in seconds."""
        self.last = 0
        """The largest timestamp issued or seen so far; only the owner's write path sets it."""
        self.edge = 0.0
        """A wall reading in ms below this one cannot pass ``last``'s physical part: a new
        timestamp is then ``last + 1`` with no int conversion (the store inlines that)."""
        self.max_drift_ms = int(max_drift * 1000)

    def now(self) -> int:
        """A new timestamp, larger than every one issued or seen before."""
        w = self.wall() * 1000.0
        if w < self.edge:  # within the last timestamp's millisecond, or behind it
            ts = self.last + 1
            self.last = ts
            return ts
        return self.tick(w)

    def tick(self, wall_ms: float) -> int:
        """``now()`` for a wall reading in ms at or past ``edge`` (once per millisecond)."""
        ts = int(wall_ms) << LOGICAL_BITS
        last = self.last
        if ts <= last:
            ts = last + 1
        self.last = ts
        # floor(w) <= physical(ts) exactly when w < physical(ts) + 1; exact in a float
        self.edge = float((ts >> LOGICAL_BITS) + 1)
        return ts

    def update(self, remote: int) -> int:
        """Take a remote timestamp into account; returns a new local timestamp after it."""
        self.check(remote)
        self.observe(remote)
        return self.now()

    def check(self, remote: int, what: str = "remote timestamp") -> None:
        """Raise ``ClockSkew`` if ``remote`` is further ahead than ``max_drift``; adopt nothing."""
        ahead_ms = hlc_physical_ms(remote) - int(self._clock.now() * 1000)
        if ahead_ms > self.max_drift_ms:
            raise ClockSkew(
                f"{what} is {ahead_ms / 1000:.3f}s ahead of the local clock (bound "
                f"{self.max_drift_ms / 1000:.3f}s); check the sender's clock (NTP) or raise "
                "max_drift"
            )

    def observe(self, ts: int) -> None:
        """Raise the clock to at least ``ts`` without a drift check (replay of own history)."""
        if ts > self.last:
            self.last = ts
