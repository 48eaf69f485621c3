"""Sagas under crashes of every party before and after every message.

After restarts, every saga either completed (every step applied once) or compensated (every
applied step undone once); no action or compensation applied twice, none hangs.
"""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.protocols import Journal
from microstatedb.runtime import CrashPoint, TxnSim

from ._shop import APPLES, NODES, Shop, make_sim, saga_steps

KINDS_AT = {
    "order": ("invoke", "outcome"),
    "stock": ("invoke",),
    "payment": ("invoke",),
}
POINTS = [
    (n, k, w, nth)
    for n in NODES
    for k in KINDS_AT[n]
    for w in ("before", "after", "sent")
    for nth in (1, 2, 3)
]


def settle(sim: TxnSim, seconds: float = 40.0) -> None:
    sim.run(seconds)
    sim.restart_all()
    sim.run(seconds)


def check_saga(sim: TxnSim, shop: Shop, txns: list[str], n: int = 2, amount: int = 5) -> int:
    """Assert completion or full compensation of each saga; returns how many completed."""
    completed = 0
    for txn in txns:
        end = sim.finished[txn]
        assert end.status in ("completed", "compensated"), end
        assert Journal(sim.stores["order"]).get(txn)["end"]["status"] == end.status
        done = end.status == "completed"
        completed += done
        order = sim.stores["order"].value().get(f"order:{txn}")
        assert order in (("confirmed",) if done else (None, "cancelled"))
    for (step, op), count in shop.applied.items():
        # Each body applied its effect at most once per saga.
        assert count <= len(txns), (step, op, count)
    for step in ("reserve", "charge", "confirm"):
        undone = shop.applied[(step, "compensate")]
        assert undone <= shop.applied[(step, "action")]
        # Completed sagas keep their effects; compensated ones undo exactly what ran.
        assert shop.applied[(step, "action")] - undone == completed
    assert sim.stores["stock"].counter("apples").value == APPLES - n * completed
    assert sim.stores["payment"].counter("balance").value == -amount * completed
    host = sim.hosts["order"]
    assert host is not None
    assert host.orchestrator.stats().open == 0
    return completed


@pytest.mark.parametrize(("node", "kind", "when", "nth"), POINTS)
def test_one_crash_at_every_point(node: str, kind: str, when: str, nth: int) -> None:
    shop = Shop()
    sim = make_sim(seed=3, crashes=(CrashPoint(node, kind, when, nth=nth),), shop=shop)
    sim.begin_saga("order", "1", saga_steps(order="1"))
    settle(sim)
    assert check_saga(sim, shop, ["1"]) == 1  # a crash delays a saga, it does not fail it


@pytest.mark.parametrize(("node", "kind", "when", "nth"), POINTS)
def test_one_crash_while_compensating(node: str, kind: str, when: str, nth: int) -> None:
    shop = Shop()
    sim = make_sim(seed=5, crashes=(CrashPoint(node, kind, when, nth=nth),), shop=shop)
    sim.begin_saga("order", "1", saga_steps(amount=1000, order="1"))  # declined
    settle(sim)
    assert check_saga(sim, shop, ["1"], amount=1000) == 0
    assert sim.finished["1"].detail["detail"] == "card declined"


def test_try_again_is_retried_with_backoff_then_completes() -> None:
    shop = Shop(retries=2)
    sim = make_sim(shop=shop)
    sim.begin_saga("order", "1", saga_steps(order="1"))
    sim.run(30)
    assert check_saga(sim, shop, ["1"]) == 1
    host = sim.hosts["order"]
    assert host is not None
    assert host.orchestrator.stats().retries == 2


def test_retries_past_the_limit_compensate() -> None:
    shop = Shop(retries=100)
    sim = make_sim(shop=shop)
    sim.begin_saga("order", "1", saga_steps(order="1"))
    sim.run(60)
    assert check_saga(sim, shop, ["1"]) == 0
    detail = sim.finished["1"].detail
    assert detail == {"step": "charge", "status": "exhausted", "transport": False}


def test_a_dead_service_is_a_transport_failure_and_compensates() -> None:
    shop = Shop()
    sim = make_sim(shop=shop, crashes=(CrashPoint("payment", "invoke", "before", downtime=1e9),))
    sim.begin_saga("order", "1", saga_steps(order="1"))
    sim.run(120)
    host = sim.hosts["order"]
    assert host is not None
    stats = host.orchestrator.stats()
    # The charge never answers: transport failures up to the limit, then compensation in
    # reverse order, starting with the uncertain charge: it waits for payment to come back,
    # and the reserve stays until then.
    assert stats.timeouts >= sim.config.step_attempts
    assert stats.open == 1
    assert Journal(sim.stores["order"]).get("1")["s/charge/action"]["status"] == "exhausted"
    assert sim.stores["stock"].counter("apples").value == APPLES - 2
    sim.restart("payment")
    sim.run(60)
    assert check_saga(sim, shop, ["1"]) == 0
    assert Journal(sim.stores["payment"]).get("1")["b/charge/action"]["status"] == "refused"


crash_points = st.lists(
    st.builds(
        CrashPoint,
        node=st.sampled_from(NODES),
        kind=st.sampled_from(("invoke", "outcome")),
        when=st.sampled_from(("before", "after", "sent")),
        nth=st.integers(1, 6),
        downtime=st.floats(0.0, 8.0),
    ),
    max_size=5,
)


@settings(max_examples=200)
@given(
    seed=st.integers(0, 2**16),
    crashes=crash_points,
    loss=st.sampled_from((0.0, 0.2)),
    duplicate=st.sampled_from((0.0, 0.3)),
    sagas=st.lists(st.sampled_from((5, 1000)), min_size=1, max_size=3),
    retries=st.integers(0, 6),
)
def test_complete_or_compensate_under_any_faults(
    seed: int,
    crashes: list[CrashPoint],
    loss: float,
    duplicate: float,
    sagas: list[int],
    retries: int,
) -> None:
    shop = Shop(retries=retries)
    sim = make_sim(seed, tuple(crashes), shop=shop, loss=loss, duplicate=duplicate)
    ids: list[str] = []
    for i, amount in enumerate(sagas):
        if sim.hosts["order"] is not None:
            sim.begin_saga("order", str(i), saga_steps(amount=amount, order=str(i)))
            ids.append(str(i))
        sim.run(0.003)
    settle(sim, 120.0)
    for txn in ids:
        assert txn in sim.finished
    completed = sum(sim.finished[t].status == "completed" for t in ids)
    for txn, amount in zip(ids, sagas, strict=False):
        if amount > 100:
            assert sim.finished[txn].status == "compensated"  # declined: never completes
    for (step, op), count in shop.applied.items():
        assert count <= len(ids), (step, op)
    for step in ("reserve", "charge", "confirm"):
        assert shop.applied[(step, "action")] - shop.applied[(step, "compensate")] == completed
    spent = sum(
        a for t, a in zip(ids, sagas, strict=False) if sim.finished[t].status == "completed"
    )
    assert sim.stores["stock"].counter("apples").value == APPLES - 2 * completed
    assert sim.stores["payment"].counter("balance").value == -spent
