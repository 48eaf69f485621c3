"""The 2PC and saga state machines driven by hand: messages in, messages out."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import packb
from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.protocols import (
    Coordinator,
    Finished,
    Journal,
    Orchestrator,
    Participant,
    SagaParticipant,
    SagaStep,
    TxnConfig,
    TxnMessage,
    TxnSend,
    decode_txn_message,
    encode_txn_message,
    ok,
)
from microstatedb.replica import Store

from ._shop import order_writes


def sends(out: list[object]) -> list[TxnSend]:
    return [o for o in out if isinstance(o, TxnSend)]


@given(
    st.sampled_from(("prepare", "vote", "decide", "ack", "query", "answer", "invoke", "outcome")),
    st.text(min_size=1, max_size=20),
    st.dictionaries(
        st.text(max_size=5), st.integers(-(2**63), 2**64 - 1) | st.text(max_size=5), max_size=4
    ),
)
def test_message_round_trip(kind: str, txn: str, body: dict[str, object]) -> None:
    msg = TxnMessage(kind, txn, "a", body)
    assert decode_txn_message(encode_txn_message(msg)) == msg


def test_values_msgpack_cannot_carry_are_refused() -> None:
    with pytest.raises(ConfigurationError):
        encode_txn_message(TxnMessage("vote", "t", "a", {"n": 2**70}))


def test_malformed_messages_are_refused() -> None:
    for raw in (
        b"\xc1",
        packb([2, "vote", "t", "a", {}]),
        packb([1, "nope", "t", "a", {}]),
        packb([1, "vote", "", "a", {}]),
        packb({"a": 1}),
    ):
        with pytest.raises(DecodeError):
            decode_txn_message(raw)


def test_config_is_checked() -> None:
    for bad in ({"vote_timeout": 0}, {"retry_base": 2.0, "retry_max": 1.0}, {"step_attempts": 0}):
        with pytest.raises(ConfigurationError):
            TxnConfig(**bad)  # type: ignore[arg-type]


def three() -> tuple[Coordinator, dict[str, Participant]]:
    cfg = TxnConfig()
    coord = Coordinator(Journal(Store("order")), config=cfg, rng=random.Random(1))
    parts = {
        n: Participant(Journal(Store(n)) if n != "order" else coord.journal, config=cfg)
        for n in ("order", "payment", "stock")
    }
    return coord, parts


def test_begin_refuses_bad_input() -> None:
    coord, _ = three()
    with pytest.raises(ConfigurationError):
        coord.begin(0, "a/b", order_writes())
    with pytest.raises(ConfigurationError):
        coord.begin(0, "t", {})
    coord.begin(0, "t", order_writes())
    with pytest.raises(ConfigurationError):
        coord.begin(0, "t", order_writes())


def test_missing_vote_times_out_into_abort_and_decisions_are_resent() -> None:
    coord, parts = three()
    prepares = coord.begin(0.0, "t", order_writes())
    for p in prepares[:2]:
        vote = parts[p.to].receive(0.0, p.message)
        assert coord.receive(0.0, vote[0].message) == []
    assert coord.next_deadline == pytest.approx(1.0)
    out = coord.tick(1.0)
    assert Finished("t", "aborted", {"timeout": ["stock"]}) in out
    assert {s.to for s in sends(out)} == {"order", "payment", "stock"}
    again = coord.tick(5.0)  # nobody acknowledged: sent again
    assert len(sends(again)) == 3
    assert coord.stats().resends == 1
    # A late vote after an abort gets the decision back.
    late = parts["stock"].receive(6.0, prepares[2].message)
    assert sends(coord.receive(6.0, late[0].message))[0].message.kind == "decide"


def test_conflicting_prepares_vote_no_without_waiting() -> None:
    _, parts = three()
    stock = parts["stock"]
    a = TxnMessage(
        "prepare",
        "a",
        "order",
        {"writes": [["counter", "apples", -1]], "participants": ["stock"], "coordinator": "order"},
    )
    b = a._replace(txn="b")
    assert sends(stock.receive(0, a))[0].message.body["yes"] is True
    vote = sends(stock.receive(0, b))[0].message.body
    assert vote["yes"] is False
    assert "locked" in vote["reason"]
    assert stock.locks == {"apples": "a"}
    # Repeated prepares answer the same vote.
    assert sends(stock.receive(0, a))[0].message.body["yes"] is True
    assert sends(stock.receive(0, b))[0].message.body["yes"] is False
    # A malformed prepare is a no vote, not a crash.
    bad = stock.receive(0, a._replace(txn="c", body={"writes": "x"}))
    assert sends(bad)[0].message.body["yes"] is False


def test_cooperative_termination_between_participants() -> None:
    coord, parts = three()
    prepares = {p.to: p.message for p in coord.begin(0.0, "t", order_writes())}
    votes = [parts[n].receive(0.0, m)[0].message for n, m in prepares.items()]
    decided = []
    for v in votes:
        decided += coord.receive(0.0, v)
    decide = {s.to: s.message for s in sends(decided)}
    # Only stock hears the commit; the coordinator then disappears.
    parts["stock"].receive(0.1, decide["stock"])
    asks = sends(parts["payment"].tick(5.0))
    assert {s.to for s in asks} == {"order", "stock"}
    answer = parts["stock"].receive(5.0, next(s.message for s in asks if s.to == "stock"))
    ack = parts["payment"].receive(5.0, answer[0].message)
    assert ack[0].to == "order"
    assert parts["payment"].journal.store.counter("balance").value == -5
    assert parts["payment"].stats().committed == 1


def test_a_participant_that_never_voted_answers_abort_and_then_votes_no() -> None:
    _, parts = three()
    q = TxnMessage("query", "t", "stock", {"coordinator": "order", "participants": ["payment"]})
    # A node outside the transaction has no vote to withhold: it does not answer.
    assert parts["order"].receive(0, q) == []
    answer = parts["payment"].receive(0, q)
    assert answer[0].message.body == {"commit": False}
    late = TxnMessage(
        "prepare", "t", "order", {"writes": [], "participants": ["payment"], "coordinator": "order"}
    )
    assert parts["payment"].receive(1, late)[0].message.body["yes"] is False


def test_presumed_abort_and_replicas() -> None:
    coord, _ = three()
    q = TxnMessage("query", "ghost", "stock", {"coordinator": "order"})
    assert sends(coord.receive(0, q))[0].message.body == {"commit": False}
    replica = Coordinator(Journal(Store("order-2")))
    assert replica.receive(0, q) == []  # a replica does not presume
    coord.begin(0, "t", order_writes())
    assert coord.receive(0, q._replace(txn="t")) == []  # still collecting votes


def test_coordinator_restart_resends_the_decision() -> None:
    coord, parts = three()
    prepares = coord.begin(0.0, "t", order_writes())
    for p in prepares:
        coord.receive(0.0, parts[p.to].receive(0.0, p.message)[0].message)
    again = Coordinator(coord.journal, now=3.0)
    out = again.recovered()
    assert Finished("t", "committed", "all voted yes") in out
    assert len(sends(out)) == 3
    assert again.recovered() == []
    for s in sends(out):
        again.receive(3.0, parts[s.to].receive(3.0, s.message)[0].message)
    assert "end" in coord.journal.get("t")
    assert again.next_deadline == float("inf")


def store_with(name: str) -> Journal:
    return Journal(Store(name))


def test_saga_begin_refuses_bad_input() -> None:
    o = Orchestrator(store_with("order"))
    with pytest.raises(ConfigurationError):
        o.begin(0, "t", [])
    with pytest.raises(ConfigurationError):
        o.begin(0, "t", [SagaStep("a", "s", "x"), SagaStep("a", "s", "y")])
    o.begin(0, "t", [SagaStep("a", "s", "x")])
    with pytest.raises(ConfigurationError):
        o.begin(0, "t", [SagaStep("a", "s", "x")])


def test_saga_participant_refuses_unknown_handlers_and_ignores_other_kinds() -> None:
    p = SagaParticipant(store_with("stock"), {"x": (lambda s, v: ok(), lambda s, v: ok())})
    inv = TxnMessage("invoke", "t", "order", {"branch": "a", "op": "action", "action": "nope"})
    assert p.receive(0, inv)[0].message.body["status"] == "failed"
    bad = inv._replace(body={"branch": "a/b", "op": "action", "action": "x"})
    assert p.receive(0, bad)[0].message.body["status"] == "failed"
    assert p.receive(0, inv._replace(kind="vote")) == []


def test_orchestrator_ignores_stale_and_foreign_outcomes() -> None:
    o = Orchestrator(store_with("order"))
    sends(o.begin(0, "t", [SagaStep("a", "s", "x"), SagaStep("b", "s", "x")]))
    stale = TxnMessage("outcome", "t", "s", {"branch": "b", "op": "action", "status": "ok"})
    assert o.receive(0, stale) == []
    assert o.receive(0, stale._replace(txn="other")) == []
    assert o.receive(0, stale._replace(kind="vote")) == []
    a_ok = stale._replace(body={"branch": "a", "op": "action", "status": "ok"})
    assert sends(o.receive(0, a_ok))[0].message.body["branch"] == "b"
    b_failed = stale._replace(body={"branch": "b", "op": "action", "status": "failed"})
    (comp,) = sends(o.receive(0, b_failed))
    assert comp.message.body == {**comp.message.body, "branch": "a", "op": "compensate"}
    # A compensation that reports failure is tried again (compensations must finish).
    comp_failed = stale._replace(body={"branch": "a", "op": "compensate", "status": "failed"})
    assert o.receive(0, comp_failed) == []
    assert o.stats().retries == 1
    (again,) = sends(o.tick(o.next_deadline))
    assert again.message.body["op"] == "compensate"
    done = stale._replace(body={"branch": "a", "op": "compensate", "status": "ok"})
    assert o.receive(1, done) == [
        Finished("t", "compensated", {"step": "b", "status": "failed", "detail": None})
    ]
    assert o.stats().compensated == 1


def test_only_the_orchestrator_resumes_its_sagas_not_a_replica() -> None:
    o = Orchestrator(store_with("order"))
    o.begin(0, "t", [SagaStep("a", "s", "x")])
    copy = Store("order-r")
    copy.apply(o.journal.store.events_since({}))
    assert Orchestrator(Journal(copy)).recovered() == []
    assert len(sends(Orchestrator(o.journal).recovered())) == 1
