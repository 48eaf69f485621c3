"""Retries: full jitter from an injected random source, budgets, Retry-After, idempotency."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb import errors
from microstatedb.clock import ManualClock
from microstatedb.resilience import (
    CircuitBreaker,
    Deadline,
    InMemoryFleet,
    Retry,
    RetryBudget,
    default_retry_after,
    idempotent,
)


class Flaky:
    """Fails ``failures`` times with ``error``, then returns "ok"."""

    def __init__(self, failures: int, error: Exception | None = None) -> None:
        self.left = failures
        self.error = error if error is not None else ConnectionError("reset by peer")
        self.calls = 0

    def __call__(self) -> str:
        self.calls += 1
        if self.left:
            self.left -= 1
            raise self.error
        return "ok"


def make(clock: ManualClock | None = None, **options: object) -> tuple[Retry, list[float]]:
    slept: list[float] = []
    clock = clock if clock is not None else ManualClock()

    def sleep(seconds: float) -> None:
        slept.append(seconds)
        clock.advance(seconds)

    settings: dict[str, object] = {"max_attempts": 4, "rng": random.Random(7), "sleep": sleep}
    settings.update(options)
    return Retry(**settings), slept  # type: ignore[arg-type]


def test_idempotent_calls_are_retried_with_full_jitter() -> None:
    retry, slept = make(base_delay=0.1, multiplier=2.0, max_delay=10.0)
    flaky = Flaky(3)
    assert retry.call(flaky, idempotent=True) == "ok"
    assert flaky.calls == 4
    reference = random.Random(7)
    assert slept == [
        reference.uniform(0, 0.1),
        reference.uniform(0, 0.2),
        reference.uniform(0, 0.4),
    ]


def test_calls_not_declared_idempotent_run_once() -> None:
    retry, slept = make()
    flaky = Flaky(1)
    with pytest.raises(ConnectionError):
        retry.call(flaky)
    assert flaky.calls == 1
    assert slept == []


def test_the_idempotent_decorator_declares_it() -> None:
    retry, _ = make()
    flaky = Flaky(2)

    @idempotent
    def read() -> str:
        return flaky()

    assert retry.call(read) == "ok"
    assert retry.call(read, idempotent=False) == "ok"  # an explicit word wins


def test_errors_that_are_not_transient_pass_through() -> None:
    retry, slept = make()
    flaky = Flaky(1, KeyError("no such order"))
    with pytest.raises(KeyError):
        retry.call(flaky, idempotent=True)
    assert (flaky.calls, slept) == (1, [])


def test_retry_if_predicate_decides() -> None:
    retry, _ = make(retry_if=lambda e: isinstance(e, KeyError))
    assert retry.call(Flaky(2, KeyError("eventually there")), idempotent=True) == "ok"


def test_giving_up_chains_the_last_error() -> None:
    retry, slept = make(max_attempts=3)
    flaky = Flaky(10)
    with pytest.raises(errors.RetriesExhausted) as info:
        retry.call(flaky, idempotent=True)
    assert isinstance(info.value.__cause__, ConnectionError)
    assert flaky.calls == 3
    assert len(slept) == 2


def test_retry_after_is_respected() -> None:
    retry, slept = make(max_delay=0.5)
    flaky = Flaky(1, errors.CircuitOpen("payments", 7.5))
    assert retry.call(flaky, idempotent=True) == "ok"
    assert slept == [7.5]


def test_a_retry_after_beyond_the_limit_ends_retries() -> None:
    retry, slept = make(max_retry_after=5.0)
    with pytest.raises(errors.RetriesExhausted) as info:
        retry.call(Flaky(1, errors.CircuitOpen("payments", 30.0)), idempotent=True)
    assert isinstance(info.value.__cause__, errors.CircuitOpen)
    assert slept == []


def test_default_retry_after_reads_only_sane_numbers() -> None:
    assert default_retry_after(errors.CircuitOpen("x", 2.0)) == 2.0
    assert default_retry_after(ValueError()) is None

    class Odd(Exception):
        retry_after = True

    assert default_retry_after(Odd()) is None


def test_a_deadline_stops_retries_that_cannot_finish() -> None:
    clock = ManualClock()
    retry, slept = make(clock, base_delay=1.0, max_delay=1.0, rng=random.Random(1))
    deadline = Deadline.after(0.5, clock)
    flaky = Flaky(1, errors.CircuitOpen("payments", 2.0))
    with pytest.raises(errors.RetriesExhausted):
        retry.call(flaky, idempotent=True, deadline=deadline)
    assert slept == []


def test_the_current_deadline_is_used_and_checked_before_each_attempt() -> None:
    clock = ManualClock()
    retry, _ = make(clock)
    calls: list[int] = []

    def slow() -> str:
        calls.append(1)
        clock.advance(10.0)
        raise ConnectionError

    with Deadline.after(5.0, clock).scope(), pytest.raises(errors.RetriesExhausted):
        retry.call(slow, idempotent=True)
    assert calls == [1]
    with pytest.raises(errors.DeadlineExceeded):
        retry.call(lambda: "late", deadline=Deadline.after(0.0, clock))


def test_retry_through_a_breaker_waits_for_the_probe() -> None:
    clock = ManualClock()
    cb = CircuitBreaker(
        "payments", sliding_window_size=2, minimum_calls=2, wait_in_open=3.0, clock=clock
    )
    retry, slept = make(clock, base_delay=0.01, max_delay=0.01)
    flaky = Flaky(2)
    assert retry.call(cb.call, flaky, idempotent=True) == "ok"
    # two failures open the breaker; the refusal's retry-after is the rest of the wait
    assert len(slept) == 3
    assert slept[2] == pytest.approx(3.0 - slept[1])
    assert flaky.calls == 3


async def test_async_retry() -> None:
    slept: list[float] = []

    async def fake_sleep(seconds: float) -> None:
        slept.append(seconds)

    retry = Retry(max_attempts=3, rng=random.Random(3), async_sleep=fake_sleep)
    flaky = Flaky(2)

    async def op() -> str:
        return flaky()

    assert await retry.call_async(op, idempotent=True) == "ok"
    assert len(slept) == 2
    once = Flaky(1)

    async def not_idempotent() -> str:
        return once()

    with pytest.raises(ConnectionError):
        await retry.call_async(not_idempotent)
    with pytest.raises(KeyError):
        await retry.call_async(_raise_key_error, idempotent=True)
    with pytest.raises(errors.DeadlineExceeded):
        await retry.call_async(op, deadline=Deadline.after(0.0, ManualClock()))


async def _raise_key_error() -> str:
    raise KeyError("x")


@given(
    base=st.floats(0.001, 2.0),
    multiplier=st.floats(1.0, 4.0),
    cap=st.floats(2.0, 30.0),
    seed=st.integers(0, 2**32),
    retry_number=st.integers(1, 60),
)
def test_full_jitter_stays_within_its_bounds(
    base: float, multiplier: float, cap: float, seed: int, retry_number: int
) -> None:
    retry = Retry(base_delay=base, multiplier=multiplier, max_delay=cap, rng=random.Random(seed))
    delay = retry.backoff(retry_number)
    assert 0.0 <= delay <= min(cap, base * multiplier ** (retry_number - 1))
    again = Retry(base_delay=base, multiplier=multiplier, max_delay=cap, rng=random.Random(seed))
    assert again.backoff(retry_number) == delay  # the same seed replays the same delays


def test_budget_caps_retries_to_a_fraction_of_calls() -> None:
    clock = ManualClock()
    budget = RetryBudget(ratio=0.2, min_retries=1, window=10, clock=clock)
    for _ in range(10):
        budget.record_call()
    spent = 0
    while budget.try_spend():
        spent += 1
    assert spent == 3  # 0.2 * 10 + 1
    clock.advance(10.0)  # the window moves on: the old calls and retries are forgotten
    assert budget.try_spend()
    assert not budget.try_spend()


def test_a_retry_refused_by_the_budget_ends_the_call() -> None:
    budget = RetryBudget(ratio=0.0, min_retries=0, clock=ManualClock())
    retry, slept = make(budget=budget)
    flaky = Flaky(1)
    with pytest.raises(errors.RetriesExhausted) as info:
        retry.call(flaky, idempotent=True)
    assert "budget" in str(info.value)
    assert slept == []


def test_the_budget_is_shared_by_the_fleet() -> None:
    clock = ManualClock()
    view = InMemoryFleet()
    a = RetryBudget(ratio=0.5, min_retries=0, clock=clock, view=view, downstream="p", instance="a")
    b = RetryBudget(ratio=0.5, min_retries=0, clock=clock, view=view, downstream="p", instance="b")
    for _ in range(4):
        a.record_call()
    assert not b.try_spend()  # b has not seen a's calls yet (they are flushed on sync)
    a.sync()
    b.sync()
    assert b.try_spend()
    assert b.try_spend()
    b.sync()
    a.sync()
    assert not a.try_spend()  # b's two retries used the fleet's budget of 0.5 * 4
    clock.advance(1.0)
    for _ in range(2):
        a.record_call()  # the sync interval passed: recording syncs by itself
    assert a.try_spend()


def test_a_local_budget_sync_is_a_no_op() -> None:
    budget = RetryBudget(clock=ManualClock())
    budget.sync()
    assert budget.can_retry()  # the floor of min_retries


@pytest.mark.parametrize(
    "bad",
    [
        {"ratio": 1.5},
        {"min_retries": -1},
        {"window": 0},
        {"window": True},
        {"view": InMemoryFleet()},
    ],
)
def test_bad_budgets_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(errors.ConfigurationError):
        RetryBudget(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"max_attempts": 0},
        {"max_attempts": 2.5},
        {"base_delay": -1.0},
        {"base_delay": 5.0, "max_delay": 1.0},
        {"multiplier": 0.5},
        {"max_retry_after": -1.0},
    ],
)
def test_bad_retry_policies_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(errors.ConfigurationError):
        Retry(**bad)  # type: ignore[arg-type]


def test_backoff_does_not_overflow_after_many_retries() -> None:
    retry = Retry(base_delay=1.0, multiplier=4.0, max_delay=8.0, rng=random.Random(0))
    assert 0.0 <= retry.backoff(10_000) <= 8.0
