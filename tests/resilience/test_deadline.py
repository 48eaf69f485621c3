"""Deadlines: a budget that shrinks, crosses services as a header, and cancels awaited work."""

from __future__ import annotations

import asyncio

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb import errors
from microstatedb.clock import ManualClock
from microstatedb.resilience import HEADER_NAME, Deadline, current_deadline, with_deadline


def test_remaining_and_expiry_follow_the_clock() -> None:
    clock = ManualClock()
    d = Deadline.after(2.0, clock)
    assert d.remaining() == 2.0
    assert not d.expired
    d.check()
    clock.advance(1.5)
    assert d.remaining() == 0.5
    clock.advance(1.0)
    assert d.remaining() == 0.0
    assert d.expired
    with pytest.raises(errors.DeadlineExceeded) as info:
        d.check("the payment")
    assert "the payment" in str(info.value)
    assert isinstance(info.value, TimeoutError)
    assert d.clock is clock
    assert "remaining=0.000" in repr(d)


def test_shrink_never_grows_the_budget() -> None:
    clock = ManualClock()
    d = Deadline.after(2.0, clock)
    assert d.shrink(0.5).remaining() == 0.5
    assert d.shrink(10.0).remaining() == 2.0


def test_header_round_trip_on_another_clock() -> None:
    here, there = ManualClock(), ManualClock(start=5.0)
    there.advance(1000.0)
    d = Deadline.after(1.2345, here)
    value = d.to_header()
    assert value == "1234m"
    remote = Deadline.from_header(value, there)
    assert remote.remaining() == pytest.approx(1.234)
    assert HEADER_NAME == "grpc-timeout"
    assert Deadline.from_header("2S", there).remaining() == 2.0
    assert Deadline.from_header(" 3M ", there).remaining() == 180.0


@pytest.mark.parametrize("bad", ["", "12", "1.5S", "123456789m", "-1S", "5x", None])
def test_bad_headers_are_refused(bad: object) -> None:
    with pytest.raises(errors.DecodeError):
        Deadline.from_header(bad)  # type: ignore[arg-type]


@given(st.floats(0.0, 1e5))
def test_a_header_never_promises_more_than_was_left(seconds: float) -> None:
    clock = ManualClock()
    remote = Deadline.from_header(Deadline.after(seconds, clock).to_header(), ManualClock())
    assert remote.remaining() <= seconds + 1e-9
    assert seconds - remote.remaining() <= 0.001 + 1e-9


def test_scope_sets_the_current_deadline_and_keeps_the_earlier() -> None:
    clock = ManualClock()
    outer = Deadline.after(1.0, clock)
    assert current_deadline() is None
    with outer.scope() as effective:
        assert effective is outer
        with Deadline.after(5.0, clock).scope() as inner:
            assert inner is outer  # the caller's tighter budget wins
        with Deadline.after(0.5, clock).scope() as tighter:
            assert current_deadline() is tighter
        assert current_deadline() is outer
    assert current_deadline() is None


@pytest.mark.parametrize("seconds", [-1.0, float("nan")])
def test_bad_budgets_are_refused(seconds: float) -> None:
    with pytest.raises(errors.ConfigurationError):
        Deadline.after(seconds, ManualClock())
    with pytest.raises(errors.ConfigurationError):
        Deadline.after(1.0, ManualClock()).shrink(seconds)


def test_a_nan_instant_is_refused() -> None:
    with pytest.raises(errors.ConfigurationError):
        Deadline(float("nan"))


def test_real_clock_by_default() -> None:
    d = Deadline.after(60.0)
    assert 59.0 < d.remaining() <= 60.0
    assert Deadline(d.at).remaining() > 59.0


async def test_with_deadline_cancels_work_that_outlives_it() -> None:
    cancelled = asyncio.Event()

    async def slow() -> None:
        try:
            await asyncio.sleep(10)
        finally:
            cancelled.set()

    with pytest.raises(errors.DeadlineExceeded):
        await with_deadline(slow(), Deadline.after(0.01))
    assert cancelled.is_set()


async def test_with_deadline_returns_in_time_and_keeps_foreign_timeouts() -> None:
    async def quick() -> int:
        return 3

    async def own_timeout() -> None:
        raise TimeoutError("the work's own")

    assert await with_deadline(quick(), Deadline.after(5.0)) == 3
    with pytest.raises(TimeoutError) as info:
        await with_deadline(own_timeout(), Deadline.after(5.0))
    assert not isinstance(info.value, errors.DeadlineExceeded)


async def test_with_an_expired_deadline_the_work_never_starts() -> None:
    started = False

    async def work() -> None:
        nonlocal started
        started = True

    clock = ManualClock()
    with pytest.raises(errors.DeadlineExceeded):
        await with_deadline(work(), Deadline.after(0.0, clock))
    assert not started
