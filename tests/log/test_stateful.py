"""A hypothesis state machine: any mix of appends, reopens, snapshots and releases reads back
exactly what a plain list model says."""

from __future__ import annotations

import shutil
import tempfile
from pathlib import Path

from hypothesis import settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, invariant, precondition, rule

from microstatedb.codec import Event
from microstatedb.log import EventLog, MemoryEventStore

from .helpers import ev


@settings(max_examples=10, stateful_step_count=25)
class LogMachine(RuleBasedStateMachine):
    def __init__(self) -> None:
        super().__init__()
        self.folder = Path(tempfile.mkdtemp())
        self.durability = "none"
        self.log = self._open()
        self.model: list[Event] = []
        self.first = 0
        self.seqs: dict[str, int] = {}
        self.archive = MemoryEventStore()
        self.snapshot_at = -1
        self.snapshot_state = b""

    def _open(self) -> EventLog:
        return EventLog(
            self.folder, durability=self.durability, segment_bytes=600, batch_interval=0.001
        )

    def _next(self, origin: str, size: int) -> Event:
        seq = self.seqs.get(origin, 0) + 1
        self.seqs[origin] = seq
        return ev(origin, seq, "x" * size)

    @rule(origin=st.sampled_from("ab"), size=st.integers(0, 120))
    def append(self, origin: str, size: int) -> None:
        event = self._next(origin, size)
        assert self.log.append(event) == len(self.model)
        self.model.append(event)

    @rule(origins=st.lists(st.sampled_from("abc"), max_size=12))
    def append_many(self, origins: list[str]) -> None:
        events = [self._next(o, 10) for o in origins]
        last = self.log.append_many(events)
        self.model += events
        assert last == len(self.model) - 1

    @rule(durability=st.sampled_from(["none", "batch", "always"]))
    def reopen(self, durability: str) -> None:
        self.log.close()
        self.durability = durability
        self.log = self._open()
        assert self.log.recovery.clean
        self._check_latest_snapshot()  # close wrote a snapshot still handed over

    @rule(wait=st.booleans())
    def snapshot(self, wait: bool) -> None:
        position = len(self.model)
        self.snapshot_state = b"s%d" % position
        info = self.log.write_snapshot(self.snapshot_state, dict(self.seqs), position, wait=wait)
        self.snapshot_at = position
        if info is None:  # handed to the commit thread, which may or may not have written it
            assert self.durability == "batch"
            assert not wait
            return
        snap = self.log.latest_snapshot()
        assert snap is not None
        assert snap.info == info

    @rule()
    def flush(self) -> None:
        self.log.flush()
        self._check_latest_snapshot()

    def _check_latest_snapshot(self) -> None:
        snap = self.log.latest_snapshot()
        if self.snapshot_at < 0:
            assert snap is None
        else:
            assert snap is not None
            assert (snap.state, snap.info.position) == (self.snapshot_state, self.snapshot_at)

    @precondition(lambda self: self.snapshot_at >= 0)
    @rule(data=st.data())
    def release(self, data: st.DataObject) -> None:
        upto = data.draw(st.integers(self.first, self.snapshot_at))
        gone = self.log.release(upto, self.archive)
        assert self.log.first_position == self.first + gone
        assert self.first + gone <= upto
        self.first += gone

    @invariant()
    def reads_match_the_model(self) -> None:
        assert self.log.first_position == self.first
        assert self.log.next_position == len(self.model)
        assert list(self.log.read(self.first)) == self.model[self.first :]
        assert list(self.archive.read()) == self.model[: self.first]
        for origin in "abc":
            assert list(self.log.read_origin(origin, 1)) == [
                e for e in self.model[self.first :] if e.origin == origin and e.seq > 1
            ]

    def teardown(self) -> None:
        self.log.close()
        shutil.rmtree(self.folder, ignore_errors=True)


TestLogMachine = LogMachine.TestCase
