from __future__ import annotations

from pathlib import Path

import pytest

import microstatedb as msdb
from microstatedb.clock import ManualClock, hlc_physical_ms, make_hlc
from microstatedb.codec import Event, seal_envelope
from microstatedb.errors import (
    AuthenticationError,
    ClockSkew,
    ConfigurationError,
    CorruptData,
    StoreClosed,
    TypeMismatch,
)
from microstatedb.replica import decode_batch, encode_batch


def test_contract_handles() -> None:
    store = msdb.Store("orders-1")
    store.counter("visits").increment(3)
    store.counter("visits").decrement()
    store.register("status").set("open")
    store.set("tags").add("vip")
    cart = store.map("cart:42")
    cart.counter("items").increment()
    assert store.counter("visits").value == 2
    assert store.register("status").value == "open"
    assert "vip" in store.set("tags")
    assert store.set("tags").value == frozenset({"vip"})
    assert cart.value == {"items": 1}
    assert store.version_vector == {"orders-1": 5}
    assert store.keys() == ["cart:42", "status", "tags", "visits"]
    assert "visits" in store
    store.close()


def test_type_mismatch_is_clear() -> None:
    store = msdb.Store("a")
    store.counter("x").increment()
    with pytest.raises(TypeMismatch, match="holds a counter"):
        store.set("x")


@pytest.mark.parametrize("bad", ["", 3, "x" * 300])
def test_bad_node_id(bad: object) -> None:
    with pytest.raises(ConfigurationError):
        msdb.Store(bad)  # type: ignore[arg-type]


def test_bad_settings() -> None:
    with pytest.raises(ConfigurationError, match="durability"):
        msdb.Store("a", durability="sometimes")
    for every in (0, 2**63, 2.5, True):
        with pytest.raises(ConfigurationError, match="snapshot_every"):
            msdb.Store("a", snapshot_every=every)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError, match="key"):
        msdb.Store("a", key=b"short")
    with pytest.raises(ConfigurationError, match="keys"):
        msdb.Store("a").counter("")


def test_closed_store_refuses_writes() -> None:
    with msdb.Store("a") as store:
        c = store.counter("c")
    with pytest.raises(StoreClosed):
        c.increment()
    with pytest.raises(StoreClosed):
        store.events_since({})


def test_sync_converges_with_concurrent_writes() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.counter("n").increment(2)
    b.counter("n").increment(5)
    a.set("s").add("x")
    b.set("s").add("y")
    a.register("r").set("from-a")
    b.register("r").set("from-b")
    msdb.sync(a, b)
    assert a.digest() == b.digest()
    assert a.value() == b.value()
    assert a.counter("n").value == 7
    assert a.set("s").value == frozenset({"x", "y"})
    assert a.version_vector == b.version_vector == {"a": 3, "b": 3}


def test_add_wins_over_concurrent_remove() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.set("s").add("x")
    msdb.sync(a, b)
    b.set("s").remove("x")
    a.set("s").add("x")  # concurrent with b's remove
    msdb.sync(a, b)
    assert "x" in a.set("s")
    assert "x" in b.set("s")


def test_map_update_wins_over_concurrent_remove() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.map("cart").counter("items").increment(5)
    msdb.sync(a, b)
    a.map("cart").remove("items")
    b.map("cart").counter("items").increment(1)
    msdb.sync(a, b)
    assert a.map("cart").value == b.map("cart").value == {"items": 1}


def test_register_ties_broken_by_node_id() -> None:
    clock = ManualClock(1000.0)
    a, b = msdb.Store("a", clock=clock), msdb.Store("b", clock=clock)
    a.register("r").set("A")
    b.register("r").set("B")  # same HLC timestamp
    msdb.sync(a, b)
    assert a.register("r").value == b.register("r").value == "B"


def test_apply_is_idempotent() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.counter("n").increment(4)
    batch = a.events_since(b.version_vector)
    assert b.apply(batch) == 1
    digest = b.digest()
    assert b.apply(batch) == 0
    assert b.digest() == digest
    assert b.counter("n").value == 4


def test_causal_buffer_holds_events_until_ready() -> None:
    a, b, c = msdb.Store("a"), msdb.Store("b"), msdb.Store("c")
    a.set("s").add("x")
    msdb.sync(a, b)
    b.set("s").remove("x")  # depends on a's add
    # c gets b's remove before a's add: it must wait
    only_b = b.events_since({"a": 1})
    assert c.apply(only_b) == 0
    assert c.stats().buffered == 1
    assert c.missing() == {"b": (1, 1)} or c.missing() == {}
    assert c.set("s").value == frozenset()
    assert c.apply(a.events_since({})) == 2  # a's add, then b's remove from the buffer
    assert c.set("s").value == frozenset()
    assert c.digest() == b.digest()
    assert c.stats().buffered == 0


def test_events_from_own_origin_wait_for_their_predecessors() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.counter("n").increment()
    a.counter("n").increment()
    second = a.events_since({"a": 1})
    assert b.apply(second) == 0
    assert b.missing() == {"a": (1, 2)}
    assert b.apply(a.events_since({})) == 2
    assert b.counter("n").value == 2


def test_buffer_limit_drops_and_anti_entropy_recovers() -> None:
    a = msdb.Store("a")
    b = msdb.Store("b", buffer_limit=2)
    for _ in range(5):
        a.counter("n").increment()
    assert b.apply(a.events_since({"a": 1})) == 0
    assert b.stats().buffered == 2
    assert b.stats().dropped_from_buffer == 2
    msdb.sync(a, b)
    assert b.counter("n").value == 5


@pytest.mark.parametrize(
    "tamper",
    [
        lambda data: data[:-1] + bytes([data[-1] ^ 1]),
        lambda data: data[:20] + b"\x00" + data[21:],
        lambda data: data[: len(data) // 2],
        lambda data: b"garbage",
    ],
)
def test_tampered_batch_is_refused_and_changes_nothing(tamper: object) -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    a.counter("n").increment(3)
    b.counter("m").increment()
    before = (b.digest(), dict(b.version_vector))
    with pytest.raises(CorruptData):
        b.apply(tamper(a.events_since({})))  # type: ignore[operator]
    assert (b.digest(), dict(b.version_vector)) == before


def _forged(events: list[Event]) -> bytes:
    return encode_batch("a", {"a": len(events)}, events, [])


def test_malformed_op_inside_valid_envelope_changes_nothing() -> None:
    b = msdb.Store("b")
    b.counter("c").increment()
    before = b.digest()
    good = Event("a", 1, make_hlc(1), {}, "n", "counter", None)
    a = msdb.Store("a")
    a.counter("n").increment()
    real = decode_batch(a.events_since({})).events[0]
    bad = Event("a", 2, real.hlc, {}, "n", "counter", {"not": "a counter delta"})
    del good
    with pytest.raises(CorruptData):
        b.apply(_forged([real, bad]))
    assert b.digest() == before
    assert b.version_vector == {"b": 1}


def test_batch_with_unknown_kind_or_type_conflict_is_refused() -> None:
    b = msdb.Store("b")
    b.counter("n").increment()
    a = msdb.Store("a")
    a.set("n").add(1)
    with pytest.raises(CorruptData, match="is a counter here"):
        b.apply(a.events_since({}))
    unknown = Event("a", 1, make_hlc(1), {}, "k", "no-such-type", [])
    with pytest.raises(CorruptData, match="unknown CRDT kind"):
        b.apply(_forged([unknown]))
    assert b.version_vector == {"b": 1}


def test_malformed_batch_structure() -> None:
    b = msdb.Store("b")
    with pytest.raises(CorruptData):
        b.apply(seal_envelope(1, b"\x93\x01\x02\x03"))
    with pytest.raises(CorruptData):
        b.apply(encode_batch("a", {}, [], [("k", "counter", None)])[:-16] + bytes(16))


def test_far_future_event_is_refused() -> None:
    clock_a = ManualClock(10_000.0)
    clock_b = ManualClock(1_000.0)
    a = msdb.Store("a", clock=clock_a)
    b = msdb.Store("b", clock=clock_b, max_drift=60.0)
    a.counter("n").increment()
    with pytest.raises(ClockSkew):
        b.apply(a.events_since({}))
    assert b.version_vector == {}


def test_authenticated_batches() -> None:
    key = bytes(range(32))
    a = msdb.Store("a", key=key)
    b = msdb.Store("b", key=key)
    stranger = msdb.Store("x")
    a.counter("n").increment()
    msdb.sync(a, b)
    assert b.counter("n").value == 1
    stranger.counter("n").increment(100)
    with pytest.raises(AuthenticationError):
        b.apply(stranger.events_since({}))
    assert b.counter("n").value == 1


def test_log_false_replicates_state_deltas() -> None:
    a = msdb.Store("presence-1", log=False)
    b = msdb.Store("presence-2", log=False)
    a.set("online").add("u1")
    b.set("online").add("u2")
    b.counter("pings").increment(3)
    msdb.sync(a, b)
    assert a.digest() == b.digest()
    assert a.set("online").value == frozenset({"u1", "u2"})
    assert a.stats().events_in_log == 0
    # nothing new: the next batch carries no state
    assert decode_batch(a.events_since(b.version_vector)).states == []


def test_log_and_log_free_stores_interoperate() -> None:
    full = msdb.Store("full")
    light = msdb.Store("light", log=False)
    third = msdb.Store("third")
    full.counter("n").increment(2)
    light.counter("n").increment(3)
    msdb.sync(full, light)
    assert full.counter("n").value == light.counter("n").value == 5
    # full received light's change as state: a third store gets state from it, not events
    msdb.sync(third, full)
    assert third.counter("n").value == 5
    assert third.digest() == full.digest()


def test_history_leaves_memory_and_peers_get_state(tmp_path: Path) -> None:
    a = msdb.Store("a", snapshot_every=10)
    for _ in range(35):
        a.counter("n").increment()
    assert a.stats().snapshots_taken == 3
    assert a.stats().events_in_log <= 20  # older history left memory
    fresh = msdb.Store("fresh")
    fresh.apply(a.events_since({}))
    assert fresh.counter("n").value == 35
    assert fresh.digest() == a.digest()
    # a peer that is only a little behind still gets events
    peer = msdb.Store("peer")
    peer.apply(a.events_since({}))
    a.counter("n").increment()
    batch = decode_batch(a.events_since(peer.version_vector))
    assert [e.seq for e in batch.events] == [36]
    assert batch.states == []


def test_durable_store_reopens_with_its_state(tmp_path: Path) -> None:
    path = tmp_path / "orders-1"
    with msdb.Store("orders-1", path=path, durability="always") as s:
        s.counter("visits").increment(3)
        s.set("tags").add("vip")
        s.map("cart").register("currency").set("EUR")
        digest = s.digest()
    with msdb.Store("orders-1", path=path) as s:
        assert s.digest() == digest
        assert s.counter("visits").value == 3
        assert s.version_vector == {"orders-1": 3}
        s.counter("visits").increment()  # sequence continues, no reused dot
        assert s.version_vector == {"orders-1": 4}


def test_durable_store_replays_tail_after_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "s"
    with msdb.Store("s", path=path, snapshot_every=7) as s:
        for i in range(30):
            s.counter("n").increment(i)
        other = msdb.Store("o")
        other.set("x").add("remote")
        s.apply(other.events_since({}))
        digest = s.digest()
    with msdb.Store("s", path=path) as s:
        assert s.digest() == digest
        assert s.counter("n").value == sum(range(30))
        assert s.version_vector == {"s": 30, "o": 1}


@pytest.mark.parametrize("log", [True, False])
def test_the_write_paths_snapshots_are_durable_once_flushed(tmp_path: Path, log: bool) -> None:
    # Under batch, the snapshot due every snapshot_every writes goes to the log's commit
    # thread; flush() returns once it is on disk, and snapshot() itself waits for it.
    path = tmp_path / "s"
    s = msdb.Store("s", path=path, snapshot_every=10, log=log)
    for _ in range(10):
        s.counter("n").increment()
    s.flush()
    snap = s._log.latest_snapshot()
    assert snap is not None
    assert dict(snap.info.vv) == {"s": 10}
    s.counter("n").increment()
    s.snapshot()
    snap = s._log.latest_snapshot()
    assert snap is not None
    assert dict(snap.info.vv) == {"s": 11}
    s.close()
    with msdb.Store("s", path=path, log=log) as again:
        assert again.counter("n").value == 11


def test_durable_log_free_store_persists_by_snapshot(tmp_path: Path) -> None:
    path = tmp_path / "p"
    with msdb.Store("p", path=path, log=False) as s:
        s.counter("n").increment(9)
    with msdb.Store("p", path=path, log=False) as s:
        assert s.counter("n").value == 9


def test_deps_stay_compact_in_a_large_fleet() -> None:
    hub = msdb.Store("hub")
    for i in range(50):
        peer = msdb.Store(f"n{i}")
        peer.counter("c").increment()
        hub.apply(peer.events_since({}))
    hub.counter("c").increment()
    hub.counter("c").increment()
    events = decode_batch(hub.events_since({f"n{i}": 1 for i in range(50)})).events
    assert len(events[0].deps) == 50  # first local event after 50 remote ones
    assert events[1].deps == {}  # the next one only says what changed since


def test_stats_and_repr() -> None:
    s = msdb.Store("a")
    s.counter("n").increment()
    st = s.stats()
    assert (st.keys, st.events_applied, st.events_in_log) == (1, 1, 1)
    assert "a" in repr(s)
    s.flush()


def test_closed_property() -> None:
    s = msdb.Store("a")
    assert s.closed is False
    s.close()
    assert s.closed is True


@pytest.mark.parametrize("durable", [False, True])
def test_event_timestamps_increase_when_the_wall_clock_jumps_back(
    tmp_path: Path, durable: bool
) -> None:
    # The write path steps the HLC inline; it must keep HLC.now's rule.
    clock = ManualClock(5_000.0)
    path = tmp_path / "s" if durable else None
    with msdb.Store("a", clock=clock, path=path) as s:
        s.counter("n").increment(1)
        clock.set_wall(4_000.0)
        s.register("r").set("x")
        s.counter("n").increment(1)
        clock.set_wall(6_000.0)
        s.counter("n").increment(1)
        stamps = [ev.hlc for ev in decode_batch(s.events_since({})).events]
    assert len(stamps) == 4
    assert stamps == sorted(set(stamps))
    # while the wall clock is behind, the physical part holds and the counter moves on
    assert [hlc_physical_ms(t) for t in stamps] == [5_000_000] * 3 + [6_000_000]
