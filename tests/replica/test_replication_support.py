"""Merkle vector summaries, bounded causal deltas, causal stability and compaction."""

from __future__ import annotations

import random

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.log import MemoryEventStore
from microstatedb.replica import (
    BUCKETS,
    SummaryCache,
    VVSummary,
    bucket_of,
    causal_stability,
    compact_stable,
    decode_batch,
    delta_since,
    entries_in,
    patch,
    summarize,
)

vvs = st.dictionaries(st.sampled_from([f"n{i}" for i in range(40)]), st.integers(0, 50))


@given(vvs, vvs)
def test_summary_finds_exactly_the_differing_origins(a: dict[str, int], b: dict[str, int]) -> None:
    sa, sb = summarize(a), summarize(b)
    nz = lambda v: {o: n for o, n in v.items() if n}  # noqa: E731
    assert (sa.root == sb.root) == (nz(a) == nz(b))
    diff = sa.differing(sb)
    # the peer's whole vector is rebuilt from the entries of the differing buckets alone
    assert nz(patch(a, diff, entries_in(b, diff))) == nz(b)
    for origin in set(nz(a)) ^ set(nz(b)):
        assert bucket_of(origin) in diff


def test_summary_wire_round_trip_and_errors() -> None:
    s = summarize({"a": 3, "b": 1})
    assert VVSummary.from_wire(s.to_wire()) == s
    assert len(s.buckets) == BUCKETS
    for bad in (None, [b"x", b"y"], [s.root, b"short"], [s.root]):
        with pytest.raises(DecodeError):
            VVSummary.from_wire(bad)


def test_summary_cache_follows_the_vector() -> None:
    cache = SummaryCache()
    vv = {"a": 1}
    first = cache.get(vv)
    assert cache.get(vv) is first
    vv["a"] = 2
    assert cache.get(vv) == summarize({"a": 2}) != first


def _fleet(seed: int, n: int = 3, writes: int = 40) -> list[msdb.Store]:
    rng = random.Random(seed)
    stores = [msdb.Store(f"s{i}") for i in range(n)]
    for _ in range(writes):
        s = rng.choice(stores)
        s.counter(f"c{rng.randrange(3)}").increment()
        if rng.random() < 0.3:
            msdb.sync(s, rng.choice(stores))
    return stores


@settings(max_examples=30)
@given(st.integers(0, 10_000), st.integers(1, 15))
def test_bounded_deltas_are_causally_closed(seed: int, limit: int) -> None:
    stores = _fleet(seed)
    for s in stores[1:]:
        msdb.sync(stores[0], s)
    for s in stores[1:]:
        msdb.sync(stores[0], s)
    source = stores[0]
    target = msdb.Store("fresh")
    rounds = 0
    while True:
        delta = delta_since(source, target.version_vector, limit)
        assert delta.events <= limit
        target.apply(delta.data)
        assert target.stats().buffered == 0  # every prefix applies without waiting
        rounds += 1
        if not delta.more:
            break
    assert target.digest() == source.digest()
    total = sum(source.version_vector.values())
    assert rounds == max(1, -(-total // limit))


def test_delta_reads_only_what_the_peer_lacks() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    for _ in range(500):
        a.counter("x").increment()
    msdb.sync(a, b)
    a.counter("x").increment()
    delta = delta_since(a, b.version_vector)
    assert (delta.events, delta.states, delta.more) == (1, 0, False)
    assert decode_batch(delta.data).vv == {}  # no whole vector on the wire
    assert delta_since(a, a.version_vector).events == 0
    with pytest.raises(ConfigurationError):
        delta_since(a, {}, 0)


def test_delta_behind_the_floor_and_state_only_stores_send_states() -> None:
    a = msdb.Store("a", snapshot_every=10)
    for _ in range(35):
        a.counter("x").increment()
    delta = delta_since(a, {})
    assert delta.states == 1
    assert delta.events == 0
    assert not delta.more
    c = msdb.Store("c", log=False)
    c.counter("y").increment()
    delta = delta_since(c, {})
    assert delta.states == 1
    fresh = msdb.Store("f")
    fresh.apply(delta.data)
    assert fresh.counter("y").value == 1


def test_delta_from_a_durable_store_uses_the_origin_summaries(tmp_path: object) -> None:
    a = msdb.Store("a", path=f"{tmp_path}/a", durability="none")
    b = msdb.Store("b")
    for i in range(20):
        (a if i % 2 else b).counter("x").increment()
        msdb.sync(a, b)
    a.counter("x").increment(5)
    delta = delta_since(a, b.version_vector)
    assert delta.events == 1
    b.apply(delta.data)
    assert b.digest() == a.digest()
    a.close()


@given(st.lists(vvs, max_size=5))
def test_causal_stability_is_the_pointwise_minimum(vectors: list[dict[str, int]]) -> None:
    stable = causal_stability(vectors)
    for origin, n in stable.items():
        assert all(v.get(origin, 0) >= n for v in vectors)
    if vectors:
        for origin in vectors[0]:
            low = min(v.get(origin, 0) for v in vectors)
            assert stable.get(origin, 0) == low


def test_compaction_below_stability() -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    for _ in range(10):
        a.counter("x").increment()
    msdb.sync(a, b)
    for _ in range(5):
        a.counter("x").increment()
    stable = causal_stability([a.version_vector, b.version_vector])
    assert stable == {"a": 10}
    released = compact_stable(a, stable)
    assert released == 10
    assert a.stats().events_in_log == 5
    b.apply(delta_since(a, b.version_vector).data)  # b is above the floor: still events
    assert b.digest() == a.digest()
    late = msdb.Store("late")
    assert delta_since(a, late.version_vector).states == 1  # below the floor: states
    assert compact_stable(a, {}) == 0
    assert compact_stable(msdb.Store("s", log=False), stable) == 0


def test_compaction_of_a_durable_store_goes_to_its_archive(tmp_path: object) -> None:
    archive = MemoryEventStore()
    a = msdb.Store("a", path=f"{tmp_path}/a", archive=archive, segment_bytes=256)
    for _ in range(40):
        a.counter("x").increment()
    released = compact_stable(a, {"a": 40})
    assert released > 0
    a.close()
    plain = msdb.Store("p", path=f"{tmp_path}/p")
    plain.counter("x").increment()
    assert compact_stable(plain, {"p": 1}) == 0
    plain.close()


def test_the_origin_index_shrinks_with_the_log() -> None:
    from microstatedb.replica._delta import _INDEXES

    a = msdb.Store("a", snapshot_every=100)
    b = msdb.Store("b")
    for _ in range(1000):
        a.counter("x").increment()
        if a.version_vector["a"] % 50 == 0:
            b.apply(delta_since(a, b.version_vector).data)
    index = _INDEXES[a]
    held = a.stats().events_in_log
    assert 0 < held <= 200
    assert len(index.positions["a"]) <= held + 50  # released events left the index too
    assert b.digest() == a.digest()
