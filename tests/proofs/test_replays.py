"""Counterexample-shaped schedules from the models, replayed against the real code.

Each mutant's counterexample is a schedule; here the same schedule drives the real
implementation, which must do what the unmutated model does.
"""

from __future__ import annotations

import random
from typing import Any

from microstatedb.clock import ManualClock
from microstatedb.errors import CircuitOpen
from microstatedb.protocols import Done, LeaseConfig, QuorumConfig, QuorumNode, Send
from microstatedb.protocols._barrier import Barrier, Journal, failed, ok
from microstatedb.protocols._quorum import KINDS, decode, encode
from microstatedb.protocols._twophase import Coordinator, Participant, TxnMessage, TxnSend
from microstatedb.replica import Store
from microstatedb.resilience import CircuitBreaker, State

NAMES = ["a", "b", "c"]


class _Net:
    def __init__(self) -> None:
        cfg = QuorumConfig(lease=LeaseConfig(duration=3.0, drift=0.0), timeout=10.0)
        self.nodes = {
            n: QuorumNode(n, NAMES, now=0.0, rng=random.Random(i), config=cfg)
            for i, n in enumerate(NAMES)
        }
        self.flight: list[tuple[str, str, bytes]] = []
        self.done: list[Done] = []
        for n in NAMES:
            for m in NAMES:
                if m != n:
                    self.nodes[n].receive(0.0, m, encode(10))

    def out(self, src: str, outputs: list[Any]) -> None:
        for o in outputs:
            if isinstance(o, Send):
                self.flight.append((src, o.to, o.payload))
            else:
                self.done.append(o)

    def deliver(self, now: float, pick: Any = None) -> bool:
        for i, (src, dst, payload) in enumerate(self.flight):
            if pick is None or pick(src, dst, KINDS[decode(payload)[0]]):
                del self.flight[i]
                self.out(dst, self.nodes[dst].receive(now, src, payload))
                return True
        return False

    def settle(self, now: float, pick: Any = None) -> None:
        while self.deliver(now, pick):
            pass


def _write(v: int) -> Any:
    return lambda _old: (v, None)


def test_lease_write_waits_for_the_invalidation_then_the_lease_read_misses() -> None:
    # The NO_INVALIDATE counterexample: "a" holds a lease on value 1, "b" writes value 2.
    net = _Net()
    a, b = net.nodes["a"], net.nodes["b"]
    a.submit(0.0, "k", _write(1))
    net.out("a", a.tick(0.0))
    net.settle(0.0)
    assert a.lease_read("k", 0.1) == (True, 1)
    b.submit(0.2, "k", _write(2))
    net.out("b", b.tick(0.2))
    # Deliver everything except the holder's invalidated answers.
    net.settle(0.2, lambda _s, _d, kind: kind != "invalidated")
    assert all(d.error is None for d in net.done)
    acked = [d for d in net.done if d.ballot[1].startswith("b.")]
    assert acked == [], "a write was acknowledged while the holder still trusted its lease"
    # The holder has seen the invalidation: its lease read misses although grants are live.
    assert a.lease_read("k", 0.3) == (False, None)
    net.settle(0.3)
    for name, node in net.nodes.items():  # the acceptors release what was waiting
        net.out(name, node.tick(0.4))
    net.settle(0.4)
    assert [d.error for d in net.done if d.ballot[1].startswith("b.")] == [None]
    assert a.value_of("k") == 2 or b.value_of("k") == 2


def test_lease_write_is_acknowledged_once_the_lease_runs_out_without_an_answer() -> None:
    # The holder never answers (its invalidated messages are lost): the acceptors wait the
    # lease out, as the model's _release step does.
    net = _Net()
    a, b = net.nodes["a"], net.nodes["b"]
    a.submit(0.0, "k", _write(1))
    net.out("a", a.tick(0.0))
    net.settle(0.0)
    b.submit(0.2, "k", _write(2))
    net.out("b", b.tick(0.2))
    net.settle(0.2, lambda _s, _d, kind: kind != "invalidated")
    net.flight = [f for f in net.flight if KINDS[decode(f[2])[0]] != "invalidated"]
    assert not [d for d in net.done if d.ballot[1].startswith("b.")]
    for now in (1.0, 2.0, 3.5):
        for name, node in net.nodes.items():
            net.out(name, node.tick(now))
        net.flight = [f for f in net.flight if KINDS[decode(f[2])[0]] != "invalidated"]
        net.settle(now, lambda _s, _d, kind: kind in ("accepted", "ping", "lease-grant"))
    assert [d.error for d in net.done if d.ballot[1].startswith("b.")] == [None]
    assert a.lease_read("k", 3.5)[0] is False


def test_causal_delivery_buffers_an_event_until_its_dependency_arrives() -> None:
    # The NO_READY counterexample: b1 (which saw a1) reaches c before a1 does.
    with Store("a") as a, Store("b") as b, Store("c") as c:
        a.counter("x").increment(1)
        b.apply(a.events_since({}))
        b.counter("y").increment(5)
        assert c.apply(b.events_since(a.version_vector)) == 0  # buffered, not applied
        assert c.counter("y").value == 0
        assert c.apply(a.events_since({})) == 2  # a1, then b1 from the buffer
        assert (c.counter("x").value, c.counter("y").value) == (1, 5)
        assert c.apply(b.events_since({})) == 0  # duplicates change nothing
        assert c.digest() == b.digest()


def _msgs(out: list[Any]) -> list[TxnMessage]:
    return [o.message for o in out if isinstance(o, TxnSend)]


def test_twopc_a_participant_that_voted_yes_never_terminates_alone() -> None:
    # The TERMINATE_AFTER_YES counterexample: p0 voted yes and is asked by p1.
    with Store("co") as cs, Store("p0") as s0, Store("p1") as s1:
        coord = Coordinator(Journal(cs))
        p0, p1 = Participant(Journal(s0)), Participant(Journal(s1))
        out = coord.begin(0.0, "t1", {"p0": [("counter", "x", 1)], "p1": [("counter", "y", 1)]})
        prepares = {o.to: o.message for o in out if isinstance(o, TxnSend)}
        vote0 = _msgs(p0.receive(0.0, prepares["p0"]))
        assert vote0[0].body["yes"] is True
        query = TxnMessage("query", "t1", "p1", {"coordinator": "co", "participants": ["p0", "p1"]})
        assert p0.receive(1.0, query) == []  # in doubt: no answer, and no abort
        assert "t1" in Journal(s0).txns()
        # The coordinator then commits; p0 follows.
        assert coord.receive(1.0, vote0[0]) == []
        vote1 = _msgs(p1.receive(1.0, prepares["p1"]))
        decided = _msgs(coord.receive(1.0, vote1[0]))
        assert {m.body["commit"] for m in decided} == {True}
        targets = [o.to for o in coord.tick(100.0) if isinstance(o, TxnSend)]
        assert sorted(targets) == ["p0", "p1"]  # unacknowledged decisions are resent
        p0.receive(2.0, decided[0])
        p1.receive(2.0, decided[0])
        assert s0.counter("x").value == 1
        assert s1.counter("y").value == 1


def test_twopc_an_unvoted_participant_answers_abort_and_then_votes_no() -> None:
    with Store("co") as cs, Store("p0") as s0:
        coord = Coordinator(Journal(cs))
        p0 = Participant(Journal(s0))
        out = coord.begin(0.0, "t2", {"p0": [("counter", "x", 1)]})
        query = TxnMessage("query", "t2", "p1", {"coordinator": "co", "participants": ["p0", "p1"]})
        answer = _msgs(p0.receive(0.5, query))
        assert [m.body["commit"] for m in answer] == [False]
        vote = _msgs(p0.receive(1.0, _msgs(out)[0]))
        assert vote[0].body["yes"] is False
        assert s0.counter("x").value == 0


def test_twopc_coordinator_restarted_before_deciding_aborts() -> None:
    with Store("co") as cs:
        coord = Coordinator(Journal(cs))
        coord.begin(0.0, "t3", {"p0": [("counter", "x", 1)]})
        again = Coordinator(Journal(cs), now=5.0)  # the restart: presumed abort
        sent = _msgs(again.recovered())
        assert [m.body["commit"] for m in sent] == [False]


def test_barrier_compensation_first_blocks_the_late_action() -> None:
    # The NO_BLOCK counterexample: the compensation overtakes its action.
    runs: list[str] = []
    with Store("s") as s:
        barrier = Barrier(Journal(s))
        comp = barrier.run("t", "pay", "compensate", lambda _s, _p: runs.append("c") or ok())
        assert comp.status == "null"
        assert runs == []
        act = barrier.run("t", "pay", "action", lambda _s, _p: runs.append("a") or ok())
        assert act.status == "refused"
        assert runs == []


def test_barrier_repeated_action_runs_once() -> None:
    # The NO_RECORD counterexample: the same action delivered twice.
    with Store("s") as s:
        barrier = Barrier(Journal(s))
        body = lambda _s, _p: ok(("counter", "paid", 1))  # noqa: E731
        first = barrier.run("t", "pay", "action", body)
        second = barrier.run("t", "pay", "action", body)
        assert (first.repeated, second.repeated) == (False, True)
        assert s.counter("paid").value == 1
        undo = barrier.run("t", "pay", "compensate", lambda _s, _p: ok(("counter", "paid", -1)))
        assert undo.status == "ok"
        assert s.counter("paid").value == 0
        assert barrier.run("t", "x", "compensate", lambda _s, _p: failed()).status == "null"


def _breaker(clock: ManualClock) -> CircuitBreaker:
    return CircuitBreaker(
        "b",
        sliding_window_size=2,
        minimum_calls=2,
        failure_rate_threshold=100.0,
        wait_in_open=1.0,
        permitted_calls_in_half_open=2,
        clock=clock,
    )


def test_breaker_half_open_admits_only_its_probes() -> None:
    # The NO_SLOTS counterexample: a third caller asks while two probes are out.
    clock = ManualClock(0.0)
    br = _breaker(clock)
    for _ in range(2):
        br.try_acquire().failure()  # type: ignore[union-attr]
    assert br.state is State.OPEN
    assert not br.try_acquire()
    clock.advance(1.5)
    probes = [br.try_acquire(), br.try_acquire()]
    assert all(probes)
    assert br.state is State.HALF_OPEN
    third = br.try_acquire()
    assert not third
    assert isinstance(third.error(), CircuitOpen)


def test_breaker_outcome_of_a_stale_permit_does_not_decide_half_open() -> None:
    # The NO_GEN counterexample: a permit from CLOSED reports during HALF_OPEN.
    clock = ManualClock(0.0)
    br = _breaker(clock)
    stale = br.try_acquire()
    for _ in range(2):
        br.try_acquire().failure()  # type: ignore[union-attr]
    clock.advance(1.5)
    probe = br.try_acquire()
    assert probe
    assert br.state is State.HALF_OPEN
    stale.success()  # type: ignore[union-attr]
    stale_again = br.try_acquire()
    assert stale_again
    assert br.state is State.HALF_OPEN
    probe.success()  # type: ignore[union-attr]
    stale_again.success()  # type: ignore[union-attr]
    assert br.state is State.CLOSED


def test_twopc_a_coordinator_replica_without_the_decision_stays_silent() -> None:
    # The REPLICA_TERMINATES counterexample: a participant in doubt asks a lagging replica.
    with Store("co") as cs, Store("co-r") as rs:
        coord = Coordinator(Journal(cs))
        replica = Coordinator(Journal(rs))
        coord.begin(0.0, "t4", {"p0": [("counter", "x", 1)]})
        rs.apply(cs.events_since({}))  # the replica has begin, not the decision
        query = TxnMessage("query", "t4", "p0", {"coordinator": "co", "participants": ["p0"]})
        assert replica.receive(1.0, query) == []
        vote = TxnMessage("vote", "t4", "p0", {"yes": True})
        assert {m.body["commit"] for m in _msgs(coord.receive(1.0, vote))} == {True}
        rs.apply(cs.events_since(rs.version_vector))
        assert [m.body["commit"] for m in _msgs(replica.receive(2.0, query))] == [True]


def test_consensus_change_builds_on_the_change_chosen_before() -> None:
    # The NO_ADOPT counterexample: "b" changes the key after "a"'s change was chosen at a
    # majority that "b"'s prepare only partly meets.
    net = _Net()
    a, b = net.nodes["a"], net.nodes["b"]

    def inc(v: Any) -> tuple[Any, Any]:
        return (v or 0) + 1, None

    a.submit(0.0, "k", inc)
    net.out("a", a.tick(0.0))
    net.settle(0.0, lambda _s, dst, _k: dst != "c")  # "c" never hears of a's change
    net.flight.clear()
    b.submit(0.1, "k", inc)
    net.out("b", b.tick(0.1))
    net.settle(0.1)
    for name, node in net.nodes.items():
        net.out(name, node.tick(0.2))
    net.settle(0.2)
    assert [d.error for d in net.done] == [None, None]
    assert sorted(n.value_of("k") for n in net.nodes.values())[-1] == 2
