"""Cluster and Nemesis: logged steps, bad arguments refused with typed errors."""

from __future__ import annotations

import random
from collections.abc import Iterator

import pytest

from microstatedb.errors import ConfigurationError
from microstatedb.testing import Cluster, Nemesis


@pytest.fixture
def cluster() -> Iterator[Cluster]:
    c = Cluster(3, seed=3)
    yield c
    c.close()


def test_every_step_is_logged_with_its_time(cluster: Cluster) -> None:
    a, b, _ = cluster.names
    cluster.set_loss(0.1)
    cluster.set_duplicate(0.2)
    cluster.set_reorder(0.3)
    cluster.run(0.5)
    cluster.crash(b)
    cluster.write(a)
    cluster.crash(a, keep_disk=False)
    cluster.restart(a)
    cluster.restart(b)
    cluster.heal()
    steps = [step for _, step in cluster.schedule]
    assert steps == [
        ("loss", 0.1),
        ("duplicate", 0.2),
        ("reorder", 0.3),
        ("run", 0.5),
        ("crash", b),
        ("write", a),
        ("crash", a, "wipe"),
        ("restart", a),
        ("restart", b),
        ("heal",),
    ]
    assert cluster.schedule[4][0] == pytest.approx(0.5)
    assert "seed=3" in cluster.replay_text()
    assert repr(cluster) == "<Cluster nodes=3 seed=3 steps=10>"
    assert cluster.now == pytest.approx(0.5)
    cluster.settle()
    assert cluster.converged()


def test_settle_restarts_crashed_nodes(cluster: Cluster) -> None:
    cluster.crash("n001")
    cluster.write("n000")
    cluster.settle()
    assert len(cluster.stores()) == 3
    assert cluster.sim.lost_writes() == 0


def test_settle_reports_the_schedule_when_it_cannot_converge(cluster: Cluster) -> None:
    cluster.write("n000")
    with pytest.raises(AssertionError, match=r"did not converge(.|\n)*'write', 'n000'"):
        cluster.settle(timeout=0.0)


def test_bad_arguments_are_configuration_errors(cluster: Cluster) -> None:
    with pytest.raises(ConfigurationError):
        cluster.set_loss(1.5)
    with pytest.raises(ConfigurationError):
        cluster.set_reorder(0)
    with pytest.raises(ConfigurationError, match="unknown schedule step"):
        cluster.apply([("explode",)])
    with pytest.raises(ConfigurationError):
        Nemesis(Cluster(1)).partition()


def test_nemesis_faults(cluster: Cluster) -> None:
    nemesis = Nemesis(cluster, random.Random(1))
    left, right = nemesis.partition()
    assert sorted(left + right) == cluster.names
    assert left
    assert right
    nemesis.drop(0.3)
    nemesis.duplicate(0.3)
    nemesis.reorder(0.2)
    first = nemesis.crash()
    second = nemesis.crash()
    assert first != second
    assert nemesis.crash() is None  # never the last running node
    nemesis.restart()
    nemesis.heal()
    assert nemesis.crash("n002") == "n002"
    nemesis.restart()
    assert len(cluster.stores()) == 3


def test_nemesis_replays_from_the_seed() -> None:
    def run(seed: int) -> list[object]:
        c = Cluster(4, seed=seed)
        try:
            Nemesis(c).chaos(steps=6)
            c.settle()
            return [step for _, step in c.schedule] + [c[c.names[0]].digest()]
        finally:
            c.close()

    assert run(5) == run(5)
    assert run(5) != run(6)
