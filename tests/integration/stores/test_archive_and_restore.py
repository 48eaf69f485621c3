"""Released history goes to the external store; a new replica is rebuilt from it."""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

import microstatedb as msdb
from microstatedb.log import EventStore
from microstatedb.replica import decode_batch
from microstatedb.stores import (
    JetStreamEventStore,
    PostgresEventStore,
    bootstrap,
    refetch,
)

pytestmark = pytest.mark.integration

TABLES = itertools.count()


@pytest.fixture(params=["postgres", "jetstream"])
def archive(
    request: pytest.FixtureRequest, pg_dsn: str, stream_names: Callable[[], str]
) -> Iterator[EventStore]:
    store: EventStore
    if request.param == "postgres":
        store = PostgresEventStore(pg_dsn, table=f"archive_{next(TABLES)}")
    else:
        store = JetStreamEventStore(stream_names())
    try:
        yield store
    finally:
        store.close()


def write(stores: list[msdb.Store], n: int, rng: random.Random) -> None:
    """Random writes of every CRDT kind, with syncs so that events carry causal context."""
    for i in range(n):
        s = rng.choice(stores)
        k = rng.randrange(8)
        match rng.randrange(4):
            case 0:
                s.counter(f"c{k}").increment(rng.randrange(1, 5))
            case 1:
                s.register(f"r{k}").set(rng.randrange(100))
            case 2:
                s.set(f"s{k}").add(rng.randrange(10))
            case _:
                s.map(f"m{k}").counter("n").increment()
        if i % 37 == 0 and len(stores) > 1:
            msdb.sync(*rng.sample(stores, 2))


def test_a_replica_rebuilt_from_the_archive_has_the_same_digest(archive: EventStore) -> None:
    rng = random.Random(7)
    original = msdb.Store("orig", snapshot_every=100, archive=archive)
    peer = msdb.Store("peer")
    write([original, peer], 1500, rng)
    msdb.sync(original, peer)
    # Two snapshots in a row release everything the first covers: the whole history.
    original.snapshot()
    original.snapshot()
    assert original.stats().events_in_log == 0
    rebuilt = msdb.Store("rebuilt")
    report = bootstrap(rebuilt, archive, batch_size=400)
    assert rebuilt.digest() == original.digest()
    assert rebuilt.version_vector == original.version_vector
    assert report.events_applied == sum(original.version_vector.values()) == report.events_read
    assert report.batches >= 4
    assert rebuilt.missing() == {}


def test_bootstrap_from_a_snapshot_replays_only_what_it_lacks(archive: EventStore) -> None:
    rng = random.Random(11)
    original = msdb.Store("orig", snapshot_every=50, archive=archive)
    write([original], 600, rng)
    # A portable snapshot: once history was released, events_since({}) is the full state.
    snapshot = original.events_since({})
    at_snapshot = sum(original.version_vector.values())
    write([original], 400, rng)
    original.snapshot()
    original.snapshot()
    rebuilt = msdb.Store("rebuilt")
    report = bootstrap(rebuilt, archive, snapshot=snapshot)
    assert rebuilt.digest() == original.digest()
    assert report.events_skipped == at_snapshot
    assert report.events_applied == 1000 - at_snapshot


def test_a_durable_replica_rebuilt_from_archive_plus_peer(
    archive: EventStore, tmp_path: Path
) -> None:
    # A durable store archives whole sealed segments; the tail still in its log comes from
    # a peer (the original here) with ordinary anti-entropy.
    rng = random.Random(3)
    original = msdb.Store(
        "orig", tmp_path / "orig", snapshot_every=60, archive=archive, segment_bytes=2048
    )
    write([original], 900, rng)
    original.snapshot()
    original.snapshot()
    archived = sum(1 for _ in archive.read())
    assert 0 < archived < 900
    rebuilt = msdb.Store("rebuilt", tmp_path / "rebuilt")
    bootstrap(rebuilt, archive)
    assert sum(rebuilt.version_vector.values()) == archived
    rebuilt.apply(original.events_since(rebuilt.version_vector))
    assert rebuilt.digest() == original.digest()
    original.close()
    rebuilt.close()


def test_lost_events_are_refetched_from_the_archive(archive: EventStore, tmp_path: Path) -> None:
    path = tmp_path / "node"
    with msdb.Store("w", path, durability="always", segment_bytes=1024) as store:
        for i in range(300):
            store.counter(f"c{i % 5}").increment()
        # A copy of the whole history kept elsewhere (no release yet: all of it is events).
        archive.append(decode_batch(store.events_since({})).events)
        digest = store.digest()
    # Damage a sealed segment in the middle of the log.
    segments = sorted(p for p in path.rglob("*") if p.is_file() and "seg" in p.name)
    victim = segments[len(segments) // 2]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with msdb.Store("w", path, repair=True) as damaged:
        assert damaged.lost, "the damage cost events"
        report = refetch(damaged, archive)
        assert damaged.lost == {}
        assert report.events_applied > 0
        assert damaged.digest() == digest
