"""Replay recorded outcomes through a breaker configuration, to tune it before deploying.

Feed ``(time, outcome)`` or ``(time, outcome, duration)`` records, with ``time`` in seconds
(from any origin, never decreasing) and ``outcome`` one of ``"success"``, ``"failure"``,
``"ignored"``; get back the state timeline the configuration would have produced. Each record
is offered to the breaker as a call at its time: a refused call is counted as rejected and its
outcome is not seen (the real call would not have happened either).
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, DataError
from microstatedb.resilience._breaker import CircuitBreaker
from microstatedb.resilience._events import BreakerEvent, EventKind
from microstatedb.resilience._state import State

_OUTCOMES = ("success", "failure", "ignored")


@dataclass(frozen=True, slots=True)
class Transition:
    """One state change in a replay."""

    at: float
    """The time of the record during which the change happened."""
    from_state: State
    """The state left."""
    to_state: State
    """The state entered."""


@dataclass(frozen=True, slots=True)
class ReplayReport:
    """What a configuration would have done with a recorded stream."""

    transitions: tuple[Transition, ...]
    """The state changes, in order."""
    permitted: int
    """Records whose call the breaker let through."""
    rejected: int
    """Records whose call the breaker refused."""
    final_state: State
    """The state after the last record."""


def replay(records: Iterable[tuple[Any, ...]], **breaker_options: Any) -> ReplayReport:
    """Run ``records`` through ``CircuitBreaker("replay", **breaker_options)`` on a manual clock.

    Bad records raise :class:`~microstatedb.errors.DataError`; bad options raise
    :class:`~microstatedb.errors.ConfigurationError`.
    """
    if "clock" in breaker_options or "fleet" in breaker_options:
        raise ConfigurationError("replay drives its own clock and runs without a fleet")
    clock = ManualClock()
    breaker = CircuitBreaker("replay", clock=clock, **breaker_options)
    transitions: list[Transition] = []
    current_time = 0.0

    def listen(event: BreakerEvent) -> None:
        if event.kind is EventKind.STATE_TRANSITION:
            assert event.from_state is not None
            assert event.to_state is not None
            transitions.append(Transition(current_time, event.from_state, event.to_state))

    breaker.add_listener(listen)
    permitted = rejected = 0
    last: float | None = None
    for index, record in enumerate(records):
        if not isinstance(record, tuple) or len(record) not in (2, 3):
            raise DataError(f"record {index} must be (time, outcome[, duration]), got {record!r}")
        at, outcome = record[0], record[1]
        duration = record[2] if len(record) == 3 else 0.0
        if isinstance(at, bool) or not isinstance(at, int | float) or at != at:
            raise DataError(f"record {index}: time must be a number, got {at!r}")
        if last is not None and at < last:
            raise DataError(f"record {index}: time {at!r} is before the previous {last!r}")
        if outcome not in _OUTCOMES:
            raise DataError(f"record {index}: outcome must be one of {_OUTCOMES}, got {outcome!r}")
        if isinstance(duration, bool) or not isinstance(duration, int | float) or not duration >= 0:
            raise DataError(f"record {index}: duration must be >= 0 seconds, got {duration!r}")
        if last is not None:
            clock.advance(at - last)
        last = current_time = float(at)
        _ = breaker.state  # lets an automatic OPEN -> HALF_OPEN move show at this time
        permit = breaker.try_acquire()
        if not permit:
            rejected += 1
            continue
        permitted += 1
        if outcome == "success":
            permit.success(duration=float(duration))
        elif outcome == "failure":
            permit.failure(duration=float(duration))
        else:
            permit.release()
    return ReplayReport(tuple(transitions), permitted, rejected, breaker.state)
