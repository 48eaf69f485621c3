"""Resilience: circuit breakers, retries, bulkheads, deadlines, and fleet-wide failure knowledge.

Layering: this package sits above ``clock`` and below ``log`` and ``replica``, and imports
neither of them. The fleet-wide statistics a breaker reads are defined here as the small
:class:`FleetView` protocol; :class:`InMemoryFleet` implements it in one process, and a store
plugs in its own implementation from above. The core (breaker, windows, retry, bulkhead,
deadline) needs nothing but an injectable clock and, for jitter, an injectable
``random.Random``.
"""

from microstatedb.resilience._breaker import CircuitBreaker, Permit, Rejection
from microstatedb.resilience._bulkhead import Bulkhead, BulkheadMetrics
from microstatedb.resilience._deadline import (
    HEADER_NAME,
    Deadline,
    current_deadline,
    with_deadline,
)
from microstatedb.resilience._events import BreakerEvent, BreakerMetrics, EventKind
from microstatedb.resilience._fleet import (
    BucketCounts,
    FleetMember,
    FleetState,
    FleetView,
    InMemoryFleet,
    Lease,
    Override,
    Scope,
    Trip,
)
from microstatedb.resilience._interval import IntervalFunction, exponential_backoff, fixed_interval
from microstatedb.resilience._replay import ReplayReport, Transition, replay
from microstatedb.resilience._retry import Retry, RetryBudget, default_retry_after, idempotent
from microstatedb.resilience._state import State

__all__ = [
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
