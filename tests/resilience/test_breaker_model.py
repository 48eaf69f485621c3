"""Hypothesis drives random outcome streams through the breaker and through a simple
reference model written straight from the rules; they must agree on every decision."""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import (
    Bundle,
    RuleBasedStateMachine,
    consumes,
    initialize,
    invariant,
    rule,
)

from microstatedb.clock import ManualClock
from microstatedb.resilience import CircuitBreaker, Permit, State, replay


@dataclass
class Model:
    """The breaker's rules, written for clarity: lists instead of rings, no locks."""

    threshold: float
    slow_threshold: float
    slow_duration: float
    window_type: str
    size: int
    minimum: int
    wait: float
    permitted: int
    max_wait_half_open: float
    state: str = "closed"
    calls: list[tuple[float, bool, bool]] = field(default_factory=list)
    open_until: float = 0.0
    half_open_since: float = 0.0
    free: int = 0
    probes: list[tuple[bool, bool]] = field(default_factory=list)
    generation: int = 0

    def window(self, now: float) -> list[tuple[float, bool, bool]]:
        if self.window_type == "count":
            return self.calls[-self.size :]
        return [c for c in self.calls if int(c[0]) > int(now) - self.size]

    def bad(self, outcomes: list[tuple[bool, bool]]) -> bool:
        n = len(outcomes)
        failures = sum(f for f, _ in outcomes)
        slow = sum(s for _, s in outcomes)
        return failures / n * 100 >= self.threshold or slow / n * 100 >= self.slow_threshold

    def enter(self, state: str, now: float) -> None:
        self.state = state
        self.generation += 1
        self.calls = []
        if state == "open":
            self.open_until = now + self.wait
        elif state == "half_open":
            self.half_open_since = now
            self.free = self.permitted
            self.probes = []

    def acquire(self, now: float) -> tuple[bool, float]:
        if self.state == "open" and now >= self.open_until:
            self.enter("half_open", now)
        if (
            self.state == "half_open"
            and self.max_wait_half_open
            and now >= self.half_open_since + self.max_wait_half_open
        ):
            self.enter("open", now)
        if self.state == "closed":
            return True, 0.0
        if self.state == "open":
            return False, self.open_until - now
        if self.free:
            self.free -= 1
            return True, 0.0
        if self.max_wait_half_open:
            return False, self.half_open_since + self.max_wait_half_open - now
        return False, 0.0

    def record(self, generation: int, now: float, failed: bool, duration: float) -> None:
        if generation != self.generation:
            return
        slow = duration >= self.slow_duration
        if self.state == "closed":
            self.calls.append((now, failed, slow))
            window = self.window(now)
            minimum = min(self.minimum, self.size) if self.window_type == "count" else self.minimum
            if len(window) >= minimum and self.bad([(f, s) for _, f, s in window]):
                self.enter("open", now)
        elif self.state == "half_open":
            self.probes.append((failed, slow))
            if len(self.probes) >= self.permitted:
                self.enter("open" if self.bad(self.probes) else "closed", now)

    def release(self, generation: int) -> None:
        if generation == self.generation and self.state == "half_open":
            self.free += 1


configs = st.fixed_dictionaries(
    {
        "threshold": st.sampled_from([1.0, 25.0, 50.0, 75.0, 100.0]),
        "slow_threshold": st.sampled_from([30.0, 60.0, 100.0]),
        "slow_duration": st.sampled_from([0.5, 1.0, 3.0]),
        "window_type": st.sampled_from(["count", "time"]),
        "size": st.integers(1, 8),
        "minimum": st.integers(1, 8),
        "wait": st.sampled_from([0.0, 1.0, 2.5, 10.0]),
        "permitted": st.integers(1, 4),
        "max_wait_half_open": st.sampled_from([0.0, 1.5, 4.0]),
    }
)


class BreakerAgainstModel(RuleBasedStateMachine):
    """Permits may be held and completed in any order, as with concurrent callers."""

    permits = Bundle("permits")

    @initialize(config=configs)
    def setup(self, config: dict[str, object]) -> None:
        self.clock = ManualClock()
        self.model = Model(**config)  # type: ignore[arg-type]
        self.cb = CircuitBreaker(
            "model",
            failure_rate_threshold=self.model.threshold,
            slow_call_rate_threshold=self.model.slow_threshold,
            slow_call_duration=self.model.slow_duration,
            sliding_window_type=self.model.window_type,  # type: ignore[arg-type]
            sliding_window_size=self.model.size,
            minimum_calls=self.model.minimum,
            wait_in_open=self.model.wait,
            permitted_calls_in_half_open=self.model.permitted,
            max_wait_in_half_open=self.model.max_wait_half_open,
            clock=self.clock,
        )

    @rule(seconds=st.sampled_from([0.0, 0.25, 0.5, 1.0, 2.0, 5.0]))
    def advance(self, seconds: float) -> None:
        self.clock.advance(seconds)

    @rule(target=permits)
    def acquire(self) -> tuple[Permit, int, float] | None:
        now = self.clock.monotonic()
        expected, retry_after = self.model.acquire(now)
        got = self.cb.try_acquire()
        assert bool(got) == expected, (self.model.state, self.cb._state)
        if not got:
            assert abs(got.retry_after - max(retry_after, 0.0)) < 1e-9
            return None
        return (got, self.model.generation, now)

    @rule(
        held=consumes(permits),
        outcome=st.sampled_from(["success", "failure", "release"]),
        duration=st.sampled_from([None, 0.0, 0.6, 1.2, 4.0]),
    )
    def complete(
        self, held: tuple[Permit, int, float] | None, outcome: str, duration: float | None
    ) -> None:
        """``duration=None`` lets the breaker time the call itself (its fast path)."""
        if held is None:
            return
        permit, generation, started = held
        now = self.clock.monotonic()
        took = now - started if duration is None else duration
        if outcome == "release":
            permit.release()
            self.model.release(generation)
        elif outcome == "success":
            permit.success(duration=duration)
            self.model.record(generation, now, False, took)
        else:
            permit.failure(duration=duration)
            self.model.record(generation, now, True, took)

    @invariant()
    def same_state(self) -> None:
        if hasattr(self, "model"):
            assert self.cb._state.value == self.model.state
            if self.model.state == "closed":
                window = self.model.window(self.clock.monotonic())
                m = self.cb.metrics()
                assert m.calls == len(window)
                assert m.failures == sum(f for _, f, _ in window)
                assert m.slow_calls == sum(s for _, _, s in window)


TestBreakerAgainstModel = BreakerAgainstModel.TestCase
TestBreakerAgainstModel.settings = settings(max_examples=150, stateful_step_count=40)


@given(
    outcomes=st.lists(
        st.tuples(
            st.sampled_from([0.0, 0.5, 1.0, 3.0, 7.0]),
            st.sampled_from(["success", "failure", "ignored"]),
        ),
        max_size=60,
    ),
    size=st.integers(1, 6),
    minimum=st.integers(1, 6),
)
def test_replay_agrees_with_the_model(
    outcomes: list[tuple[float, str]], size: int, minimum: int
) -> None:
    model = Model(50.0, 100.0, 60.0, "count", size, minimum, 5.0, 2, 0.0)
    records = []
    now = 0.0
    states = []
    for gap, outcome in outcomes:
        now += gap
        records.append((now, outcome))
        allowed, _ = model.acquire(now)
        if allowed and outcome != "ignored":
            model.record(model.generation, now, outcome == "failure", 0.0)
        elif allowed:
            model.release(model.generation)
        states.append(model.state)
    report = replay(
        records,
        sliding_window_size=size,
        minimum_calls=minimum,
        wait_in_open=5.0,
        permitted_calls_in_half_open=2,
    )
    assert report.final_state.value == (states[-1] if states else "closed")
    assert report.permitted + report.rejected == len(records)
    moves = [t.to_state for t in report.transitions]
    for before, after in itertools.pairwise(moves):
        assert before is not after
    assert set(moves) <= {State.OPEN, State.HALF_OPEN, State.CLOSED}
