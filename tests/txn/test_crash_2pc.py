"""Two-phase commit under crashes of every party before and after every message.

After the crashed node restarts and the protocol settles, every transaction is atomic: all
participants applied its writes exactly once, or none did, and they agree with the
coordinator's decision; no write intent (lock) and no doubt remains.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.protocols import Journal
from microstatedb.runtime import CrashPoint, TxnSim

from ._shop import APPLES, NODES, make_sim, order_writes, replicate

KINDS_AT = {
    "order": ("prepare", "vote", "decide", "ack", "query", "answer"),
    "stock": ("prepare", "decide", "query", "answer"),
    "payment": ("prepare", "decide", "query", "answer"),
}
POINTS = [(n, k, w) for n in NODES for k in KINDS_AT[n] for w in ("before", "after", "sent")]


def settle(sim: TxnSim, seconds: float = 40.0) -> None:
    sim.run(seconds)
    sim.restart_all()
    sim.run(seconds)


def check_atomic(sim: TxnSim, txns: list[str], amount: int = 5, n: int = 2) -> int:
    """Assert atomicity of every transaction; returns how many committed."""
    committed = 0
    for txn in txns:
        coord = Journal(sim.stores["order"]).get(txn)
        decision = coord.get("decision")
        outcomes = {
            node: Journal(sim.stores[node]).get(txn).get(f"outcome/{node}") for node in NODES
        }
        assert all(o is not None for o in outcomes.values()), (txn, outcomes)
        flags = {bool(o["commit"]) for o in outcomes.values() if o is not None}
        assert len(flags) == 1, (txn, outcomes)
        commit = flags.pop()
        if decision is not None:
            assert bool(decision["commit"]) == commit
        else:
            assert not commit  # presumed abort
        committed += commit
        placed = sim.stores["order"].value().get(f"order:{txn}")
        assert placed == ("placed" if commit else None)
        assert sim.finished[txn].status == ("committed" if commit else "aborted")
    assert sim.stores["stock"].counter("apples").value == APPLES - n * committed
    assert sim.stores["payment"].counter("balance").value == -amount * committed
    for node in NODES:
        host = sim.hosts[node]
        assert host is not None
        assert host.participant.locks == {}
        assert host.participant.stats().in_doubt == 0
        assert host.coordinator.stats().in_doubt == 0
    return committed


@pytest.mark.parametrize(("node", "kind", "when"), POINTS)
def test_one_crash_at_every_point(node: str, kind: str, when: str) -> None:
    sim = make_sim(seed=7, crashes=(CrashPoint(node, kind, when),))
    sim.begin_2pc("order", "1", order_writes())
    settle(sim)
    check_atomic(sim, ["1"])


def test_a_crash_free_run_commits() -> None:
    sim = make_sim()
    sim.begin_2pc("order", "1", order_writes())
    sim.run(5)
    assert check_atomic(sim, ["1"]) == 1
    assert sim.stats().crashes == 0


def test_a_participant_that_refuses_aborts_everywhere() -> None:
    sim = make_sim()
    sim.begin_2pc("order", "1", order_writes(n=APPLES + 1))
    sim.run(5)
    assert check_atomic(sim, ["1"], n=APPLES + 1) == 0
    why = sim.finished["1"].detail
    assert why["by"] == "stock"
    assert why["reason"] == "not enough apples"


def test_a_long_coordinator_outage_ends_in_presumed_abort() -> None:
    # The coordinator crashes before it counts any vote: every participant is in doubt and
    # keeps asking; the restarted coordinator finds no decision and aborts.
    sim = make_sim(crashes=(CrashPoint("order", "vote", "before", downtime=30.0),))
    sim.begin_2pc("order", "1", order_writes())
    sim.run(60)
    assert check_atomic(sim, ["1"]) == 0


crash_points = st.lists(
    st.builds(
        CrashPoint,
        node=st.sampled_from(NODES),
        kind=st.sampled_from(("prepare", "vote", "decide", "ack", "query", "answer")),
        when=st.sampled_from(("before", "after", "sent")),
        nth=st.integers(1, 3),
        downtime=st.floats(0.0, 5.0),
    ),
    max_size=4,
)


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**16),
    crashes=crash_points,
    loss=st.sampled_from((0.0, 0.1)),
    duplicate=st.sampled_from((0.0, 0.2)),
    txns=st.integers(1, 3),
    replica=st.booleans(),
)
def test_atomic_under_any_crashes_loss_and_duplicates(
    seed: int, crashes: list[CrashPoint], loss: float, duplicate: float, txns: int, replica: bool
) -> None:
    sim = make_sim(seed, tuple(crashes), loss=loss, duplicate=duplicate, replica=replica)
    ids = [str(i) for i in range(txns)]
    for txn in ids:
        if sim.hosts["order"] is not None:
            sim.begin_2pc("order", txn, order_writes(order=txn))
        sim.run(0.004)
    started = [t for t in ids if Journal(sim.stores["order"]).get(t)]
    if replica:
        for _ in range(20):  # the replica catches up now and then, as anti-entropy would
            sim.run(0.05 + sim.rng.random() * 0.5)
            replicate(sim)
    settle(sim, 60.0)
    # Lost messages with a crashed coordinator can need one more round of timers.
    sim.run(60.0)
    check_atomic(sim, started)


def test_a_replica_of_the_coordinator_settles_participants_in_doubt() -> None:
    # The coordinator decides commit, then dies for good before any decide leaves; its store
    # was replicated to order-r, which the participants ask (cooperative termination).
    sim = TxnSim(
        ["order", "order-r", "stock", "payment"],
        seed=3,
        replicas={"order": ["order-r"]},
        crashes=(CrashPoint("order", "vote", "after", nth=2, downtime=1e9),),
    )
    writes = {"stock": [("counter", "apples", -2)], "payment": [("counter", "balance", -5)]}
    sim.begin_2pc("order", "t", writes)
    sim.run(0.5)
    assert sim.hosts["order"] is None
    assert Journal(sim.stores["order"]).get("t")["decision"]["commit"] is True
    for node in ("stock", "payment"):
        assert f"outcome/{node}" not in Journal(sim.stores[node]).get("t")  # in doubt
    replica = sim.stores["order-r"]
    replica.apply(sim.stores["order"].events_since(replica.version_vector))
    sim.run(30)
    assert sim.stores["stock"].counter("apples").value == -2
    assert sim.stores["payment"].counter("balance").value == -5
    for node in ("stock", "payment"):
        host = sim.hosts[node]
        assert host is not None
        assert host.participant.locks == {}
