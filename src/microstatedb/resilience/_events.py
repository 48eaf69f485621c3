"""What a breaker tells its listeners, and the numbers it reports."""

from __future__ import annotations

import enum
from dataclasses import dataclass

from microstatedb.resilience._state import State


class EventKind(enum.Enum):
    """The kinds of breaker events."""

    STATE_TRANSITION = "state_transition"
    NOT_PERMITTED = "not_permitted"
    SUCCESS = "success"
    ERROR = "error"
    IGNORED_ERROR = "ignored_error"
    SLOW = "slow"


@dataclass(frozen=True, slots=True)
class BreakerEvent:
    """One thing that happened in a breaker."""

    kind: EventKind
    """What happened."""
    name: str
    """The breaker's name."""
    at: float
    """Monotonic time of the event, from the breaker's clock."""
    from_state: State | None = None
    """For a transition: the state left."""
    to_state: State | None = None
    """For a transition: the state entered."""
    duration: float | None = None
    """For an outcome: how long the call took, in seconds."""
    error: BaseException | None = None
    """For an error: the exception (or None when a result was judged a failure)."""


@dataclass(frozen=True, slots=True)
class BreakerMetrics:
    """A snapshot of a breaker's numbers."""

    state: State
    """The state when the snapshot was taken."""
    calls: int
    """Calls in the sliding window."""
    failures: int
    """Failed calls in the sliding window."""
    slow_calls: int
    """Slow calls in the sliding window (failed or not)."""
    failure_rate: float
    """Failures per hundred calls in the window, or -1.0 below the minimum number of calls."""
    slow_call_rate: float
    """Slow calls per hundred in the window, or -1.0 below the minimum number of calls."""
    not_permitted: int
    """Calls refused since the breaker was made."""
    successes_total: int
    """Successful calls recorded since the breaker was made."""
    failures_total: int
    """Failed calls recorded since the breaker was made."""
    ignored_total: int
    """Errors that were ignored (neither success nor failure) since the breaker was made."""
    transitions_total: int
    """State changes since the breaker was made."""
