"""The states a circuit breaker can be in."""

from __future__ import annotations

import enum


class State(enum.Enum):
    """Where a breaker stands; the first three move by themselves, the others only when told."""

    CLOSED = "closed"
    """Calls pass; outcomes fill the sliding window, which may trip the breaker."""
    OPEN = "open"
    """Calls are refused until the wait in OPEN has passed."""
    HALF_OPEN = "half_open"
    """A few probe calls pass; their outcomes close the breaker or open it again."""
    DISABLED = "disabled"
    """Calls pass and nothing is recorded (the breaker is switched off)."""
    FORCED_OPEN = "forced_open"
    """Calls are refused until someone changes the state (or the forcing expires)."""
    METRICS_ONLY = "metrics_only"
    """Calls pass and outcomes are recorded, but the state never changes: forced closed."""


__all__ = ["State"]
