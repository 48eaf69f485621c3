"""Bounded memory: a durable log that releases what snapshots cover stays flat as it grows."""

from __future__ import annotations

import tracemalloc
from pathlib import Path

from microstatedb.codec import Event
from microstatedb.log import EventLog, MemoryEventStore

EVENTS = 160_000
TRACED = 40_000  # tracemalloc slows allocation several times: trace the last quarter
BATCH = 500
SNAPSHOT_EVERY = 8_000
BOUND = 2 * 2**20


def test_memory_stays_flat_while_the_log_grows(tmp_path: Path) -> None:
    log = EventLog(tmp_path, durability="none", segment_bytes=1 << 18)
    origins = [f"node-{i}" for i in range(8)]
    samples: list[int] = []
    try:
        for start in range(0, EVENTS, BATCH):
            if start == EVENTS - TRACED:
                tracemalloc.start()
            log.append_many(
                [
                    Event(origins[i % 8], i // 8 + 1, i, {}, "k", "counter", 1)
                    for i in range(start, start + BATCH)
                ]
            )
            if (start + BATCH) % SNAPSHOT_EVERY == 0:
                position = log.next_position
                log.write_snapshot(b"state", {o: position // 8 for o in origins}, position)
                log.release(position)
                if tracemalloc.is_tracing():
                    # A seal in flight holds a whole segment for a moment; whether one is
                    # running when we sample depends on thread scheduling, so let it finish.
                    log._wait_sealed()
                    samples.append(tracemalloc.get_traced_memory()[0])
        _current, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    stats = log.stats()
    log.close()
    assert stats.next_position == EVENTS
    assert stats.segments <= 2  # everything a snapshot covered left the folder too
    assert peak < BOUND
    # flat: what stays allocated after each release does not grow with the events appended
    assert len(samples) == TRACED // SNAPSHOT_EVERY
    assert max(samples) - min(samples) < 128 * 1024


def test_an_in_memory_log_releases_into_its_archive() -> None:
    log = EventLog(None)
    archive = MemoryEventStore()
    for start in range(0, 20_000, 1000):
        log.append_many(
            [Event("a", i + 1, i, {}, "k", "counter", 1) for i in range(start, start + 1000)]
        )
        log.write_snapshot(b"s", {"a": start + 1000}, start + 1000)
        log.release(start + 1000, archive)
        assert log.stats().events == 0
    assert len(archive) == 20_000
