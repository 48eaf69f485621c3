"""Stores converge under any schedule of faults: the project's own use of microstatedb.testing.

Hypothesis draws the seed and the schedule (partitions, loss, duplication, reordering, crashes
and restarts, writes, time); a failure shrinks to a short schedule and the plugin prints it.
"""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.stateful import rule

from microstatedb.testing import Cluster, Nemesis, ReplicatedStoreMachine, schedules

pytest_plugins = ["microstatedb.testing.plugin"]

NAMES = ["n000", "n001", "n002"]


@settings(max_examples=30)
@given(seed=st.integers(0, 2**16), schedule=schedules(NAMES, max_steps=8))
def test_any_schedule_converges_without_losing_writes(seed: int, schedule: list[Any]) -> None:
    cluster = Cluster(len(NAMES), seed=seed)
    try:
        cluster.apply(schedule)
        cluster.settle()
        assert cluster.converged()
        assert cluster.sim.lost_writes() == 0
    finally:
        cluster.close()


@pytest.mark.parametrize("msdb_options", [{"nodes": 5}])
def test_chaos_on_five_nodes_settles(msdb_cluster: Cluster, msdb_nemesis: Nemesis) -> None:
    msdb_nemesis.chaos(steps=12, writes=3)
    took = msdb_cluster.settle()
    assert took >= 0
    assert msdb_cluster.sim.lost_writes() == 0
    assert len({s.digest() for s in msdb_cluster.stores()}) == 1


class CounterAndRegisterMachine(ReplicatedStoreMachine):
    """Increments add up on every store; register reads keep the session guarantees."""

    consistency = "sessions"

    def __init__(self) -> None:
        super().__init__()
        self.total = 0

    @rule(i=st.integers(0, 2), n=st.integers(1, 5))
    def increment(self, i: int, n: int) -> None:
        self.stores[i].counter("stock").increment(n)
        self.total += n

    @rule(i=st.integers(0, 2))
    def write_status(self, i: int) -> None:
        self.write(i, "status")

    @rule(i=st.integers(0, 2))
    def read_status(self, i: int) -> None:
        self.read(i, "status")

    def check_converged(self, stores: list[Any]) -> None:
        assert all(s.counter("stock").value == self.total for s in stores)


TestCounterAndRegister = CounterAndRegisterMachine.TestCase
TestCounterAndRegister.settings = settings(max_examples=30, stateful_step_count=15)
