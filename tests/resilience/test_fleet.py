"""Fleet-wide failure knowledge: several breakers (instances) share one merged view."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb import errors
from microstatedb.clock import ManualClock
from microstatedb.resilience import (
    BucketCounts,
    CircuitBreaker,
    FleetMember,
    FleetState,
    InMemoryFleet,
    Lease,
    Override,
    Scope,
    State,
    Trip,
)


class Boom(Exception):
    pass


def boom() -> None:
    raise Boom


def fail(cb: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        with pytest.raises(Boom):
            cb.call(boom)


def succeed(cb: CircuitBreaker, n: int = 1) -> None:
    for _ in range(n):
        assert cb.call(lambda: 1) == 1


class Fleet:
    """A few instances of one service, each with a breaker for the `payments` downstream."""

    def __init__(self, *names: str, view: InMemoryFleet | None = None, **member: object) -> None:
        self.clock = ManualClock()
        self.view = view if view is not None else InMemoryFleet()
        self.member = {"quorum": 2, "sync_interval": 0.0, "lease_ttl": 5.0}
        self.member.update(member)
        self.breakers = {name: self.start(name) for name in names}

    def start(self, name: str, zone: str = "", view: InMemoryFleet | None = None) -> CircuitBreaker:
        return CircuitBreaker(
            "payments",
            failure_rate_threshold=50.0,
            sliding_window_size=10,
            minimum_calls=4,
            wait_in_open=30.0,
            permitted_calls_in_half_open=2,
            clock=self.clock,
            fleet=FleetMember(
                view if view is not None else self.view,
                name,
                zone=zone,
                **self.member,  # type: ignore[arg-type]
            ),
        )

    def __getitem__(self, name: str) -> CircuitBreaker:
        return self.breakers[name]

    def states(self) -> dict[str, State]:
        return {name: cb.state for name, cb in self.breakers.items()}


def test_failures_seen_by_a_quorum_trip_every_instance() -> None:
    fleet = Fleet("a", "b", "c")
    fail(fleet["a"], 2)
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)
    fail(fleet["b"], 2)  # four calls in the fleet, all failed, seen by two instances
    assert fleet.states() == dict.fromkeys("abc", State.OPEN)
    refused = fleet["c"].try_acquire()  # c made no call and still fails fast
    assert not refused
    assert refused.retry_after == pytest.approx(30.0)
    state = fleet.view.state("payments")
    assert state.is_open
    assert state.trip is not None
    assert state.trip.by == "b"


def test_one_instance_with_a_bad_path_cannot_poison_the_rest() -> None:
    fleet = Fleet("a", "b", "c")
    fail(fleet["a"], 4)
    assert fleet["a"].state is State.OPEN  # its own breaker protects it
    assert fleet["b"].state is State.CLOSED
    assert fleet["c"].state is State.CLOSED
    assert not fleet.view.state("payments").is_open
    succeed(fleet["b"], 3)


def test_a_quorum_of_observers_needs_each_observer_to_see_the_rate() -> None:
    fleet = Fleet("a", "b", "c", quorum=2)
    fail(fleet["a"], 3)  # a: 100 %
    succeed(fleet["b"], 3)
    fail(fleet["b"], 1)  # b: 25 %, not an observer
    succeed(fleet["c"], 1)
    # the fleet: 8 calls, 4 failed = 50 %, but only one observer
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)
    fail(fleet["c"], 1)  # c: 1 of 2, a second observer; the fleet: 5 of 9
    assert fleet.states() == dict.fromkeys("abc", State.OPEN)
    assert fleet.view.state("payments").is_open


def test_half_open_probe_is_one_lease_for_the_fleet() -> None:
    fleet = Fleet("a", "b", "c")
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(30.0)
    probe = fleet["a"].try_acquire()  # a is first after the wait: it takes the lease
    assert probe
    assert fleet["a"].state is State.HALF_OPEN
    refused = fleet["b"].try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(5.0)  # until a's lease ends
    assert fleet["c"].state is State.OPEN
    lease = fleet.view.lease("payments")
    assert lease.held_by("a", fleet.clock.now())
    probe.success()
    succeed(fleet["a"], 1)  # the two probes pass: the fleet closes
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)
    assert not fleet.view.lease("payments").held_by("a", fleet.clock.now())
    succeed(fleet["b"], 1)
    succeed(fleet["c"], 1)
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)


def test_a_failed_probe_reopens_the_fleet() -> None:
    fleet = Fleet("a", "b")
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(30.0)
    succeed(fleet["a"], 1)
    fail(fleet["a"], 1)
    assert fleet["a"].state is State.OPEN
    refused = fleet["b"].try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(30.0)  # the new trip's wait, not the lease's
    fleet.clock.advance(30.0)
    succeed(fleet["b"], 2)  # now b probes for the fleet
    assert fleet.states() == {"a": State.CLOSED, "b": State.CLOSED}


def test_a_lease_whose_holder_stops_renewing_expires() -> None:
    fleet = Fleet("a", "b", lease_ttl=5.0)
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(30.0)
    held = fleet["a"].try_acquire()  # a takes the lease, then dies holding a probe
    assert held
    fleet.clock.advance(4.9)
    assert not fleet["b"].try_acquire()
    fleet.clock.advance(0.1)
    assert fleet["b"].try_acquire()  # the lease expired: b probes now
    assert fleet["b"].state is State.HALF_OPEN
    assert fleet.view.lease("payments").holder == "b"
    assert fleet["a"].state is State.OPEN  # a, back, sees it lost the lease


def test_the_holder_renews_its_lease_while_probing() -> None:
    fleet = Fleet("a", "b", lease_ttl=4.0, sync_interval=1.0)
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(1.0)
    fleet.states()  # each flushes; the first to read saw only its own counts
    fleet.clock.advance(1.0)
    assert fleet.states() == dict.fromkeys("ab", State.OPEN)
    fleet.clock.advance(30.0)
    first = fleet["a"].try_acquire()
    assert first
    for _ in range(3):  # a keeps calling every 2 s: its lease is renewed each time
        fleet.clock.advance(2.0)
        assert fleet["a"].state is State.HALF_OPEN
    assert fleet.view.lease("payments").held_by("a", fleet.clock.now())
    assert not fleet["b"].try_acquire()


def test_a_new_instance_starts_with_the_fleet_state() -> None:
    fleet = Fleet("a", "b")
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(10.0)
    late = fleet.start("d")
    assert late.state is State.OPEN
    refused = late.try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(20.0)


def test_sync_interval_bounds_how_stale_a_decision_is() -> None:
    fleet = Fleet("a", "b", "c", sync_interval=1.0)
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)  # counts are flushed once per second, so nothing is known yet
    assert fleet["c"].state is State.CLOSED
    fleet.clock.advance(1.0)
    fail(fleet["a"], 1)  # a flushes its three failures: not enough alone
    assert fleet["a"].state is State.CLOSED
    assert fleet["b"].state is State.OPEN  # b flushes its two: quorum, and the fleet trips
    assert fleet["c"].state is State.OPEN
    assert fleet["a"].state is State.CLOSED  # a read the view before b's flush...
    fleet.clock.advance(1.0)
    assert fleet["a"].state is State.OPEN  # ...and learns at its next sync


def test_old_buckets_leave_the_fleet_window() -> None:
    fleet = Fleet("a", "b", window_buckets=10, bucket_seconds=1.0)
    fail(fleet["a"], 1)
    fail(fleet["b"], 1)
    fleet.clock.advance(10.0)
    succeed(fleet["a"], 1)
    fail(fleet["a"], 1)
    succeed(fleet["b"], 1)
    assert fleet.states() == {"a": State.CLOSED, "b": State.CLOSED}
    fail(fleet["b"], 1)  # 2 of 4 in the window, both instances at 50 %
    assert fleet.states() == {"a": State.OPEN, "b": State.OPEN}


def test_force_open_fleet_wide_with_expiry() -> None:
    fleet = Fleet("a", "b")
    now = fleet.clock.now()
    fleet.view.set_override(
        "payments", Override(State.FORCED_OPEN, expires_at=now + 60, set_at=now)
    )
    refused = fleet["a"].try_acquire()
    assert not refused
    assert refused.retry_after == pytest.approx(60.0)
    assert fleet.states() == dict.fromkeys("ab", State.FORCED_OPEN)
    fleet.clock.advance(60.0)
    assert fleet.states() == dict.fromkeys("ab", State.CLOSED)
    succeed(fleet["a"], 1)


def test_force_per_zone_and_per_instance() -> None:
    fleet = Fleet()
    fleet.breakers = {
        "a": fleet.start("a", zone="eu"),
        "b": fleet.start("b", zone="eu"),
        "c": fleet.start("c", zone="us"),
    }
    now = fleet.clock.now()
    fleet.view.set_override(
        "payments", Override(State.FORCED_OPEN, Scope.ZONE, "eu", expires_at=now + 100, set_at=now)
    )
    assert fleet.states() == {"a": State.FORCED_OPEN, "b": State.FORCED_OPEN, "c": State.CLOSED}
    fleet.view.set_override(
        "payments",
        Override(State.METRICS_ONLY, Scope.INSTANCE, "b", expires_at=now + 10, set_at=now),
    )
    assert fleet.states() == {
        "a": State.FORCED_OPEN,
        "b": State.METRICS_ONLY,  # the most specific override wins
        "c": State.CLOSED,
    }
    fail(fleet["b"], 10)
    assert fleet["b"].state is State.METRICS_ONLY  # forced closed: it never trips
    fleet.clock.advance(10.0)
    assert fleet["b"].state is State.FORCED_OPEN  # the instance override lapsed
    # lifting the zone override early: a newer one that expires now
    later = fleet.clock.now()
    fleet.view.set_override(
        "payments",
        Override(State.FORCED_OPEN, Scope.ZONE, "eu", expires_at=later, set_at=later),
    )
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)


def test_force_closed_fleet_wide_keeps_calls_flowing() -> None:
    fleet = Fleet("a", "b")
    now = fleet.clock.now()
    fleet.view.set_override("payments", Override(State.DISABLED, set_at=now))
    fail(fleet["a"], 5)
    fail(fleet["b"], 5)
    assert fleet.states() == dict.fromkeys("ab", State.DISABLED)
    assert not fleet.view.state("payments").is_open


def test_an_override_with_an_older_set_at_does_not_replace_a_newer_one() -> None:
    view = InMemoryFleet()
    view.set_override("x", Override(State.FORCED_OPEN, set_at=10.0))
    view.set_override("x", Override(State.DISABLED, set_at=5.0))
    assert [o.state for o in view.overrides("x")] == [State.FORCED_OPEN]


@pytest.mark.parametrize(
    "bad",
    [
        {"state": State.CLOSED},
        {"state": State.FORCED_OPEN, "scope": Scope.ZONE},
        {"state": State.FORCED_OPEN, "target": "a"},
        {"state": State.FORCED_OPEN, "scope": "fleet"},
        {"state": State.FORCED_OPEN, "expires_at": float("nan")},
    ],
)
def test_bad_overrides_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(errors.ConfigurationError):
        Override(**bad)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "bad",
    [
        {"instance": ""},
        {"quorum": 0},
        {"window_buckets": True},
        {"bucket_seconds": 0.0},
        {"lease_ttl": -1.0},
        {"sync_interval": -1.0},
    ],
)
def test_bad_memberships_are_refused(bad: dict[str, object]) -> None:
    options: dict[str, object] = {"instance": "a"}
    options.update(bad)
    with pytest.raises(errors.ConfigurationError):
        FleetMember(InMemoryFleet(), **options)  # type: ignore[arg-type]


def test_bad_retention_is_refused() -> None:
    with pytest.raises(errors.ConfigurationError):
        InMemoryFleet(retain_buckets=0)
    with pytest.raises(errors.ConfigurationError):
        InMemoryFleet(retain_buckets=1.5)  # type: ignore[arg-type]


def test_replicas_that_gossip_trip_together() -> None:
    """Each instance has its own replica of the view (its own store); merges replicate."""
    clock = ManualClock()
    replicas = {name: InMemoryFleet() for name in "abc"}
    fleet = Fleet(quorum=2)
    fleet.clock = clock
    fleet.breakers = {name: fleet.start(name, view=replicas[name]) for name in "abc"}
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)  # nobody saw the others yet

    def gossip() -> None:
        for x in replicas.values():
            for y in replicas.values():
                x.merge(y)

    gossip()
    assert fleet["c"].state is State.OPEN or fleet["a"].state is State.OPEN
    gossip()  # the trip record spreads
    assert fleet.states() == dict.fromkeys("abc", State.OPEN)
    clock.advance(30.0)
    probe = fleet["a"].try_acquire()  # a takes the lease in its replica
    assert probe
    gossip()
    assert not fleet["b"].try_acquire()  # b sees a's lease after gossip
    probe.success()
    succeed(fleet["a"], 1)
    gossip()
    assert fleet.states() == dict.fromkeys("abc", State.CLOSED)


def test_concurrent_leases_resolve_to_one_holder_on_merge() -> None:
    x, y = InMemoryFleet(), InMemoryFleet()
    assert x.hold_lease("p", "a", 0.0, 5.0).holder == "a"
    assert y.hold_lease("p", "b", 0.0, 5.0).holder == "b"
    x.merge(y)
    y.merge(x)
    assert x.lease("p") == y.lease("p")
    assert x.lease("p").holder == "b"  # same version: the larger name wins, everywhere
    x.release_lease("p", "a", 1.0)  # not the holder: nothing happens
    assert x.lease("p").holder == "b"
    x.release_lease("p", "b", 1.0)
    assert x.lease("p").holder == ""


def test_unknown_downstreams_read_as_empty() -> None:
    view = InMemoryFleet()
    assert view.counts("nothing", 0) == {}
    assert view.state("nothing") == FleetState(None, 0.0)
    assert view.overrides("nothing") == ()


def test_the_view_keeps_a_bounded_number_of_buckets() -> None:
    view = InMemoryFleet(retain_buckets=3)
    for bucket in range(10):
        view.add("p", "a", bucket, BucketCounts(calls=1))
    assert view.counts("p", 0) == {"a": BucketCounts(calls=3)}
    other = InMemoryFleet(retain_buckets=3)
    other.add("p", "b", 20, BucketCounts(calls=1))
    view.merge(other)
    assert view.counts("p", 0) == {"b": BucketCounts(calls=1)}


_ops = st.lists(
    st.tuples(
        st.sampled_from(["add", "trip", "close", "lease", "release", "override"]),
        st.sampled_from(["a", "b", "c"]),
        st.integers(0, 5),
        st.integers(0, 3),
    ),
    max_size=25,
)


def _run(view: InMemoryFleet, ops: list[tuple[str, str, int, int]]) -> None:
    for op, who, t, n in ops:
        if op == "add":
            view.add("p", who, t, BucketCounts(n, n // 2, n // 3, n % 2))
        elif op == "trip":
            view.record_trip("p", Trip(float(t), float(t + n), who))
        elif op == "close":
            view.record_close("p", float(t))
        elif op == "lease":
            view.hold_lease("p", who, float(t), float(n + 1))
        elif op == "release":
            view.release_lease("p", who, float(t))
        else:
            state = (State.FORCED_OPEN, State.DISABLED, State.METRICS_ONLY)[n % 3]
            view.set_override("p", Override(state, Scope.INSTANCE, who, set_at=float(t)))


def _snapshot(view: InMemoryFleet) -> tuple[object, ...]:
    return (
        dict(view.counts("p", 0)),
        view.state("p"),
        view.lease("p"),
        sorted(view.overrides("p"), key=lambda o: o.target),
    )


@given(_ops, _ops, _ops)
def test_merge_is_a_join(ops_x: list[tuple[str, str, int, int]], ops_y: list, ops_z: list) -> None:
    """Commutative, associative and idempotent: replicas converge whatever the gossip order."""

    def fresh(ops: list[tuple[str, str, int, int]]) -> InMemoryFleet:
        view = InMemoryFleet()
        _run(view, ops)
        return view

    xy = fresh(ops_x)
    xy.merge(fresh(ops_y))
    yx = fresh(ops_y)
    yx.merge(fresh(ops_x))
    assert _snapshot(xy) == _snapshot(yx)

    left = fresh(ops_x)
    left.merge(fresh(ops_y))
    left.merge(fresh(ops_z))
    yz = fresh(ops_y)
    yz.merge(fresh(ops_z))
    right = fresh(ops_x)
    right.merge(yz)
    assert _snapshot(left) == _snapshot(right)

    once = fresh(ops_x)
    once.merge(fresh(ops_y))
    twice = fresh(ops_x)
    twice.merge(fresh(ops_y))
    twice.merge(fresh(ops_y))
    twice.merge(twice)
    assert _snapshot(once) == _snapshot(twice)


@given(st.lists(st.tuples(st.sampled_from("abc"), st.integers(0, 4)), max_size=30))
def test_counts_are_per_instance_grow_only(adds: list[tuple[str, int]]) -> None:
    view = InMemoryFleet()
    expected: dict[str, int] = {}
    for who, n in adds:
        view.add("p", who, 7, BucketCounts(calls=n))
        expected[who] = expected.get(who, 0) + n
    assert {k: v.calls for k, v in view.counts("p", 0).items()} == expected
    copy = InMemoryFleet()
    copy.merge(view)
    copy.merge(view)  # merging the same replica again adds nothing
    assert copy.counts("p", 0) == view.counts("p", 0)


def test_lease_record_helpers() -> None:
    lease = Lease("a", 10.0, 1)
    assert lease.held_by("a", 9.9)
    assert not lease.held_by("a", 10.0)
    assert not lease.held_by("b", 9.9)


@given(
    st.lists(
        st.tuples(st.sampled_from("abc"), st.booleans(), st.sampled_from([0.0, 0.5, 3.0])),
        max_size=60,
    )
)
def test_failures_from_one_instance_never_trip_the_fleet(
    stream: list[tuple[str, bool, float]],
) -> None:
    """Only `a` ever fails: whatever the interleaving, `b` and `c` keep every call."""
    fleet = Fleet("a", "b", "c", quorum=2)
    for name, failing, gap in stream:
        fleet.clock.advance(gap)
        cb = fleet[name]
        if name == "a":
            permit = cb.try_acquire()  # a's own breaker may refuse: that is its business
            if permit and failing:
                permit.failure()
            elif permit:
                permit.success()
        else:
            succeed(cb, 1)  # never refused: b and c stay closed
    assert fleet.view.state("payments").trip is None
    assert fleet["b"].state is State.CLOSED
    assert fleet["c"].state is State.CLOSED


@given(st.integers(2, 4), st.integers(1, 4))
def test_the_fleet_trips_exactly_when_the_quorum_is_reached(quorum: int, observers: int) -> None:
    names = [f"i{n}" for n in range(4)]
    fleet = Fleet(*names, quorum=quorum)
    for name in names[:observers]:
        permit = fleet[name].try_acquire()
        assert permit
        permit.failure()
    for _ in range(4):  # enough calls in the fleet, all failed, from `observers` instances
        permit = fleet[names[0]].try_acquire()
        if permit:
            permit.failure()
    tripped = fleet.view.state("payments").is_open
    assert tripped == (observers >= quorum)


def test_a_fleet_probe_stuck_past_max_wait_reopens_the_fleet() -> None:
    fleet = Fleet("a", "b")
    fleet.breakers = {
        name: CircuitBreaker(
            "payments",
            sliding_window_size=10,
            minimum_calls=4,
            wait_in_open=30.0,
            permitted_calls_in_half_open=1,
            max_wait_in_half_open=3.0,
            clock=fleet.clock,
            fleet=FleetMember(fleet.view, name, quorum=2, sync_interval=0.0, lease_ttl=60.0),
        )
        for name in "ab"
    }
    fail(fleet["a"], 2)
    fail(fleet["b"], 2)
    fleet.clock.advance(30.0)
    stuck = fleet["a"].try_acquire()  # a probes, and the probe never reports
    assert stuck
    fleet.clock.advance(3.0)
    refused = fleet["a"].try_acquire()
    assert not refused
    assert fleet["a"].state is State.OPEN
    trip = fleet.view.state("payments").trip
    assert trip is not None
    assert (trip.by, trip.opened_at) == ("a", fleet.clock.now())  # a new trip for the fleet
    assert fleet.view.lease("payments").holder == ""  # and the lease went back at once
    assert not fleet["b"].try_acquire()


class LockCheckingView(InMemoryFleet):
    """Fails a test if the view is called while a watched breaker holds its lock."""

    watched: list[CircuitBreaker]

    def _check(self) -> None:
        for cb in getattr(self, "watched", []):
            assert not cb._lock.locked(), "the view was called under the breaker's lock"

    def add(self, *args: object, **kwargs: object) -> None:  # type: ignore[override]
        self._check()
        super().add(*args, **kwargs)  # type: ignore[arg-type]

    def record_trip(self, downstream: str, trip: Trip) -> None:
        self._check()
        super().record_trip(downstream, trip)

    def record_close(self, downstream: str, at: float) -> None:
        self._check()
        super().record_close(downstream, at)

    def release_lease(self, downstream: str, holder: str, now: float) -> None:
        self._check()
        super().release_lease(downstream, holder, now)


def test_the_view_is_never_called_under_a_breaker_lock() -> None:
    """A store-backed view takes the store's locks: never while a breaker holds its own."""
    view = LockCheckingView()
    fleet = Fleet("a", "b", view=view, bucket_seconds=0.5, sync_interval=0.25)
    view.watched = list(fleet.breakers.values())
    fail(fleet["a"], 1)
    fleet.clock.advance(0.5)  # a new bucket: the old one is handed over
    fail(fleet["a"], 1)
    fail(fleet["b"], 2)
    fleet.clock.advance(0.5)
    fleet.states()
    fleet.clock.advance(0.5)
    assert fleet.states() == dict.fromkeys("ab", State.OPEN)
    fleet.clock.advance(30.0)
    succeed(fleet["a"], 1)
    fail(fleet["a"], 1)  # the probe fails: a new trip, the lease released
    fleet.clock.advance(30.0)
    succeed(fleet["b"], 2)  # b probes and closes the fleet
    assert view.state("payments").closed_at == fleet.clock.now()
