"""Sliding windows and wait intervals: O(1) windows against a plain list, backoff bounds."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb import errors
from microstatedb.resilience import exponential_backoff, fixed_interval
from microstatedb.resilience._window import CountWindow, TimeWindow

outcomes = st.lists(st.tuples(st.booleans(), st.booleans()), max_size=200)


@given(size=st.integers(1, 12), stream=outcomes)
def test_count_window_matches_the_last_calls(size: int, stream: list[tuple[bool, bool]]) -> None:
    window = CountWindow(size)
    for failed, slow in stream:
        window.record(failed, slow, 0.0)
    last = stream[-size:]
    assert window.calls == len(last)
    assert window.failures == sum(f for f, _ in last)
    assert window.slow == sum(s for _, s in last)
    window.expire(1e9)  # a count window keeps its calls whatever the time
    assert window.calls == len(last)


def test_count_window_recount_repairs_a_skew() -> None:
    window = CountWindow(4)
    for _ in range(3):
        window.record(True, False, 0.0)
    window.calls += 5  # what a lost update under a thread race could leave behind
    window.record(False, True, 0.0)  # the ring wraps: totals come from the ring again
    assert (window.calls, window.failures, window.slow) == (4, 3, 1)


@given(
    size=st.integers(1, 10),
    stream=st.lists(
        st.tuples(st.floats(0, 4, allow_nan=False), st.booleans(), st.booleans()), max_size=120
    ),
)
def test_time_window_matches_the_recent_seconds(
    size: int, stream: list[tuple[float, bool, bool]]
) -> None:
    window = TimeWindow(size)
    now = 0.0
    seen: list[tuple[float, bool, bool]] = []
    for gap, failed, slow in stream:
        now += gap
        window.record(failed, slow, now)
        seen.append((now, failed, slow))
    window.expire(now)
    recent = [c for c in seen if int(c[0]) > int(now) - size]
    assert window.calls == len(recent)
    assert window.failures == sum(c[1] for c in recent)
    assert window.slow == sum(c[2] for c in recent)


def test_time_window_drops_a_late_outcome_older_than_the_window() -> None:
    window = TimeWindow(3)
    window.record(True, False, 10.0)
    window.record(True, False, 2.0)  # a call that started long ago reports now
    window.record(False, False, 9.0)  # within the window: counted in its second
    assert (window.calls, window.failures) == (2, 1)
    window.reset()
    assert (window.calls, window.failures, window.slow) == (0, 0, 0)


def test_fixed_interval() -> None:
    wait = fixed_interval(4.0)
    assert [wait(n) for n in (1, 2, 10)] == [4.0, 4.0, 4.0]
    with pytest.raises(errors.ConfigurationError):
        fixed_interval(-1.0)


def test_exponential_backoff_doubles_up_to_the_cap() -> None:
    wait = exponential_backoff(1.0, multiplier=2.0, maximum=10.0)
    assert [wait(n) for n in range(1, 7)] == [1.0, 2.0, 4.0, 8.0, 10.0, 10.0]
    assert wait(10_000) == 10.0  # no overflow after a long outage


@given(
    attempt=st.integers(1, 100),
    jitter=st.floats(0.0, 0.99),
    seed=st.integers(0, 2**32),
)
def test_backoff_jitter_stays_in_its_band(attempt: int, jitter: float, seed: int) -> None:
    wait = exponential_backoff(
        0.5, multiplier=1.5, maximum=60.0, jitter=jitter, rng=random.Random(seed)
    )
    base = min(0.5 * 1.5 ** (attempt - 1), 60.0)
    got = wait(attempt)
    assert base * (1 - jitter) - 1e-9 <= got <= min(base * (1 + jitter), 60.0) + 1e-9
    replayed = exponential_backoff(
        0.5, multiplier=1.5, maximum=60.0, jitter=jitter, rng=random.Random(seed)
    )
    assert replayed(attempt) == got


def test_backoff_jitter_without_a_seed_still_works() -> None:
    wait = exponential_backoff(1.0, jitter=0.5)
    assert 0.5 <= wait(1) <= 1.5


@pytest.mark.parametrize(
    "bad",
    [
        {"initial": 0.0},
        {"initial": 1.0, "multiplier": 0.5},
        {"initial": 2.0, "maximum": 1.0},
        {"initial": 1.0, "jitter": 1.0},
    ],
)
def test_bad_backoffs_are_refused(bad: dict[str, float]) -> None:
    with pytest.raises(errors.ConfigurationError):
        exponential_backoff(**bad)  # type: ignore[arg-type]
