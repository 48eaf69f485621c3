"""Memory stays flat while the log grows without end."""

from __future__ import annotations

import gc
import sys
from pathlib import Path

import pytest

import microstatedb as msdb


def _blocks() -> int:
    gc.collect()
    return sys.getallocatedblocks()


def _grow(store: msdb.Store, events: int, sample_every: int = 40_000) -> int:
    """Write ``events`` events; return the most memory blocks seen at any sample point."""
    counter = store.counter("visits")
    tags = store.set("recent")
    most = 0
    for i in range(events):
        if i % 100 == 0:
            tags.add(i % 1000)  # a bounded set: the state itself stays small
        counter.increment()
        if i % sample_every == sample_every - 1:
            most = max(most, _blocks())
    return most


@pytest.mark.slow
def test_in_memory_store_stays_flat_over_millions_of_events() -> None:
    store = msdb.Store("m", snapshot_every=50_000)
    early = _grow(store, 400_000)
    late = _grow(store, 1_600_000)
    assert store.counter("visits").value == 2_000_000
    assert store.stats().events_in_log <= 100_000  # one to two snapshot intervals
    # 4x the events and the peak within 10% (a retained log would add ~10M blocks)
    assert late < early * 1.10, (early, late)


@pytest.mark.slow
def test_durable_store_stays_flat(tmp_path: Path) -> None:
    store = msdb.Store("d", path=tmp_path / "d", durability="none", segment_bytes=2**20)
    early = _grow(store, 150_000)
    late = _grow(store, 600_000)
    assert store.stats().events_applied > 750_000
    assert late < early * 1.10, (early, late)
    store.close()
