"""Retries: exponential backoff with full jitter, a retry budget, Retry-After, idempotency.

Only operations declared idempotent are retried (``idempotent=True`` or the
:func:`idempotent` decorator): retrying a payment that timed out may pay twice. The delay
before retry ``n`` is drawn uniformly from ``[0, min(max_delay, base_delay * multiplier**(n-1))]``
("full jitter"), so a fleet that failed together does not retry together; a ``Retry-After``
hint (such as :attr:`CircuitOpen.retry_after`) raises the delay to at least that. A
:class:`RetryBudget` caps retries to a fraction of calls, so retries cannot multiply the load
on a downstream that is already failing.
"""

from __future__ import annotations

import asyncio
import math
import random
import threading
import time
from collections.abc import Awaitable, Callable, Mapping
from typing import Any, ParamSpec, TypeVar

from microstatedb.clock import Clock, RealClock
from microstatedb.errors import ConfigurationError, RetriesExhausted, Unavailable
from microstatedb.resilience._deadline import Deadline, current_deadline
from microstatedb.resilience._fleet import BucketCounts, FleetView
from microstatedb.resilience._interval import capped_growth

P = ParamSpec("P")
T = TypeVar("T")

_MARK = "__microstatedb_idempotent__"


def idempotent(fn: Callable[P, T]) -> Callable[P, T]:
    """Declare ``fn`` safe to run more than once with the same arguments."""
    setattr(fn, _MARK, True)
    return fn


def default_retry_after(error: BaseException) -> float | None:
    """The ``retry_after`` seconds an error carries, if any (CircuitOpen carries one)."""
    value = getattr(error, "retry_after", None)
    if isinstance(value, int | float) and not isinstance(value, bool) and value >= 0:
        return float(value)
    return None


class RetryBudget:
    """At most ``ratio`` retries per call over the last ``window`` seconds, plus a floor.

    A retry may go when ``retries + 1 <= ratio * calls + min_retries`` over the window. With a
    ``view`` (a :class:`FleetView`) the counts of the whole fleet for ``downstream`` are
    added, refreshed every ``sync_interval`` seconds, so the fraction holds fleet-wide.
    """

    def __init__(
        self,
        *,
        ratio: float = 0.1,
        min_retries: int = 10,
        window: int = 10,
        clock: Clock | None = None,
        view: FleetView | None = None,
        downstream: str = "",
        instance: str = "",
        sync_interval: float = 1.0,
    ) -> None:
        if not 0 <= ratio <= 1:
            raise ConfigurationError(f"ratio must be in [0, 1], got {ratio!r}")
        for label, value, least in (("min_retries", min_retries, 0), ("window", window, 1)):
            if isinstance(value, bool) or not isinstance(value, int) or value < least:
                raise ConfigurationError(f"{label} must be an integer >= {least}, got {value!r}")
        if view is not None and not (downstream and instance):
            raise ConfigurationError("a fleet-wide budget needs a downstream and an instance name")
        self.ratio = float(ratio)
        self.min_retries = min_retries
        self.window = window
        self._clock: Clock = clock if clock is not None else RealClock()
        self._view = view
        self._downstream = downstream + "#retry"
        self._instance = instance
        self._sync_interval = sync_interval
        self._next_sync = -math.inf
        self._lock = threading.Lock()
        # Per whole second of wall time: [calls, retries], local and not yet flushed.
        self._local: dict[int, list[int]] = {}
        self._pending: dict[int, list[int]] = {}
        self._others = BucketCounts()

    def _second(self) -> int:
        return math.floor(self._clock.now())

    def _bump(self, index: int) -> None:
        second = self._second()
        with self._lock:
            for table in (self._local, self._pending):
                row = table.get(second)
                if row is None:
                    row = table[second] = [0, 0]
                row[index] += 1
            horizon = second - self.window
            for old in [s for s in self._local if s <= horizon]:
                del self._local[old]
        if self._view is not None and self._clock.monotonic() >= self._next_sync:
            self.sync()

    def record_call(self) -> None:
        """Count a first attempt (every call, retried or not)."""
        self._bump(0)

    def sync(self) -> None:
        """Flush local counts to the fleet view and read the other instances' counts."""
        view = self._view
        if view is None:
            return
        self._next_sync = self._clock.monotonic() + self._sync_interval
        with self._lock:
            pending, self._pending = self._pending, {}
        for second, (calls, retries) in pending.items():
            view.add(self._downstream, self._instance, second, BucketCounts(calls, retries=retries))
        counts: Mapping[str, BucketCounts] = view.counts(
            self._downstream, self._second() - self.window + 1
        )
        others = BucketCounts()
        for name, c in counts.items():
            if name != self._instance:
                others = others + c
        self._others = others

    def _totals(self) -> tuple[int, int]:
        first = self._second() - self.window + 1
        calls = self._others.calls
        retries = self._others.retries
        with self._lock:
            for second, (c, r) in self._local.items():
                if second >= first:
                    calls += c
                    retries += r
        return calls, retries

    def can_retry(self) -> bool:
        """True when one more retry fits in the budget."""
        calls, retries = self._totals()
        return retries + 1 <= self.ratio * calls + self.min_retries

    def try_spend(self) -> bool:
        """Take one retry from the budget if it fits; False (and nothing taken) if not."""
        if not self.can_retry():
            return False
        self._bump(1)
        return True


class Retry:
    """Run an operation again after transient failures, within limits.

    ``retry_on`` lists the exception types worth retrying (by default the "try again later"
    family: Unavailable, ConnectionError, TimeoutError); ``retry_if``, when given, decides
    instead. At most ``max_attempts`` attempts run. ``retry_after`` reads a server's hint from
    an error; a hint above ``max_retry_after`` seconds ends the retries. A current
    :class:`Deadline` (passed, or set with ``Deadline.scope()``) stops retries that could not
    finish in time. ``rng`` draws the jitter: pass a seeded ``random.Random`` in tests.
    """

    def __init__(
        self,
        *,
        max_attempts: int = 3,
        base_delay: float = 0.1,
        max_delay: float = 10.0,
        multiplier: float = 2.0,
        retry_on: tuple[type[BaseException], ...] = (Unavailable, ConnectionError, TimeoutError),
        retry_if: Callable[[BaseException], bool] | None = None,
        retry_after: Callable[[BaseException], float | None] = default_retry_after,
        max_retry_after: float = 60.0,
        budget: RetryBudget | None = None,
        rng: random.Random | None = None,
        sleep: Callable[[float], object] = time.sleep,
        async_sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if isinstance(max_attempts, bool) or not isinstance(max_attempts, int) or max_attempts < 1:
            raise ConfigurationError(f"max_attempts must be an integer >= 1, got {max_attempts!r}")
        if not 0 <= base_delay <= max_delay:
            raise ConfigurationError(
                f"need 0 <= base_delay <= max_delay, got {base_delay!r} and {max_delay!r}"
            )
        if not multiplier >= 1:
            raise ConfigurationError(f"multiplier must be >= 1, got {multiplier!r}")
        if not max_retry_after >= 0:
            raise ConfigurationError(f"max_retry_after must be >= 0, got {max_retry_after!r}")
        self.max_attempts = max_attempts
        self.base_delay = float(base_delay)
        self.max_delay = float(max_delay)
        self.multiplier = float(multiplier)
        self._retry_on = retry_on
        self._retry_if = retry_if
        self._retry_after = retry_after
        self.max_retry_after = float(max_retry_after)
        self.budget = budget
        self._rng = rng if rng is not None else random.Random()
        self._sleep = sleep
        self._async_sleep = async_sleep

    def backoff(self, retry: int) -> float:
        """The full-jitter delay before retry number ``retry`` (1 for the first retry)."""
        ceiling = capped_growth(self.base_delay, self.multiplier, retry - 1, self.max_delay)
        return self._rng.uniform(0.0, ceiling)

    def _retryable(self, error: BaseException) -> bool:
        if self._retry_if is not None:
            return self._retry_if(error)
        return isinstance(error, self._retry_on)

    def _plan(self, error: Exception, attempt: int, deadline: Deadline | None) -> float | None:
        """The delay before the next attempt, or None if this error is not retried at all."""
        if not self._retryable(error):
            return None
        if attempt >= self.max_attempts:
            raise RetriesExhausted(
                f"gave up after {attempt} attempts; the downstream keeps failing "
                "(see the chained error)"
            ) from error
        delay = self.backoff(attempt)
        hint = self._retry_after(error)
        if hint is not None:
            if hint > self.max_retry_after:
                raise RetriesExhausted(
                    f"the downstream asks to wait {hint:.3f}s, more than max_retry_after "
                    f"({self.max_retry_after}s); try again later"
                ) from error
            delay = max(delay, hint)
        if deadline is not None and delay >= deadline.remaining():
            raise RetriesExhausted(
                "no time left in the deadline for another attempt; the last error is chained"
            ) from error
        if self.budget is not None and not self.budget.try_spend():
            raise RetriesExhausted(
                "the retry budget is spent: too many retries against this downstream lately"
            ) from error
        return delay

    def _is_idempotent(self, fn: object, declared: bool | None) -> bool:
        return declared if declared is not None else bool(getattr(fn, _MARK, False))

    def call(
        self,
        fn: Callable[..., T],
        *args: Any,
        idempotent: bool | None = None,
        deadline: Deadline | None = None,
        **kwargs: Any,
    ) -> T:
        """Run ``fn``, retrying transient failures if it is idempotent; errors of a call that
        is not retried pass through unchanged."""
        again = self._is_idempotent(fn, idempotent)
        deadline = deadline if deadline is not None else current_deadline()
        if self.budget is not None:
            self.budget.record_call()
        attempt = 1
        while True:
            if deadline is not None:
                deadline.check()
            try:
                return fn(*args, **kwargs)
            except Exception as exc:
                if not again:
                    raise
                delay = self._plan(exc, attempt, deadline)
                if delay is None:
                    raise
            self._sleep(delay)
            attempt += 1

    async def call_async(
        self,
        fn: Callable[..., Awaitable[T]],
        *args: Any,
        idempotent: bool | None = None,
        deadline: Deadline | None = None,
        **kwargs: Any,
    ) -> T:
        """The async form of :meth:`call`; sleeps with ``async_sleep``."""
        again = self._is_idempotent(fn, idempotent)
        deadline = deadline if deadline is not None else current_deadline()
        if self.budget is not None:
            self.budget.record_call()
        attempt = 1
        while True:
            if deadline is not None:
                deadline.check()
            try:
                return await fn(*args, **kwargs)
            except Exception as exc:
                if not again:
                    raise
                delay = self._plan(exc, attempt, deadline)
                if delay is None:
                    raise
            await self._async_sleep(delay)
            attempt += 1
