"""Round trips of the event log for every durability policy, in memory and on disk."""

from __future__ import annotations

from pathlib import Path

import pytest

from microstatedb.codec import Event
from microstatedb.log import EventLog

POLICIES = ["none", "batch", "always"]


def ev(origin: str, seq: int, op: object = 1) -> Event:
    return Event(origin, seq, seq * 10, {}, f"k{seq % 3}", "counter", op)


def test_memory_round_trip() -> None:
    log = EventLog(None)
    assert log.append(ev("a", 1)) == 0
    assert log.append_many([ev("a", 2), ev("b", 1)]) == 2
    assert list(log.read()) == [ev("a", 1), ev("a", 2), ev("b", 1)]
    assert list(log.read(2)) == [ev("b", 1)]
    assert list(log.read_origin("a", 1)) == [ev("a", 2)]
    assert (log.first_position, log.next_position) == (0, 3)


@pytest.mark.parametrize("durability", POLICIES)
def test_durable_round_trip(tmp_path: Path, durability: str) -> None:
    events = [ev("ab"[i % 2], i // 2 + 1, [i, "x" * (i % 7)]) for i in range(300)]
    with EventLog(tmp_path, durability=durability, segment_bytes=2048) as log:
        for i, e in enumerate(events[:200]):
            assert log.append(e) == i
        assert log.append_many(events[200:]) == 299
        assert list(log.read()) == events
    with EventLog(tmp_path, durability=durability, segment_bytes=2048) as log:
        assert log.recovery.clean
        assert list(log.read()) == events
        assert list(log.read(123)) == events[123:]
        assert list(log.read_origin("b", 100)) == [e for e in events if e.origin == "b"][100:]
        stats = log.stats()
        assert stats.segments > 3
        assert stats.sealed_segments == stats.segments - 1
        assert stats.next_position == 300
