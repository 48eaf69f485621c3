"""The circuit breaker: a state machine over a sliding window, driven by an injectable clock.

The hot path is ``try_acquire()`` then one of the permit's outcome methods. In CLOSED the
acquire reads one attribute and builds a permit; no lock is held while the protected call runs,
and a short lock guards only the window update and the transitions.
"""

from __future__ import annotations

import asyncio
import functools
import inspect
import threading
import time
from collections.abc import Awaitable, Callable, Coroutine
from types import TracebackType
from typing import TYPE_CHECKING, Any, Literal, ParamSpec, TypeVar, overload

from microstatedb.clock import Clock, RealClock
from microstatedb.errors import CircuitOpen, ConfigurationError
from microstatedb.resilience._events import BreakerEvent, BreakerMetrics, EventKind
from microstatedb.resilience._interval import IntervalFunction, fixed_interval
from microstatedb.resilience._state import State
from microstatedb.resilience._window import CountWindow, TimeWindow, Window

if TYPE_CHECKING:
    from microstatedb.resilience._fleet import FleetMember, _FleetLink

P = ParamSpec("P")
T = TypeVar("T")

Listener = Callable[[BreakerEvent], None]
WindowType = Literal["count", "time"]

_CLOSED = State.CLOSED
_OPEN = State.OPEN
_HALF_OPEN = State.HALF_OPEN
_DISABLED = State.DISABLED
_FORCED_OPEN = State.FORCED_OPEN
_METRICS_ONLY = State.METRICS_ONLY
_PERMIT_ALL = frozenset({_CLOSED, _DISABLED, _METRICS_ONLY})
_INF = float("inf")
_EMPTY_OR_SUCCESS = (0, 4)  # count-window slots a plain success may overwrite in place
_HALF_OPEN_POLL = 0.01  # seconds between looks for a free half-open place in acquire()


class Permit:
    """Leave to make one call; report how it went with exactly one of its methods.

    A permit is truthy, so ``if permit := cb.try_acquire():`` reads naturally.
    """

    __slots__ = ("_breaker", "_done", "_gen", "start")

    def __init__(self, breaker: CircuitBreaker, start: float, gen: int) -> None:
        self._breaker = breaker
        self.start = start
        self._gen = gen
        self._done = False

    def __bool__(self) -> Literal[True]:
        return True

    def success(self, duration: float | None = None) -> None:
        """The call succeeded (``duration`` defaults to the time since the acquire)."""
        b = self._breaker
        if b._fast and duration is None and not self._done and self._gen == b._gen:
            # The common case, inlined from CircuitBreaker._record: CLOSED, count window,
            # a fast success. Anything else (slow, failures in the window) takes the full path.
            now = b._mono()
            window = b._count_window
            if (
                now - self.start < b.slow_call_duration
                and window is not None
                and not window.failures
                and not window.slow
                and window._ring[window._pos] in _EMPTY_OR_SUCCESS
            ):
                self._done = True
                ring = window._ring
                pos = window._pos
                if not ring[pos]:  # else the slot leaving held a plain success: no change
                    ring[pos] = 4
                    window.calls += 1
                pos += 1
                if pos == window._size:
                    pos = 0
                    window._recount()
                window._pos = pos
                b._successes += 1
                return
            b._record(self, 0, now - self.start, None)
            return
        b._record(self, 0, duration, None)

    def failure(self, error: BaseException | None = None, duration: float | None = None) -> None:
        """The call failed, whatever the breaker's exception rules say."""
        self._breaker._record(self, 1, duration, error)

    def error(self, error: BaseException, duration: float | None = None) -> None:
        """The call raised ``error``: the breaker's rules decide failure, success or ignore."""
        self._breaker._record(self, self._breaker._classify(error), duration, error)

    def result(self, value: object, duration: float | None = None) -> None:
        """The call returned ``value``: failure when the ``record_result`` predicate says so."""
        predicate = self._breaker._record_result
        failed = predicate is not None and predicate(value)
        self._breaker._record(self, 1 if failed else 0, duration, None)

    def release(self) -> None:
        """The call did not happen (or was cancelled): give the permit back, record nothing."""
        self._breaker._record(self, 2, 0.0, None)


class Rejection:
    """A refusal: ``retry_after`` seconds until the breaker may let a call through. Falsy."""

    __slots__ = ("name", "retry_after")

    def __init__(self, name: str, retry_after: float) -> None:
        self.name = name
        self.retry_after = retry_after

    def __bool__(self) -> Literal[False]:
        return False

    def __repr__(self) -> str:
        return f"Rejection(name={self.name!r}, retry_after={self.retry_after!r})"

    def error(self) -> CircuitOpen:
        """A fresh :class:`CircuitOpen` for this refusal (fresh, so no traceback piles up)."""
        return CircuitOpen(self.name, self.retry_after)


class _Guard:
    """``with cb.guard():`` / ``async with cb.guard():`` around a block."""

    __slots__ = ("_breaker", "_permit")

    def __init__(self, breaker: CircuitBreaker) -> None:
        self._breaker = breaker
        self._permit: Permit | None = None

    def __enter__(self) -> Permit:
        permit = self._breaker.try_acquire()
        if not permit:
            raise permit.error()
        self._permit = permit
        return permit

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        permit = self._permit
        assert permit is not None
        self._permit = None
        if permit._done:
            return  # the block reported the outcome itself
        if exc is None:
            permit.success()
        elif isinstance(exc, Exception):
            permit.error(exc)
        else:
            permit.release()  # cancellation or interpreter exit says nothing about the callee

    async def __aenter__(self) -> Permit:
        permit = await self._breaker.acquire()
        self._permit = permit
        return permit

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.__exit__(exc_type, exc, tb)


def _check_rate(name: str, value: float) -> float:
    if not 0 < value <= 100:
        raise ConfigurationError(f"{name} must be a percentage in (0, 100], got {value!r}")
    return float(value)


def _check_int(name: str, value: int, minimum: int) -> int:
    if isinstance(value, bool) or not isinstance(value, int) or value < minimum:
        raise ConfigurationError(f"{name} must be an integer >= {minimum}, got {value!r}")
    return value


def _check_seconds(name: str, value: float) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float) or not value >= 0:
        raise ConfigurationError(f"{name} must be a number of seconds >= 0, got {value!r}")
    return float(value)


class CircuitBreaker:
    """Fail fast when a downstream fails, probe carefully, recover by itself.

    ``failure_rate_threshold`` and ``slow_call_rate_threshold`` are percentages: the breaker
    trips when a rate reaches its threshold once ``minimum_calls`` calls are in the window
    (capped at the window size for a count window). ``wait_in_open`` is seconds or a function
    of the number of consecutive openings (see :func:`exponential_backoff`). In HALF_OPEN,
    ``permitted_calls_in_half_open`` probes pass; when all have reported, the same thresholds
    decide CLOSED or OPEN. ``max_wait_in_half_open`` (0 = no limit) reopens a half-open
    breaker whose probes never report. With ``automatic_transition`` the OPEN to HALF_OPEN move
    happens as soon as the wait is over (reading ``state`` shows it); otherwise it happens on
    the next acquire.

    Outcomes: an exception is ignored when it is one of ``ignore_exceptions`` or the
    ``ignore_exception`` predicate says so; otherwise it is a failure when it is one of
    ``record_exceptions`` (or the ``record_exception`` predicate, when given, says so), and a
    success else. A returned value is a failure when the ``record_result`` predicate says so.
    A call lasting ``slow_call_duration`` seconds or more is also slow.
    """

    def __init__(
        self,
        name: str,
        *,
        failure_rate_threshold: float = 50.0,
        slow_call_rate_threshold: float = 100.0,
        slow_call_duration: float = 60.0,
        sliding_window_type: WindowType = "count",
        sliding_window_size: int = 100,
        minimum_calls: int = 100,
        wait_in_open: float | IntervalFunction = 60.0,
        permitted_calls_in_half_open: int = 10,
        max_wait_in_half_open: float = 0.0,
        automatic_transition: bool = False,
        record_exceptions: tuple[type[BaseException], ...] = (Exception,),
        ignore_exceptions: tuple[type[BaseException], ...] = (),
        record_exception: Callable[[BaseException], bool] | None = None,
        ignore_exception: Callable[[BaseException], bool] | None = None,
        record_result: Callable[[Any], bool] | None = None,
        clock: Clock | None = None,
        fleet: FleetMember | None = None,
        sleep: Callable[[float], Awaitable[object]] = asyncio.sleep,
    ) -> None:
        if not isinstance(name, str) or not name:
            raise ConfigurationError(f"a breaker needs a non-empty name, got {name!r}")
        self.name = name
        self.failure_rate_threshold = _check_rate("failure_rate_threshold", failure_rate_threshold)
        self.slow_call_rate_threshold = _check_rate(
            "slow_call_rate_threshold", slow_call_rate_threshold
        )
        self.slow_call_duration = _check_seconds("slow_call_duration", slow_call_duration)
        size = _check_int("sliding_window_size", sliding_window_size, 1)
        self.minimum_calls = _check_int("minimum_calls", minimum_calls, 1)
        self._window: Window
        self._count_window: CountWindow | None = None
        if sliding_window_type == "count":
            self._window = self._count_window = CountWindow(size)
            self._min_calls = min(self.minimum_calls, size)
        elif sliding_window_type == "time":
            self._window = TimeWindow(size)
            self._min_calls = self.minimum_calls
        else:
            raise ConfigurationError(
                f"sliding_window_type must be 'count' or 'time', got {sliding_window_type!r}"
            )
        self.sliding_window_type: WindowType = sliding_window_type
        self.sliding_window_size = size
        if callable(wait_in_open):
            self._interval = wait_in_open
        else:
            self._interval = fixed_interval(_check_seconds("wait_in_open", wait_in_open))
        self.permitted_calls_in_half_open = _check_int(
            "permitted_calls_in_half_open", permitted_calls_in_half_open, 1
        )
        self.max_wait_in_half_open = _check_seconds("max_wait_in_half_open", max_wait_in_half_open)
        self.automatic_transition = bool(automatic_transition)
        for label, types in (
            ("record_exceptions", record_exceptions),
            ("ignore_exceptions", ignore_exceptions),
        ):
            if not isinstance(types, tuple) or not all(
                isinstance(t, type) and issubclass(t, BaseException) for t in types
            ):
                raise ConfigurationError(f"{label} must be a tuple of exception types")
        self._record_exceptions = record_exceptions
        self._ignore_exceptions = ignore_exceptions
        self._record_exception = record_exception
        self._ignore_exception = ignore_exception
        self._record_result = record_result
        self._clock: Clock = clock if clock is not None else RealClock()
        # The machine's clock is read directly: one call less on the hot path.
        self._mono: Callable[[], float] = (
            time.monotonic if type(self._clock) is RealClock else self._clock.monotonic
        )
        self._sleep = sleep
        self._lock = threading.Lock()
        self._listeners: list[Listener] = []
        # Work that must not run under the lock (listeners, fleet writes), run once it is free.
        self._deferred: list[Callable[[], object]] = []

        self._state = _CLOSED
        self._permit_all = True
        self._fast = self._count_window is not None
        self._gen = 0
        self._open_until = 0.0
        self._forced_until = _INF
        self._openings = 0
        self._half_open_since = 0.0
        self._slots = 0
        self._ho_calls = 0
        self._ho_failures = 0
        self._ho_slow = 0

        self._not_permitted = 0
        self._successes = 0
        self._failures = 0
        self._ignored = 0
        self._transitions = 0

        # Fleet wiring: set by FleetMember.attach; `_next_sync` gates the periodic sync.
        self._link: _FleetLink | None = None
        self._next_sync = _INF
        self._fleet_open = False
        self._fleet_probe = False
        self._fleet_forced = False
        if fleet is not None:
            fleet.attach(self)

    # ------------------------------------------------------------------ introspection

    @property
    def state(self) -> State:
        """The current state (with ``automatic_transition``, time alone can change it)."""
        if self._link is not None and self._mono() >= self._next_sync:
            self._link.sync()
        if self.automatic_transition:
            state = self._state
            if state is _OPEN or state is _HALF_OPEN:
                now = self._mono()
                with self._lock:
                    self._expire_timers(now, to_half_open=not self._fleet_open)
                self._drain()
        return self._state

    @property
    def clock(self) -> Clock:
        """The clock the breaker reads."""
        return self._clock

    def metrics(self) -> BreakerMetrics:
        """A snapshot of the window and the running totals."""
        with self._lock:
            window = self._window
            window.expire(self._mono())
            calls = window.calls
            if calls >= self._min_calls:
                failure_rate = window.failures * 100.0 / calls
                slow_rate = window.slow * 100.0 / calls
            else:
                failure_rate = slow_rate = -1.0
            return BreakerMetrics(
                state=self._state,
                calls=calls,
                failures=window.failures,
                slow_calls=window.slow,
                failure_rate=failure_rate,
                slow_call_rate=slow_rate,
                not_permitted=self._not_permitted,
                successes_total=self._successes,
                failures_total=self._failures,
                ignored_total=self._ignored,
                transitions_total=self._transitions,
            )

    def add_listener(self, listener: Listener) -> None:
        """Call ``listener(event)`` for every event; it runs inline, so keep it short."""
        self._listeners.append(listener)
        self._update_fast()

    def remove_listener(self, listener: Listener) -> None:
        """Stop calling ``listener``."""
        self._listeners.remove(listener)
        self._update_fast()

    def _update_fast(self) -> None:
        self._fast = (
            self._state is _CLOSED
            and self._count_window is not None
            and self._link is None
            and not self._listeners
        )

    def _emit(self, event: BreakerEvent) -> None:
        for listener in tuple(self._listeners):
            listener(event)

    def _drain(self) -> None:
        """Run the deferred work; call it with the lock free (list pops are atomic)."""
        deferred = self._deferred
        while deferred:
            try:
                task = deferred.pop(0)
            except IndexError:  # another thread took the last one
                return
            task()

    # ------------------------------------------------------------------ acquire

    def try_acquire(self) -> Permit | Rejection:
        """A permit for one call, or a rejection saying how long to wait; never blocks."""
        if self._permit_all:
            now = self._mono()
            if now < self._next_sync:  # always true without a fleet (next sync at +inf)
                return Permit(self, now, self._gen)
        return self._acquire_slow()

    def _acquire_slow(self) -> Permit | Rejection:
        now = self._mono()
        link = self._link
        if self._state is _OPEN and now < self._open_until and link is None:
            # Refusing while OPEN takes no lock: a racing counter update may lose a count.
            self._not_permitted += 1
            if self._listeners:
                self._emit(BreakerEvent(EventKind.NOT_PERMITTED, self.name, now))
            return Rejection(self.name, self._open_until - now)
        if link is not None and (
            now >= self._next_sync or (self._fleet_open and now >= self._open_until)
        ):
            link.sync()
            now = self._mono()
        retry_after = 0.0
        try:
            with self._lock:
                self._expire_timers(now, to_half_open=not self._fleet_open)
                state = self._state
                if state is _HALF_OPEN:
                    if self._slots > 0:
                        self._slots -= 1
                        return Permit(self, now, self._gen)
                    if self.max_wait_in_half_open:
                        retry_after = self._half_open_since + self.max_wait_in_half_open - now
                elif state is _OPEN:
                    retry_after = self._open_until - now
                elif state is _FORCED_OPEN:
                    retry_after = self._forced_until - now
                else:  # a concurrent transition let everything through again
                    return Permit(self, now, self._gen)
                self._not_permitted += 1
        finally:
            if self._deferred:
                self._drain()
        if self._listeners:
            self._emit(BreakerEvent(EventKind.NOT_PERMITTED, self.name, now))
        return Rejection(self.name, max(retry_after, 0.0))

    def _expire_timers(self, now: float, *, to_half_open: bool) -> None:
        """Time-driven moves; the caller holds the lock."""
        state = self._state
        if state is _OPEN:
            if now >= self._open_until and to_half_open:
                self._transition(_HALF_OPEN, now)
        elif state is _HALF_OPEN:
            limit = self.max_wait_in_half_open
            if limit and now >= self._half_open_since + limit:
                probe = self._fleet_probe
                self._transition(_OPEN, now)
                if probe and self._link is not None:
                    # A fleet probe that never reported counts as a failed one for the fleet.
                    self._link.probe_finished(closed=False, open_for=self._open_until - now)
        elif state is _FORCED_OPEN and now >= self._forced_until:
            self._fleet_forced = False
            self._transition(_CLOSED, now)

    async def acquire(self, max_wait: float = 0.0) -> Permit:
        """A permit, waiting up to ``max_wait`` seconds for one; else raise CircuitOpen.

        Built on :meth:`try_acquire`: it sleeps (with the breaker's ``sleep``) for the
        rejection's ``retry_after`` while that fits in what is left of ``max_wait``.
        """
        deadline = self._mono() + max_wait
        while True:
            permit = self.try_acquire()
            if permit:
                return permit
            left = deadline - self._mono()
            if permit.retry_after > left or (permit.retry_after <= 0 and left <= 0):
                raise permit.error()
            # A zero retry-after means the half-open places are busy: poll briefly for one.
            await self._sleep(permit.retry_after or min(left, _HALF_OPEN_POLL))

    # ------------------------------------------------------------------ use

    def call(self, fn: Callable[P, T], *args: P.args, **kwargs: P.kwargs) -> T:
        """Run ``fn(*args, **kwargs)`` through the breaker; raise CircuitOpen when refused."""
        permit = self.try_acquire()
        if not permit:
            raise permit.error()
        try:
            result = fn(*args, **kwargs)
        except Exception as exc:
            permit.error(exc)
            raise
        except BaseException:
            permit.release()
            raise
        if self._record_result is None:
            permit.success()
        else:
            permit.result(result)
        return result

    async def call_async(
        self, fn: Callable[P, Awaitable[T]], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Await ``fn(*args, **kwargs)`` through the breaker; raise CircuitOpen when refused."""
        permit = self.try_acquire()
        if not permit:
            raise permit.error()
        try:
            result = await fn(*args, **kwargs)
        except Exception as exc:
            permit.error(exc)
            raise
        except BaseException:
            permit.release()
            raise
        permit.result(result)
        return result

    def guard(self) -> _Guard:
        """A context manager (sync or async) that runs its block through the breaker."""
        return _Guard(self)

    @overload
    def __call__(
        self, fn: Callable[P, Coroutine[Any, Any, T]]
    ) -> Callable[P, Coroutine[Any, Any, T]]: ...

    @overload
    def __call__(self, fn: Callable[P, T]) -> Callable[P, T]: ...

    def __call__(self, fn: Callable[P, Any]) -> Callable[P, Any]:
        """Decorate a function (sync or async) so every call goes through the breaker."""
        if inspect.iscoroutinefunction(fn):

            @functools.wraps(fn)
            async def async_wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
                return await self.call_async(fn, *args, **kwargs)

            return async_wrapper

        @functools.wraps(fn)
        def wrapper(*args: P.args, **kwargs: P.kwargs) -> Any:
            return self.call(fn, *args, **kwargs)

        return wrapper

    # ------------------------------------------------------------------ outcomes

    def _classify(self, error: BaseException) -> int:
        """0 success, 1 failure, 2 ignored."""
        if isinstance(error, self._ignore_exceptions) or (
            self._ignore_exception is not None and self._ignore_exception(error)
        ):
            return 2
        if self._record_exception is not None:
            return 1 if self._record_exception(error) else 0
        return 1 if isinstance(error, self._record_exceptions) else 0

    def _record(
        self, permit: Permit, outcome: int, duration: float | None, error: BaseException | None
    ) -> None:
        if permit._done:
            return  # one outcome per permit; a second report is a no-op
        permit._done = True
        now = self._mono()
        if duration is None:
            duration = now - permit.start
        if self._fast and outcome != 2 and permit._gen == self._gen:
            # CLOSED with a count window, no fleet, no listeners: no lock. Under a thread race
            # a count may be lost; the window recounts its totals from the ring at each wrap.
            slow = duration >= self.slow_call_duration
            window = self._count_window
            assert window is not None
            # CountWindow.record, inlined: this is the hottest line of the package.
            ring = window._ring
            pos = window._pos
            old = ring[pos]
            if old:
                window.calls -= 1
                window.failures -= old & 1
                window.slow -= (old & 2) >> 1
            ring[pos] = 4 | outcome | (slow << 1)
            window.calls += 1
            window.failures += outcome
            window.slow += slow
            pos += 1
            if pos == window._size:
                pos = 0
                window._recount()
            window._pos = pos
            if outcome:
                self._failures += 1
            else:
                self._successes += 1
            if (
                (window.failures or window.slow)
                and window.calls >= self._min_calls
                and self._exceeded(window.calls, window.failures, window.slow)
            ):
                with self._lock:
                    if self._state is _CLOSED and permit._gen == self._gen:
                        self._transition(_OPEN, now)
                self._drain()
            return
        self._record_locked(permit, outcome, duration, now, error)

    def _record_locked(
        self,
        permit: Permit,
        outcome: int,
        duration: float,
        now: float,
        error: BaseException | None,
    ) -> None:
        slow = duration >= self.slow_call_duration and outcome != 2
        link = self._link
        with self._lock:
            state = self._state
            if state is _DISABLED:
                return
            current = permit._gen == self._gen
            if outcome == 2:
                self._ignored += 1
                if current and state is _HALF_OPEN:
                    self._slots += 1
            else:
                failed = outcome == 1
                if failed:
                    self._failures += 1
                else:
                    self._successes += 1
                if current:
                    if state is _HALF_OPEN:
                        self._record_half_open(failed, slow, now)
                    elif state is _CLOSED or state is _METRICS_ONLY:
                        window = self._window
                        window.record(failed, slow, now)
                        if (
                            state is _CLOSED
                            and (window.failures or window.slow)
                            and window.calls >= self._min_calls
                            and self._exceeded(window.calls, window.failures, window.slow)
                        ):
                            self._transition(_OPEN, now)
            if link is not None and outcome != 2:
                link.note(outcome == 1, slow)
        if self._deferred:
            self._drain()
        if link is not None and now >= self._next_sync:
            link.sync()
        if self._listeners:
            self._emit_outcome(outcome, slow, now, duration, error)

    def _emit_outcome(
        self, outcome: int, slow: bool, now: float, duration: float, error: BaseException | None
    ) -> None:
        kind = (EventKind.SUCCESS, EventKind.ERROR, EventKind.IGNORED_ERROR)[outcome]
        self._emit(BreakerEvent(kind, self.name, now, duration=duration, error=error))
        if slow:
            self._emit(BreakerEvent(EventKind.SLOW, self.name, now, duration=duration))

    def _exceeded(self, calls: int, failures: int, slow: int) -> bool:
        return (
            failures * 100.0 >= self.failure_rate_threshold * calls
            or slow * 100.0 >= self.slow_call_rate_threshold * calls
        )

    def _record_half_open(self, failed: bool, slow: bool, now: float) -> None:
        self._ho_calls += 1
        self._ho_failures += failed
        self._ho_slow += slow
        if self._ho_calls >= self.permitted_calls_in_half_open:
            reopen = self._exceeded(self._ho_calls, self._ho_failures, self._ho_slow)
            probe = self._fleet_probe
            self._transition(_OPEN if reopen else _CLOSED, now)
            if probe and self._link is not None:
                self._link.probe_finished(closed=not reopen, open_for=self._open_until - now)

    # ------------------------------------------------------------------ transitions

    def _wait_in_open(self, opening: int) -> float:
        """Seconds to stay OPEN after opening number ``opening``, from the interval function."""
        wait = self._interval(opening)
        if isinstance(wait, bool) or not isinstance(wait, int | float) or not 0 <= wait < _INF:
            raise ConfigurationError(
                f"breaker {self.name!r}: wait_in_open returned {wait!r} for opening {opening}; "
                "it must return a finite number of seconds >= 0"
            )
        return float(wait)

    def _transition(self, to: State, now: float, *, until: float | None = None) -> None:
        """Enter ``to``; the caller holds the lock and drains the deferred work after it.

        ``until`` overrides the computed timer.
        """
        if to is _OPEN and until is None:
            until = now + self._wait_in_open(self._openings + 1)  # may raise: nothing moved yet
        previous = self._state
        self._gen += 1
        self._transitions += 1
        self._fleet_probe = False
        if to is _OPEN:
            self._openings += 1
            assert until is not None
            self._open_until = until
        elif to is _HALF_OPEN:
            self._half_open_since = now
            self._slots = self.permitted_calls_in_half_open
            self._ho_calls = self._ho_failures = self._ho_slow = 0
        elif to is _FORCED_OPEN:
            self._forced_until = _INF if until is None else until
        if to is _CLOSED:
            self._openings = 0
            self._fleet_open = False
        self._window.reset()
        self._state = to
        self._permit_all = to in _PERMIT_ALL
        self._update_fast()
        if self._listeners:
            event = BreakerEvent(
                EventKind.STATE_TRANSITION, self.name, now, from_state=previous, to_state=to
            )
            self._deferred.append(functools.partial(self._emit, event))

    def _move(self, to: State, *, until: float | None = None) -> None:
        with self._lock:
            self._fleet_open = self._fleet_forced = False
            self._transition(to, self._mono(), until=until)
        self._drain()

    def transition_to_closed(self) -> None:
        """Close the breaker now, with an empty window."""
        self._move(_CLOSED)

    def transition_to_open(self) -> None:
        """Open the breaker now, for the configured wait."""
        self._move(_OPEN)

    def transition_to_half_open(self) -> None:
        """Start probing now."""
        self._move(_HALF_OPEN)

    def force_open(self, duration: float | None = None) -> None:
        """Refuse every call until told otherwise, or for ``duration`` seconds."""
        until = None
        if duration is not None:
            until = self._mono() + _check_seconds("duration", duration)
        self._move(_FORCED_OPEN, until=until)

    def disable(self) -> None:
        """Let every call through and record nothing."""
        self._move(_DISABLED)

    def metrics_only(self) -> None:
        """Let every call through and keep recording, without ever tripping (forced closed)."""
        self._move(_METRICS_ONLY)

    def reset(self) -> None:
        """Back to a fresh CLOSED breaker: empty window, no backoff history."""
        self._move(_CLOSED)

    def __repr__(self) -> str:
        return f"CircuitBreaker({self.name!r}, state={self._state.name})"
