"""Bootstrap and refetch against the in-process event stores (the laws, without servers)."""

from __future__ import annotations

import random
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.errors import ConfigurationError
from microstatedb.log import FolderEventStore, MemoryEventStore
from microstatedb.replica import decode_batch
from microstatedb.stores import BootstrapReport, bootstrap, refetch


def random_history(seed: int, stores: list[msdb.Store], n: int) -> None:
    rng = random.Random(seed)
    for i in range(n):
        s = rng.choice(stores)
        key = f"k{rng.randrange(5)}"
        match rng.randrange(3):
            case 0:
                s.counter(f"c{key}").increment(rng.randrange(1, 4))
            case 1:
                s.set(f"s{key}").add(rng.randrange(6))
            case _:
                s.set(f"s{key}").remove(rng.randrange(6))
        if len(stores) > 1 and i % 7 == 0:
            # Always with the first store: a peer that took state (not events) from another
            # peer could pass it on as state, and the first store's log would lack events.
            msdb.sync(stores[0], rng.choice(stores[1:]))


@settings(max_examples=30)
@given(seed=st.integers(0, 2**32), n=st.integers(1, 250), every=st.integers(5, 60))
def test_replaying_the_archived_history_gives_the_same_state(seed: int, n: int, every: int) -> None:
    archive = MemoryEventStore()
    original = msdb.Store("orig", snapshot_every=every, archive=archive)
    others = [msdb.Store("p1"), msdb.Store("p2")]
    random_history(seed, [original, *others], n)
    msdb.sync(original, others[0])
    msdb.sync(original, others[1])
    original.snapshot()
    original.snapshot()  # everything the log held is in the archive now
    rebuilt = msdb.Store("rebuilt")
    report = bootstrap(rebuilt, archive, batch_size=17)
    assert rebuilt.digest() == original.digest()
    assert rebuilt.version_vector == original.version_vector
    assert report.events_applied == report.events_read == len(archive)
    assert report.events_skipped == 0
    # Bootstrapping again changes nothing: every event is covered now.
    again = bootstrap(rebuilt, archive)
    assert again == BootstrapReport(len(archive), 0, len(archive), 0)


@settings(max_examples=20)
@given(seed=st.integers(0, 2**32), cut=st.integers(1, 150))
def test_a_snapshot_plus_the_archive_tail_gives_the_same_state(seed: int, cut: int) -> None:
    archive = MemoryEventStore()
    original = msdb.Store("orig", snapshot_every=20, archive=archive)
    random_history(seed, [original], cut)
    snapshot = original.events_since({})
    covered = sum(original.version_vector.values())
    random_history(seed + 1, [original], 80)
    original.snapshot()
    original.snapshot()
    rebuilt = msdb.Store("rebuilt")
    report = bootstrap(rebuilt, archive, snapshot=snapshot)
    assert rebuilt.digest() == original.digest()
    assert report.events_skipped == covered
    assert report.events_applied == 80


def test_bootstrap_from_a_folder_archive(tmp_path: Path) -> None:
    archive = FolderEventStore(tmp_path / "archive")
    original = msdb.Store("orig", snapshot_every=30, archive=archive)
    random_history(1, [original], 200)
    original.snapshot()
    original.snapshot()
    rebuilt = msdb.Store("rebuilt", tmp_path / "rebuilt")
    bootstrap(rebuilt, archive)
    assert rebuilt.digest() == original.digest()
    rebuilt.close()
    # The rebuilt replica keeps the history in its own log: it survives a restart.
    with msdb.Store("rebuilt", tmp_path / "rebuilt") as reopened:
        assert reopened.digest() == original.digest()
    archive.close()


def test_signed_batches_for_a_store_with_a_key() -> None:
    key = bytes(range(32))
    archive = MemoryEventStore()
    original = msdb.Store("orig", snapshot_every=10, archive=archive, key=key)
    random_history(2, [original], 60)
    original.snapshot()
    original.snapshot()
    rebuilt = msdb.Store("rebuilt", key=key)
    with pytest.raises(msdb.errors.AuthenticationError):
        bootstrap(rebuilt, archive)
    bootstrap(rebuilt, archive, key=key)
    assert rebuilt.digest() == original.digest()


def test_refetch_brings_back_what_corruption_took(tmp_path: Path) -> None:
    path = tmp_path / "node"
    archive = MemoryEventStore()
    with msdb.Store("w", path, durability="always", segment_bytes=512) as store:
        for i in range(200):
            store.counter(f"c{i % 3}").increment()
        archive.append(decode_batch(store.events_since({})).events)
        digest = store.digest()
    segments = sorted(p for p in path.rglob("*") if p.is_file() and "seg" in p.name)
    victim = segments[len(segments) // 3]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    victim.write_bytes(bytes(raw))
    with msdb.Store("w", path, repair=True) as damaged:
        first, last = damaged.lost["w"]
        report = refetch(damaged, archive)
        assert damaged.lost == {}
        assert report.events_applied >= last - first + 1
        assert damaged.digest() == digest
        damaged.counter("c0").increment()  # own writes are allowed again


def test_refetch_with_nothing_lost_reads_nothing() -> None:
    store = msdb.Store("w")
    assert refetch(store, MemoryEventStore()) == BootstrapReport(0, 0, 0, 0)


def test_a_bad_batch_size_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        bootstrap(msdb.Store("w"), MemoryEventStore(), batch_size=0)
