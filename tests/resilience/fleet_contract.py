"""The contract every FleetView backend must meet, as test cases with one hook.

A backend's test module subclasses :class:`FleetViewContract` and implements
``make_view()``; every case below then runs against that backend. (The store-backed view
will reuse these cases unchanged.)
"""

from __future__ import annotations

import math

import pytest

from microstatedb.clock import ManualClock
from microstatedb.resilience import (
    BucketCounts,
    CircuitBreaker,
    FleetMember,
    FleetView,
    Override,
    Scope,
    State,
    Trip,
)


class FleetViewContract:
    """Subclass and implement ``make_view``."""

    def make_view(self) -> FleetView:
        raise NotImplementedError

    def test_counts_add_up_per_instance_from_the_first_bucket(self) -> None:
        view = self.make_view()
        view.add("p", "a", 10, BucketCounts(calls=2, failures=1))
        view.add("p", "a", 10, BucketCounts(calls=1, slow=1))
        view.add("p", "a", 11, BucketCounts(calls=4, retries=2))
        view.add("p", "b", 9, BucketCounts(calls=7))
        view.add("q", "a", 10, BucketCounts(calls=100))
        assert dict(view.counts("p", 10)) == {
            "a": BucketCounts(calls=7, failures=1, slow=1, retries=2)
        }
        assert dict(view.counts("p", 0))["b"] == BucketCounts(calls=7)
        assert dict(view.counts("p", 12)) == {}

    def test_unknown_downstreams_are_empty(self) -> None:
        view = self.make_view()
        assert dict(view.counts("none", 0)) == {}
        state = view.state("none")
        assert state.trip is None
        assert not state.is_open
        assert list(view.overrides("none")) == []

    def test_the_later_trip_wins_and_a_later_close_ends_it(self) -> None:
        view = self.make_view()
        view.record_trip("p", Trip(20.0, 50.0, "b"))
        view.record_trip("p", Trip(10.0, 40.0, "a"))  # older: ignored
        assert view.state("p").trip == Trip(20.0, 50.0, "b")
        assert view.state("p").is_open
        view.record_close("p", 30.0)
        view.record_close("p", 25.0)  # older: ignored
        assert view.state("p").closed_at == 30.0
        assert not view.state("p").is_open

    def test_the_lease_is_exclusive_renewable_and_expires(self) -> None:
        view = self.make_view()
        assert view.hold_lease("p", "a", 0.0, 5.0).holder == "a"
        assert view.hold_lease("p", "b", 1.0, 5.0).holder == "a"  # held: b is told who
        renewed = view.hold_lease("p", "a", 4.0, 5.0)
        assert (renewed.holder, renewed.expires_at) == ("a", 9.0)
        assert view.hold_lease("p", "b", 8.9, 5.0).holder == "a"
        assert view.hold_lease("p", "b", 9.0, 5.0).holder == "b"  # expired: b takes it
        view.release_lease("p", "a", 9.5)  # not a's to release
        assert view.hold_lease("p", "c", 9.5, 5.0).holder == "b"
        view.release_lease("p", "b", 10.0)
        assert view.hold_lease("p", "c", 10.0, 5.0).holder == "c"

    def test_overrides_keep_the_latest_per_scope_and_target(self) -> None:
        view = self.make_view()
        view.set_override("p", Override(State.FORCED_OPEN, set_at=1.0))
        view.set_override("p", Override(State.METRICS_ONLY, Scope.ZONE, "eu", set_at=1.0))
        view.set_override("p", Override(State.DISABLED, set_at=2.0))
        view.set_override("p", Override(State.FORCED_OPEN, set_at=0.5))  # older: ignored
        got = {(o.scope, o.target): o.state for o in view.overrides("p")}
        assert got == {
            (Scope.FLEET, ""): State.DISABLED,
            (Scope.ZONE, "eu"): State.METRICS_ONLY,
        }
        assert all(math.isinf(o.expires_at) for o in view.overrides("p"))

    def test_breakers_sharing_the_view_trip_together(self) -> None:
        view = self.make_view()
        clock = ManualClock()
        breakers = [
            CircuitBreaker(
                "p",
                sliding_window_size=10,
                minimum_calls=4,
                wait_in_open=30.0,
                clock=clock,
                fleet=FleetMember(view, name, quorum=2, sync_interval=0.0),
            )
            for name in ("a", "b", "c")
        ]
        for cb in breakers[:2]:
            for _ in range(2):
                permit = cb.try_acquire()
                assert permit
                permit.failure()
        assert [cb.state for cb in breakers] == [State.OPEN] * 3

    def test_bad_input_to_the_records_is_refused(self) -> None:
        from microstatedb import errors

        with pytest.raises(errors.ConfigurationError):
            Override(State.HALF_OPEN)
