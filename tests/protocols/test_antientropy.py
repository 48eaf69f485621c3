"""The anti-entropy state machine, driven by hand: no network, no clock."""

from __future__ import annotations

import random
from collections import deque

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.errors import ConfigurationError, CorruptData, UnknownNode
from microstatedb.protocols import (
    AntiEntropy,
    AntiEntropyConfig,
    DeltaMessage,
    PeerDown,
    Push,
    Request,
    Same,
    Send,
    Summary,
    decode_message,
    encode_message,
)
from microstatedb.replica import summarize


def make(names: list[str], seed: int = 0, **config: float) -> dict[str, AntiEntropy]:
    cfg = AntiEntropyConfig(**config)  # type: ignore[arg-type]
    return {
        n: AntiEntropy(n, msdb.Store(n), names, rng=random.Random(seed + i), config=cfg)
        for i, n in enumerate(names)
    }


def pump(nodes: dict[str, AntiEntropy], out: list[tuple[str, object]], now: float = 0.0) -> list:
    """Deliver every message (and the replies they cause) at once; returns what was sent."""
    queue = deque(out)
    seen = []
    while queue:
        src, item = queue.popleft()
        if isinstance(item, Send):
            msg = decode_message(item.payload)
            seen.append((src, item.to, msg))
            for reply in nodes[item.to].receive(now, src, item.payload):
                queue.append((item.to, reply))
    return seen


def tick_all(nodes: dict[str, AntiEntropy], now: float) -> list:
    out = [(n, item) for n, p in nodes.items() for item in p.tick(now)]
    return pump(nodes, out, now)


def test_two_nodes_converge_in_one_round_and_then_say_same() -> None:
    nodes = make(["a", "b"], fanout=0)
    nodes["a"].store.counter("x").increment(3)
    nodes["b"].store.set("s").add("v")
    sent = tick_all(nodes, 1.0)
    assert nodes["a"].store.digest() == nodes["b"].store.digest()
    kinds = {type(m) for _, _, m in sent}
    assert {Summary, Request, DeltaMessage} <= kinds
    sent = tick_all(nodes, 2.0)
    assert [type(m) for _, _, m in sent].count(Same) == 2
    stats = nodes["a"].stats()
    assert stats.rounds == 2
    assert stats.bytes_sent > 0
    assert stats.events_applied == 1


def test_back_pressure_bounds_every_batch() -> None:
    nodes = make(["a", "b"], fanout=0, max_batch=7)
    for _ in range(50):
        nodes["a"].store.counter("x").increment()
    sent = pump(nodes, [("a", o) for o in nodes["a"].tick(1.0)])
    deltas = [m for _, _, m in sent if isinstance(m, DeltaMessage)]
    assert len(deltas) == 8  # ceil(50 / 7), each asked for after the previous one
    assert all(msdb.replica.decode_batch(d.batch).events.__len__() <= 7 for d in deltas)
    assert [d.more for d in deltas] == [True] * 7 + [False]
    assert nodes["b"].store.counter("x").value == 50


def test_a_full_buffer_asks_for_smaller_batches() -> None:
    nodes = make(["a", "b"], fanout=0, max_batch=100, buffer_high=1)
    b = nodes["b"]
    # fill b's causal buffer with an event whose predecessor it lacks
    src = msdb.Store("z")
    src.counter("x").increment()
    first = src.events_since({})
    src.counter("x").increment()
    b.store.apply(src.events_since({"z": 1}))
    assert b.store.stats().buffered == 1
    nodes["a"].store.counter("y").increment()
    sent = tick_all(nodes, 1.0)
    windows = {m.max_events for s, _, m in sent if isinstance(m, Request) and s == "b"}
    assert windows == {10}
    b.store.apply(first)


def test_push_reaches_fanout_peers_with_only_fresh_local_events() -> None:
    names = [f"n{i}" for i in range(6)]
    nodes = make(names, fanout=2)
    nodes["n0"].store.counter("x").increment()
    out = nodes["n0"].tick(1.0)
    pushes = [o for o in out if isinstance(o, Send) and isinstance(decode_message(o.payload), Push)]
    assert len(pushes) == 2
    assert len({p.to for p in pushes}) == 2
    again = nodes["n0"].tick(2.0)
    assert not [
        o for o in again if isinstance(o, Send) and isinstance(decode_message(o.payload), Push)
    ]


@settings(max_examples=15)
@given(st.integers(0, 10_000))
def test_a_fleet_converges_under_random_writes(seed: int) -> None:
    rng = random.Random(seed)
    names = [f"n{i}" for i in range(6)]
    nodes = make(names, seed=seed, max_batch=5)
    for t in range(40):
        for _ in range(rng.randrange(3)):
            nodes[rng.choice(names)].store.counter(f"c{rng.randrange(3)}").increment()
        tick_all(nodes, float(t))
    for t in range(40, 80):
        tick_all(nodes, float(t))
        digests = {p.store.digest() for p in nodes.values()}
        if len(digests) == 1:
            break
    assert len(digests) == 1, f"no convergence for seed {seed}"


def test_gap_in_the_causal_buffer_opens_a_round_with_the_sender() -> None:
    nodes = make(["a", "b"], fanout=0)
    a, b = nodes["a"], nodes["b"]
    a.store.counter("x").increment()
    a.store.counter("x").increment()
    # b receives only the second event (as a push would bring it)
    from microstatedb.replica import delta_since

    batch = delta_since(a.store, {"a": 1}).data
    out = b.receive(0.0, "a", encode_message(Push(batch)))
    assert b.store.missing() == {"a": (1, 2)}
    assert [type(decode_message(o.payload)) for o in out if isinstance(o, Send)] == [Summary]
    pump(nodes, [("b", o) for o in out])
    assert b.store.counter("x").value == 2
    assert b.stats().gap_requests == 1


def test_unknown_senders_and_bad_messages_are_refused() -> None:
    nodes = make(["a", "b"])
    a = nodes["a"]
    with pytest.raises(UnknownNode):
        a.receive(0.0, "mallory", encode_message(Same()))
    with pytest.raises(CorruptData):
        a.receive(0.0, "b", b"\x93junk")
    with pytest.raises(CorruptData):
        a.receive(0.0, "b", encode_message(Push(b"not a batch")))
    assert a.store.stats().events_applied == 0


def test_stability_waits_for_every_member_and_removal_advances_it() -> None:
    nodes = make(["a", "b", "c"], fanout=0)
    a = nodes["a"]
    for _ in range(5):
        a.store.counter("x").increment()
    pump(nodes, [("a", o) for o in [Send("b", encode_message(Summary(summarize({}))))]])
    assert a.known_vector("b") is not None
    assert a.known_vector("c") is None
    assert a.stable_vector() == {}
    a.remove_peer("c")
    assert a.stable_vector() == {"a": 5}
    assert a.compact() == 5
    assert a.store.stats().events_in_log == 0


def test_requests_time_out_and_silent_peers_are_reported() -> None:
    nodes = make(["a", "b"], fanout=0, request_timeout=2.0)
    a = nodes["a"]
    a.store.counter("x").increment()
    out = a.tick(0.5)  # summary to b, never answered
    assert any(isinstance(o, Send) for o in out)
    later = a.tick(60.0)
    assert PeerDown("b") in later
    assert any(isinstance(o, Send) and o.to == "b" for o in later)  # still probed


@pytest.mark.parametrize(
    "kwargs",
    [{"interval": 0}, {"fanout": -1}, {"max_batch": 0}, {"max_push": 0}, {"request_timeout": 0}],
)
def test_config_is_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        AntiEntropyConfig(**kwargs)  # type: ignore[arg-type]


def test_a_lost_batch_is_sent_again_even_while_writes_go_on() -> None:
    nodes = make(["a", "b"], fanout=0, request_timeout=3.0)
    a, b = nodes["a"], nodes["b"]
    for _ in range(5):
        a.store.counter("x").increment()
    out = [("a", o) for o in a.tick(0.0)]
    # deliver the round by hand and lose the first batch
    queue = list(out)
    lost = False
    while queue:
        src, item = queue.pop(0)
        if not isinstance(item, Send):
            continue
        if isinstance(decode_message(item.payload), DeltaMessage) and not lost:
            lost = True
            continue
        queue += [(item.to, r) for r in nodes[item.to].receive(0.0, src, item.payload)]
    assert lost
    assert b.store.counter("x").value == 0
    for t in range(1, 15):  # a keeps writing and both keep opening rounds
        a.store.counter("x").increment()
        tick_all(nodes, float(t))
    assert b.store.counter("x").value == a.store.counter("x").value
