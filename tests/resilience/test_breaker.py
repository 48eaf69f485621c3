"""Every state transition of the circuit breaker, on a manual clock."""

from __future__ import annotations

import asyncio
import contextlib
import gc
import threading
import tracemalloc

import pytest

from microstatedb import errors
from microstatedb.clock import ManualClock
from microstatedb.resilience import (
    BreakerEvent,
    CircuitBreaker,
    EventKind,
    Permit,
    Rejection,
    State,
    exponential_backoff,
)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom("downstream failed")


def make(clock: ManualClock, **options: object) -> CircuitBreaker:
    settings: dict[str, object] = {
        "failure_rate_threshold": 50.0,
        "sliding_window_size": 10,
        "minimum_calls": 4,
        "wait_in_open": 30.0,
        "permitted_calls_in_half_open": 2,
    }
    settings.update(options)
    return CircuitBreaker("payments", clock=clock, **settings)  # type: ignore[arg-type]


def fail(cb: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            cb.call(boom)


def succeed(cb: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        assert cb.call(lambda: 7) == 7


def test_the_contract_example() -> None:
    clock = ManualClock()
    cb = CircuitBreaker(
        "payments",
        failure_rate_threshold=50.0,
        sliding_window_size=10,
        minimum_calls=4,
        wait_in_open=30.0,
        permitted_calls_in_half_open=2,
        clock=clock,
    )
    assert cb.state is State.CLOSED
    fail(cb, 2)
    succeed(cb, 1)
    assert cb.state is State.CLOSED  # three calls: below the minimum
    fail(cb, 1)
    assert cb.state is State.OPEN  # 3 of 4 failed: 75% >= 50%
    with pytest.raises(errors.CircuitOpen) as info:
        cb.call(lambda: 1)
    assert info.value.name == "payments"
    assert info.value.retry_after == pytest.approx(30.0)
    clock.advance(29.0)
    with pytest.raises(errors.CircuitOpen) as info:
        cb.call(lambda: 1)
    assert info.value.retry_after == pytest.approx(1.0)
    clock.advance(1.0)
    succeed(cb, 1)
    assert cb.state is State.HALF_OPEN
    succeed(cb, 1)
    assert cb.state is State.CLOSED


def test_trips_exactly_at_the_threshold_once_minimum_calls_are_in() -> None:
    cb = make(ManualClock())
    succeed(cb, 2)
    fail(cb, 1)
    assert cb.state is State.CLOSED
    fail(cb, 1)  # 2 of 4 = 50%: reaching the threshold trips
    assert cb.state is State.OPEN


def test_a_success_that_completes_the_minimum_can_trip() -> None:
    cb = make(ManualClock())
    fail(cb, 3)
    assert cb.state is State.CLOSED
    succeed(cb, 1)  # 3 of 4 failed once the fourth call is in
    assert cb.state is State.OPEN


def test_count_window_forgets_old_calls() -> None:
    cb = make(ManualClock(), minimum_calls=10)
    fail(cb, 4)
    succeed(cb, 6)
    assert cb.state is State.CLOSED  # 40%
    fail(cb, 1)  # the oldest failure leaves, a new one enters: still 4 of 10
    assert cb.state is State.CLOSED
    succeed(cb, 3)
    fail(cb, 1)  # the last ten: five successes, a failure, three successes, a failure
    m = cb.metrics()
    assert m.calls == 10
    assert m.failures == 2
    assert cb.state is State.CLOSED


def test_minimum_calls_is_capped_by_a_count_window() -> None:
    cb = make(ManualClock(), sliding_window_size=3, minimum_calls=100)
    fail(cb, 3)
    assert cb.state is State.OPEN


def test_time_window_counts_only_recent_seconds() -> None:
    clock = ManualClock()
    cb = make(clock, sliding_window_type="time", sliding_window_size=10, minimum_calls=4)
    fail(cb, 3)
    clock.advance(10.0)  # those three fall out of the window
    fail(cb, 1)
    succeed(cb, 2)
    assert cb.state is State.CLOSED
    assert cb.metrics().calls == 3
    fail(cb, 1)  # 2 of 4
    assert cb.state is State.OPEN


def test_slow_calls_trip_on_the_slow_rate() -> None:
    clock = ManualClock()
    cb = make(clock, slow_call_rate_threshold=50.0, slow_call_duration=2.0)

    def slow() -> int:
        clock.advance(2.0)
        return 1

    seen: list[BreakerEvent] = []
    cb.add_listener(seen.append)
    for _ in range(2):
        assert cb.call(slow) == 1
    succeed(cb, 1)
    assert cb.state is State.CLOSED
    assert cb.call(slow) == 1
    assert cb.state is State.OPEN  # 3 of 4 slow, none failed
    assert [e.kind for e in seen].count(EventKind.SLOW) == 3
    assert cb.metrics().failures_total == 0


def test_half_open_failure_reopens_with_backoff() -> None:
    clock = ManualClock()
    wait = exponential_backoff(10.0, multiplier=2.0, maximum=25.0)
    cb = make(clock, wait_in_open=wait)
    fail(cb, 4)
    first = cb.try_acquire()
    assert not first
    assert first.retry_after == pytest.approx(10.0)
    clock.advance(10.0)
    succeed(cb, 1)
    fail(cb, 1)  # 1 of 2 probes failed: 50% reopens
    assert cb.state is State.OPEN
    second = cb.try_acquire()
    assert not second
    assert second.retry_after == pytest.approx(20.0)
    clock.advance(20.0)
    fail(cb, 2)
    third = cb.try_acquire()
    assert not third
    assert third.retry_after == pytest.approx(25.0)  # capped
    clock.advance(25.0)
    succeed(cb, 2)
    assert cb.state is State.CLOSED
    fail(cb, 4)
    again = cb.try_acquire()
    assert not again
    assert again.retry_after == pytest.approx(10.0)  # closing reset the backoff


def test_half_open_lets_only_the_permitted_probes_through() -> None:
    clock = ManualClock()
    cb = make(clock)
    fail(cb, 4)
    clock.advance(30.0)
    p1 = cb.try_acquire()
    p2 = cb.try_acquire()
    p3 = cb.try_acquire()
    assert p1
    assert p2
    assert not p3
    assert p3.retry_after == 0.0
    assert cb.state is State.HALF_OPEN
    p1.release()  # a released probe gives its place back
    p4 = cb.try_acquire()
    assert p4
    p2.success()
    p4.success()
    assert cb.state is State.CLOSED


def test_max_wait_in_half_open_reopens() -> None:
    clock = ManualClock()
    cb = make(clock, max_wait_in_half_open=5.0)
    fail(cb, 4)
    clock.advance(30.0)
    assert cb.try_acquire()
    assert cb.try_acquire()
    busy = cb.try_acquire()
    assert not busy
    assert busy.retry_after == pytest.approx(5.0)
    clock.advance(5.0)
    refused = cb.try_acquire()
    assert not refused
    assert cb.state is State.OPEN
    assert refused.retry_after == pytest.approx(30.0)


def test_automatic_transition_shows_in_state() -> None:
    clock = ManualClock()
    lazy = make(clock)
    eager = make(clock, automatic_transition=True)
    fail(lazy, 4)
    fail(eager, 4)
    clock.advance(30.0)
    assert lazy.state is State.OPEN
    assert eager.state is State.HALF_OPEN
    assert lazy.try_acquire()
    assert lazy.state is State.HALF_OPEN


def test_automatic_transition_also_ends_a_stuck_half_open() -> None:
    clock = ManualClock()
    cb = make(clock, automatic_transition=True, max_wait_in_half_open=5.0)
    fail(cb, 4)
    clock.advance(30.0)
    assert cb.state is State.HALF_OPEN
    clock.advance(5.0)
    assert cb.state is State.OPEN


def test_stale_permits_do_not_count_in_the_new_state() -> None:
    clock = ManualClock()
    cb = make(clock)
    early = cb.try_acquire()
    assert early
    fail(cb, 4)
    clock.advance(30.0)
    assert cb.try_acquire()
    early.failure()  # began in CLOSED: says nothing about the probes
    assert cb.state is State.HALF_OPEN
    assert cb.metrics().failures_total == 5


def test_a_permit_reports_once() -> None:
    cb = make(ManualClock())
    permit = cb.try_acquire()
    assert isinstance(permit, Permit)
    permit.failure()
    permit.failure()
    permit.success()
    m = cb.metrics()
    assert (m.calls, m.failures, m.successes_total) == (1, 1, 0)


def test_forced_open_disabled_and_metrics_only() -> None:
    clock = ManualClock()
    cb = make(clock)
    cb.force_open()
    assert cb.state is State.FORCED_OPEN
    refused = cb.try_acquire()
    assert isinstance(refused, Rejection)
    assert refused.retry_after == float("inf")
    assert "payments" in repr(refused)
    clock.advance(1e6)
    assert cb.state is State.FORCED_OPEN

    cb.force_open(duration=5.0)
    refused = cb.try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(5.0)
    clock.advance(5.0)
    assert cb.try_acquire()
    assert cb.state is State.CLOSED

    cb.disable()
    fail(cb, 20)
    assert cb.state is State.DISABLED
    assert cb.metrics().calls == 0

    cb.metrics_only()
    fail(cb, 20)
    assert cb.state is State.METRICS_ONLY
    assert cb.metrics().failures == 10
    assert cb.metrics().failure_rate == 100.0

    cb.reset()
    assert cb.state is State.CLOSED
    assert cb.metrics().calls == 0


def test_manual_transitions() -> None:
    clock = ManualClock()
    cb = make(clock)
    cb.transition_to_open()
    assert cb.state is State.OPEN
    cb.transition_to_half_open()
    assert cb.state is State.HALF_OPEN
    cb.transition_to_closed()
    assert cb.state is State.CLOSED
    assert cb.metrics().transitions_total == 3
    assert repr(cb) == "CircuitBreaker('payments', state=CLOSED)"


def test_which_outcomes_count() -> None:
    class NotFound(Exception):
        pass

    class Throttled(Exception):
        def __init__(self, code: int) -> None:
            super().__init__(code)
            self.code = code

    cb = make(
        ManualClock(),
        record_exceptions=(Boom, Throttled),
        ignore_exceptions=(NotFound,),
        ignore_exception=lambda e: isinstance(e, Throttled) and e.code == 429,
        record_result=lambda r: r == 503,
    )

    def raise_(exc: Exception) -> None:
        raise exc

    for exc in (NotFound(), Throttled(429)):
        with pytest.raises(type(exc)):
            cb.call(raise_, exc)
    with pytest.raises(KeyError):
        cb.call(raise_, KeyError("not recorded: counts as a success"))
    assert cb.call(lambda: 503) == 503
    with pytest.raises(Throttled):
        cb.call(raise_, Throttled(500))
    m = cb.metrics()
    assert m.ignored_total == 2
    assert m.successes_total == 1
    assert m.failures_total == 2


def test_record_exception_predicate_decides() -> None:
    cb = make(ManualClock(), record_exception=lambda e: "fatal" in str(e))
    with pytest.raises(Boom):
        cb.call(lambda: (_ for _ in ()).throw(Boom("fatal")))
    with pytest.raises(Boom):
        cb.call(lambda: (_ for _ in ()).throw(Boom("meh")))
    m = cb.metrics()
    assert (m.failures_total, m.successes_total) == (1, 1)


def test_base_exceptions_release_the_permit() -> None:
    clock = ManualClock()
    cb = make(clock, permitted_calls_in_half_open=1)
    fail(cb, 4)
    clock.advance(30.0)

    def interrupted() -> None:
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        cb.call(interrupted)
    assert cb.state is State.HALF_OPEN
    succeed(cb, 1)  # the place came back
    assert cb.state is State.CLOSED


def test_events_reach_listeners() -> None:
    clock = ManualClock()
    cb = make(clock)
    seen: list[BreakerEvent] = []
    cb.add_listener(seen.append)
    succeed(cb, 1)
    fail(cb, 3)
    with pytest.raises(errors.CircuitOpen):
        cb.call(lambda: 1)
    cb.remove_listener(seen.append)
    succeed_or_refuse = cb.try_acquire()
    assert not succeed_or_refuse
    kinds = [e.kind for e in seen]
    assert kinds == [
        EventKind.SUCCESS,
        EventKind.ERROR,
        EventKind.ERROR,
        EventKind.STATE_TRANSITION,
        EventKind.ERROR,
        EventKind.NOT_PERMITTED,
    ]
    transition = seen[3]
    assert (transition.from_state, transition.to_state) == (State.CLOSED, State.OPEN)
    assert isinstance(seen[1].error, Boom)
    assert all(e.name == "payments" for e in seen)


def test_metrics_rates_and_totals() -> None:
    cb = make(ManualClock())
    assert cb.metrics().failure_rate == -1.0
    succeed(cb, 3)
    fail(cb, 1)
    m = cb.metrics()
    assert m.failure_rate == 25.0
    assert m.slow_call_rate == 0.0
    assert m.state is State.CLOSED
    cb.transition_to_open()
    cb.try_acquire()
    assert cb.metrics().not_permitted == 1


def test_decorator_and_guard() -> None:
    clock = ManualClock()
    cb = make(clock, minimum_calls=10)

    @cb
    def double(x: int) -> int:
        return 2 * x

    assert double(4) == 8
    assert double.__name__ == "double"
    with cb.guard() as permit:
        assert isinstance(permit, Permit)
    with pytest.raises(Boom), cb.guard():
        raise Boom
    with cb.guard() as permit:
        permit.failure()  # the block may report itself
    with pytest.raises(KeyboardInterrupt), cb.guard():
        raise KeyboardInterrupt
    m = cb.metrics()
    assert (m.successes_total, m.failures_total, m.calls) == (2, 2, 4)
    cb.transition_to_open()
    with pytest.raises(errors.CircuitOpen), cb.guard():
        pytest.fail("the block must not run")  # pragma: no cover


async def test_async_use() -> None:
    clock = ManualClock()
    cb = make(clock, minimum_calls=10)

    @cb
    async def fetch(x: int) -> int:
        await asyncio.sleep(0)
        return x + 1

    async def broken() -> None:
        raise Boom

    async def cancelled() -> None:
        raise asyncio.CancelledError

    assert await fetch(1) == 2
    with pytest.raises(Boom):
        await cb.call_async(broken)
    with pytest.raises(asyncio.CancelledError):
        await cb.call_async(cancelled)
    async with cb.guard() as permit:
        assert permit
    with pytest.raises(Boom):
        async with cb.guard():
            raise Boom
    m = cb.metrics()
    assert (m.successes_total, m.failures_total, m.ignored_total) == (2, 2, 1)
    cb.transition_to_open()
    with pytest.raises(errors.CircuitOpen):
        await fetch(1)


async def test_acquire_waits_with_the_injected_sleep() -> None:
    clock = ManualClock()
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    cb = make(clock, sleep=fake_sleep)
    fail(cb, 4)
    with pytest.raises(errors.CircuitOpen):
        await cb.acquire()  # no waiting by default
    with pytest.raises(errors.CircuitOpen):
        await cb.acquire(max_wait=29.0)  # the wait does not fit
    assert slept == []
    permit = await cb.acquire(max_wait=30.0)
    assert slept == [30.0]
    permit.success()
    assert cb.state is State.HALF_OPEN


async def test_acquire_yields_while_half_open_places_are_busy() -> None:
    clock = ManualClock()
    held: list[Permit] = []

    async def fake_sleep(seconds: float) -> None:
        assert seconds == 0.01  # a short poll: nobody can say when a probe ends
        clock.advance(seconds)
        held.pop().success()  # meanwhile, a probe finishes

    cb = make(clock, sleep=fake_sleep, permitted_calls_in_half_open=1)
    fail(cb, 4)
    clock.advance(30.0)
    probe = cb.try_acquire()
    assert probe
    held.append(probe)
    permit = await cb.acquire(max_wait=1.0)
    assert permit  # the probe closed the breaker, so the waiter got through
    assert cb.state is State.CLOSED


def test_rejections_do_not_pile_up_memory() -> None:
    cb = make(ManualClock())
    cb.force_open()

    def refuse_many(n: int) -> None:
        for _ in range(n):
            with contextlib.suppress(errors.CircuitOpen):
                cb.call(lambda: 1)

    refuse_many(1000)  # warm up caches
    gc.collect()
    tracemalloc.start()
    try:
        before = tracemalloc.get_traced_memory()[0]
        refuse_many(50_000)
        gc.collect()
        after = tracemalloc.get_traced_memory()[0]
    finally:
        tracemalloc.stop()
    assert after - before < 64_000
    assert cb.metrics().not_permitted == 51_000


def test_a_rejection_error_is_fresh_each_time() -> None:
    cb = make(ManualClock())
    cb.force_open()
    refused = cb.try_acquire()
    assert not refused
    first, second = refused.error(), refused.error()
    assert first is not second
    assert first.__traceback__ is None


@pytest.mark.parametrize(
    ("option", "value"),
    [
        ("failure_rate_threshold", 0.0),
        ("failure_rate_threshold", 101.0),
        ("slow_call_rate_threshold", -1.0),
        ("slow_call_duration", -1.0),
        ("sliding_window_size", 0),
        ("sliding_window_size", True),
        ("minimum_calls", 0),
        ("wait_in_open", -1.0),
        ("wait_in_open", "soon"),
        ("permitted_calls_in_half_open", 0),
        ("max_wait_in_half_open", -0.5),
        ("sliding_window_type", "hourly"),
        ("record_exceptions", [Boom]),
        ("ignore_exceptions", (int,)),
    ],
)
def test_bad_configuration_is_refused(option: str, value: object) -> None:
    with pytest.raises(errors.ConfigurationError):
        make(ManualClock(), **{option: value})


def test_a_breaker_needs_a_name() -> None:
    with pytest.raises(errors.ConfigurationError):
        CircuitBreaker("")


def test_force_open_refuses_a_negative_duration() -> None:
    cb = make(ManualClock())
    with pytest.raises(errors.ConfigurationError):
        cb.force_open(duration=-1.0)


def test_real_clock_by_default() -> None:
    cb = CircuitBreaker("plain", minimum_calls=1, sliding_window_size=1)
    assert cb.call(lambda: "ok") == "ok"
    assert cb.state is State.CLOSED
    assert cb.clock.monotonic() > 0


def test_threads_hammering_one_breaker_leave_a_consistent_window() -> None:
    cb = CircuitBreaker("shared", sliding_window_size=50, minimum_calls=50)
    go = threading.Barrier(4)

    def worker(seed: int) -> None:
        go.wait()
        for i in range(3_000):
            permit = cb.try_acquire()
            assert permit
            if (i + seed) % 7 == 0:
                permit.failure()
            else:
                permit.success()

    threads = [threading.Thread(target=worker, args=(n,)) for n in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(30.0)
    m = cb.metrics()
    assert m.state is State.CLOSED  # about 14 % failures: below the threshold
    assert 0 <= m.failures <= m.calls <= 50
    assert m.successes_total + m.failures_total <= 12_000
    for _ in range(50):  # one full turn alone: the totals are exact again
        succeed(cb, 1)
    m = cb.metrics()
    assert (m.calls, m.failures) == (50, 0)


@pytest.mark.parametrize("bad", [float("nan"), -1.0, float("inf"), "30", True])
def test_an_interval_function_returning_nonsense_is_refused(bad: object) -> None:
    cb = make(ManualClock(), wait_in_open=lambda attempt: bad)
    fail(cb, 3)
    permit = cb.try_acquire()
    assert permit
    with pytest.raises(errors.ConfigurationError):
        permit.failure()  # the fourth failure would open the breaker
    assert cb.state is State.CLOSED  # nothing moved


def test_a_listener_may_call_back_into_the_breaker() -> None:
    """Listeners run after the breaker's lock is released, so they cannot deadlock it."""
    clock = ManualClock()
    cb = make(clock, max_wait_in_half_open=1.0, automatic_transition=True)
    seen: list[tuple[State | None, State, int]] = []

    def listener(event: BreakerEvent) -> None:
        if event.kind is EventKind.STATE_TRANSITION:
            seen.append((event.from_state, cb.state, cb.metrics().transitions_total))

    cb.add_listener(listener)
    fail(cb, 4)  # CLOSED -> OPEN, decided on the locked path
    clock.advance(30.0)
    assert cb.state is State.HALF_OPEN  # automatic, through the state property
    clock.advance(1.0)
    assert not cb.try_acquire()  # max wait in HALF_OPEN: OPEN again, in acquire
    cb.reset()  # an explicit move
    assert seen == [
        (State.CLOSED, State.OPEN, 1),
        (State.OPEN, State.HALF_OPEN, 2),
        (State.HALF_OPEN, State.OPEN, 3),
        (State.OPEN, State.CLOSED, 4),
    ]


def test_a_listener_sees_the_lock_free_trip_too() -> None:
    cb = make(ManualClock())
    fail(cb, 3)
    permit = cb.try_acquire()
    assert permit
    states: list[State] = []
    cb.add_listener(lambda e: states.append(cb.state))
    cb.remove_listener(cb._listeners[0])
    cb.add_listener(lambda e: states.append(cb.metrics().state))
    permit.success()  # 3 of 4 failed: trips
    assert states == [State.OPEN, State.OPEN]  # the success event, then the transition
