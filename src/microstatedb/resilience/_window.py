"""Sliding windows of call outcomes with O(1) updates.

Both windows keep running totals next to their slots, so recording an outcome and reading the
rates cost the same whatever the window size: the slot that falls out is subtracted, the new
one added.
"""

from __future__ import annotations

from typing import Protocol

# One byte per call in the count window: bit 0 failure, bit 1 slow, bit 2 present.


class Window(Protocol):
    """What the breaker needs from a sliding window."""

    calls: int
    failures: int
    slow: int

    def record(self, failed: bool, slow: bool, now: float) -> None:
        """Add one outcome observed at monotonic time ``now``."""
        ...

    def expire(self, now: float) -> None:
        """Drop what is older than the window at ``now`` (count windows keep everything)."""
        ...

    def reset(self) -> None:
        """Forget every outcome."""
        ...


class CountWindow:
    """The last ``size`` calls, in a ring of one byte per call."""

    __slots__ = ("_pos", "_ring", "_size", "calls", "failures", "slow")

    def __init__(self, size: int) -> None:
        self._size = size
        self._ring = bytearray(size)
        self._pos = 0
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def record(self, failed: bool, slow: bool, now: float) -> None:
        ring = self._ring
        pos = self._pos
        old = ring[pos]
        if old:
            self.calls -= 1
            self.failures -= old & 1
            self.slow -= (old & 2) >> 1
        ring[pos] = 4 | failed | (slow << 1)
        self.calls += 1
        self.failures += failed
        self.slow += slow
        pos += 1
        if pos == self._size:
            pos = 0
            self._recount()
        self._pos = pos

    def _recount(self) -> None:
        """Totals from the ring itself (C-speed counts), once per wrap.

        The breaker updates this window without a lock in CLOSED; recounting at each wrap
        bounds any skew a thread race caused to one turn of the ring.
        """
        count = self._ring.count
        empty, failed, slow, slow_failed = count(0), count(5), count(6), count(7)
        self.calls = self._size - empty
        self.failures = failed + slow_failed
        self.slow = slow + slow_failed

    def expire(self, now: float) -> None:
        return None

    def reset(self) -> None:
        self._ring = bytearray(self._size)
        self._pos = 0
        self.calls = self.failures = self.slow = 0


class TimeWindow:
    """The calls of the last ``seconds`` whole seconds, one bucket per second.

    A call at time ``t`` lands in bucket ``floor(t)``; at time ``now`` the window holds the
    buckets ``floor(now) - seconds + 1`` to ``floor(now)``.
    """

    __slots__ = ("_fail", "_last", "_n", "_size", "_slow", "calls", "failures", "slow")

    def __init__(self, seconds: int) -> None:
        self._size = seconds
        self._n = [0] * seconds
        self._fail = [0] * seconds
        self._slow = [0] * seconds
        self._last = -1
        self.calls = 0
        self.failures = 0
        self.slow = 0

    def _advance(self, epoch: int) -> None:
        last = self._last
        if epoch <= last:
            return
        # Clearing at most `size` buckets per jump keeps the cost amortised O(1).
        start = max(last + 1, epoch - self._size + 1)
        for e in range(start, epoch + 1):
            i = e % self._size
            if self._n[i]:
                self.calls -= self._n[i]
                self.failures -= self._fail[i]
                self.slow -= self._slow[i]
                self._n[i] = self._fail[i] = self._slow[i] = 0
        self._last = epoch

    def record(self, failed: bool, slow: bool, now: float) -> None:
        epoch = int(now)
        if epoch > self._last:
            self._advance(epoch)
        elif epoch <= self._last - self._size:
            return  # older than the window: a late outcome from a long call
        i = epoch % self._size
        self._n[i] += 1
        self._fail[i] += failed
        self._slow[i] += slow
        self.calls += 1
        self.failures += failed
        self.slow += slow

    def expire(self, now: float) -> None:
        self._advance(int(now))

    def reset(self) -> None:
        size = self._size
        self._n = [0] * size
        self._fail = [0] * size
        self._slow = [0] * size
        self.calls = self.failures = self.slow = 0
