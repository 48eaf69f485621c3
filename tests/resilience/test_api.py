"""The public names of microstatedb.resilience are pinned; the layering is checked."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import microstatedb.resilience as resilience
from microstatedb.clock import ManualClock
from microstatedb.resilience import replay

PACKAGE = Path(resilience.__file__).parent


def test_all_is_pinned() -> None:
    assert sorted(resilience.__all__) == sorted(
        [
            "HEADER_NAME",
            "BreakerEvent",
            "BreakerMetrics",
            "BucketCounts",
            "Bulkhead",
            "BulkheadMetrics",
            "CircuitBreaker",
            "Deadline",
            "EventKind",
            "FleetMember",
            "FleetState",
            "FleetView",
            "InMemoryFleet",
            "IntervalFunction",
            "Lease",
            "Override",
            "Permit",
            "Rejection",
            "ReplayReport",
            "Retry",
            "RetryBudget",
            "Scope",
            "State",
            "Transition",
            "Trip",
            "current_deadline",
            "default_retry_after",
            "exponential_backoff",
            "fixed_interval",
            "idempotent",
            "replay",
            "with_deadline",
        ]
    )
    for name in resilience.__all__:
        assert hasattr(resilience, name)


def test_state_names() -> None:
    assert [s.name for s in resilience.State] == [
        "CLOSED",
        "OPEN",
        "HALF_OPEN",
        "DISABLED",
        "FORCED_OPEN",
        "METRICS_ONLY",
    ]


def test_resilience_imports_no_higher_layer() -> None:
    allowed = {"microstatedb.clock", "microstatedb.errors", "microstatedb.resilience"}
    for module in PACKAGE.glob("*.py"):
        tree = ast.parse(module.read_text(encoding="utf-8"))
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.module:
                names = [node.module]
            for name in names:
                if name.startswith("microstatedb"):
                    assert any(name == a or name.startswith(a + ".") for a in allowed), (
                        module.name,
                        name,
                    )


@pytest.mark.parametrize(
    "bad",
    [
        [("soon", "success")],
        [(1.0, "maybe")],
        [(2.0, "success"), (1.0, "success")],
        [(1.0, "success", -1.0)],
        [(1.0,)],
        ["not a record"],
        [(True, "success")],
    ],
)
def test_replay_refuses_bad_records(bad: list[object]) -> None:
    from microstatedb import errors

    with pytest.raises(errors.DataError):
        replay(bad)  # type: ignore[arg-type]


def test_replay_refuses_its_own_clock_or_a_fleet() -> None:
    from microstatedb import errors

    with pytest.raises(errors.ConfigurationError):
        replay([], clock=ManualClock())


def test_replay_counts_slow_durations_and_automatic_moves() -> None:
    report = replay(
        [(0, "success", 5.0), (1, "success", 5.0), (2, "ignored"), (50, "success")],
        sliding_window_size=2,
        minimum_calls=2,
        slow_call_duration=4.0,
        wait_in_open=10.0,
        permitted_calls_in_half_open=1,
        automatic_transition=True,
    )
    moves = [(t.at, t.from_state.name, t.to_state.name) for t in report.transitions]
    assert moves == [
        (1.0, "CLOSED", "OPEN"),
        (50.0, "OPEN", "HALF_OPEN"),
        (50.0, "HALF_OPEN", "CLOSED"),
    ]
    assert (report.permitted, report.rejected) == (3, 1)
