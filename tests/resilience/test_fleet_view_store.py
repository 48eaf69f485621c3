"""The store-backed fleet view meets the same contract as the in-memory one, and replicates."""

from __future__ import annotations

import sys
import threading
from pathlib import Path

import pytest

import microstatedb as msdb
from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError
from microstatedb.replica import StoreFleet
from microstatedb.resilience import (
    BucketCounts,
    CircuitBreaker,
    FleetMember,
    FleetView,
    Override,
    State,
    Trip,
)

from .fleet_contract import FleetViewContract


class TestStoreFleet(FleetViewContract):
    def make_view(self) -> FleetView:
        return StoreFleet(msdb.Store("fleet-test"))


def test_instances_in_separate_stores_share_counts_through_sync() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    va, vb = StoreFleet(a), StoreFleet(b)
    va.add("pay", "a", 1, BucketCounts(calls=3, failures=2))
    vb.add("pay", "b", 1, BucketCounts(calls=4, failures=4))
    msdb.sync(a, b)
    expected = {"a": BucketCounts(calls=3, failures=2), "b": BucketCounts(calls=4, failures=4)}
    assert dict(va.counts("pay", 0)) == dict(vb.counts("pay", 0)) == expected


def test_concurrent_trips_agree_after_sync() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    va, vb = StoreFleet(a), StoreFleet(b)
    va.record_trip("pay", Trip(10.0, 40.0, "a"))
    vb.record_trip("pay", Trip(12.0, 42.0, "b"))
    va.set_override("pay", Override(State.FORCED_OPEN, set_at=1.0))
    vb.set_override("pay", Override(State.DISABLED, set_at=2.0))
    msdb.sync(a, b)
    assert va.state("pay") == vb.state("pay")
    assert va.state("pay").trip == Trip(12.0, 42.0, "b")
    assert [o.state for o in va.overrides("pay")] == [State.DISABLED]
    assert va.lease("pay") == vb.lease("pay")


def test_fleet_trips_across_replicated_stores() -> None:
    clock = ManualClock()
    stores = [msdb.Store(n, clock=clock) for n in ("a", "b", "c")]
    breakers = [
        CircuitBreaker(
            "pay",
            sliding_window_size=10,
            minimum_calls=4,
            wait_in_open=30.0,
            clock=clock,
            fleet=FleetMember(StoreFleet(s), s.node_id, quorum=2, sync_interval=0.0),
        )
        for s in stores
    ]
    for cb in breakers[:2]:
        for _ in range(2):
            permit = cb.try_acquire()
            assert permit
            permit.failure()
    for x in stores:
        for y in stores:
            if x is not y:
                msdb.sync(x, y)
    assert breakers[2].try_acquire().__bool__() is False  # the quiet instance follows the fleet
    assert breakers[2].state == State.OPEN


def test_old_buckets_are_dropped() -> None:
    view = StoreFleet(msdb.Store("s"), retain_buckets=2)
    for bucket in range(5):
        view.add("pay", "a", bucket, BucketCounts(calls=1))
    assert dict(view.counts("pay", 0)) == {"a": BucketCounts(calls=2)}  # buckets 3 and 4


def test_bad_retention() -> None:
    with pytest.raises(ConfigurationError):
        StoreFleet(msdb.Store("s"), retain_buckets=0)
    with pytest.raises(ConfigurationError):
        StoreFleet(msdb.Store("s"), retain_buckets=True)


def test_breakers_in_many_threads_share_one_store_fleet(tmp_path: Path) -> None:
    # Breakers report from the calling thread; the fleet's lock keeps the store, which is
    # used by one thread at a time, whole: no lost count, no dot given twice, a clean reopen.
    store = msdb.Store("a", path=tmp_path / "fleet")
    fleet = StoreFleet(store)
    threads, adds = 8, 300
    before = sys.getswitchinterval()
    sys.setswitchinterval(1e-6)  # interleave the threads between almost any two bytecodes
    try:

        def report() -> None:
            for _ in range(adds):
                fleet.add("pay", "a", 1, BucketCounts(calls=1))
                fleet.hold_lease("pay", "a", 0.0, 1.0)

        workers = [threading.Thread(target=report) for _ in range(threads)]
        for w in workers:
            w.start()
        for w in workers:
            w.join()
    finally:
        sys.setswitchinterval(before)
    assert fleet.counts("pay", 0)["a"].calls == threads * adds
    assert fleet.lease("pay").version == threads * adds  # each renewal counted once
    events = store.stats().events_applied
    store.close()
    with msdb.Store("a", path=tmp_path / "fleet") as again:
        assert again.stats().events_applied == events
        assert StoreFleet(again).counts("pay", 0)["a"].calls == threads * adds
