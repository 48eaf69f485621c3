"""Message shapes and membership with the phi-accrual failure detector."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import packb
from microstatedb.errors import ConfigurationError, CorruptData, UnknownNode
from microstatedb.protocols import (
    DeltaMessage,
    Membership,
    PeerDown,
    PeerUp,
    PhiAccrualDetector,
    Push,
    Request,
    Same,
    Summary,
    decode_message,
    encode_message,
)
from microstatedb.replica import summarize

MESSAGES = [
    Summary(summarize({"a": 1})),
    Same(),
    Request((0, 3), {"a": 2}, 100, True),
    DeltaMessage(b"batch", (1,), False),
    Push(b"batch"),
]


@pytest.mark.parametrize("msg", MESSAGES)
def test_messages_round_trip(msg: object) -> None:
    assert decode_message(encode_message(msg)) == msg  # type: ignore[arg-type]


@pytest.mark.parametrize(
    "fields",
    [
        [],
        "x",
        [99],
        [2, "extra"],
        [1, b"short"],
        [3, [0], {"a": -1}, 5, True],
        [3, [0], {"a": 1}, 0, True],
        [3, [0], {"a": 1}, 5, "yes"],
        [3, [99], {"a": 1}, 5, True],
        [3, "0", {"a": 1}, 5, True],
        [4, "not bytes", [0], False],
        [5, 7],
    ],
)
def test_malformed_messages_are_refused(fields: object) -> None:
    with pytest.raises(CorruptData):
        decode_message(packb(fields))


def test_garbage_is_refused() -> None:
    with pytest.raises(CorruptData):
        decode_message(b"\xc1\xc1")


def test_phi_grows_with_silence_and_adapts_to_rhythm() -> None:
    d = PhiAccrualDetector(threshold=8.0, first_interval=1.0)
    assert d.phi("x", 10.0) == 0.0  # never started
    for t in range(20):
        d.heartbeat("a", float(t))
    assert d.available("a", 20.0)
    assert d.phi("a", 21.0) < d.phi("a", 30.0)
    assert not d.available("a", 19.0 + 19.0)  # 19 s of silence for a 1 s rhythm
    d.heartbeat("a", 5.0)  # a late, reordered heartbeat does not move time back
    assert d.phi("a", 19.0) == 0.0
    d.forget("a")
    assert d.phi("a", 100.0) == 0.0


def test_phi_window_is_bounded() -> None:
    d = PhiAccrualDetector(window=3, first_interval=1.0)
    for t in (0.0, 10.0, 20.0, 30.0, 31.0, 32.0, 33.0):
        d.heartbeat("a", t)
    # only the last three (1 s) intervals count: 10 s of silence is suspicious now
    assert not d.available("a", 33.0 + 20.0)


@pytest.mark.parametrize(
    "kwargs",
    [{"threshold": 0}, {"window": 0}, {"first_interval": 0}, {"min_interval": -1}],
)
def test_detector_settings_are_checked(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        PhiAccrualDetector(**kwargs)  # type: ignore[arg-type]


def test_membership_verdicts_and_removal() -> None:
    m = Membership("a", ["b", "c", "a", "b"], PhiAccrualDetector(first_interval=1.0))
    assert m.peers == ["b", "c"]
    assert "b" in m
    assert "a" not in m
    m.heard("b", 30.0)
    assert m.transitions(30.0) == [PeerDown("c")]
    assert m.suspected(30.0) == ["c"]
    assert m.alive(30.0) == ["b"]
    assert m.transitions(30.0) == []
    m.heard("c", 31.0)
    assert m.transitions(31.0) == [PeerUp("c")]
    m.remove("c")
    with pytest.raises(UnknownNode, match="removed"):
        m.check("c")
    with pytest.raises(UnknownNode):
        m.remove("zz")
    m.add("c", 40.0)
    m.add("a", 40.0)
    assert m.peers == ["b", "c"]
    with pytest.raises(ConfigurationError):
        Membership("a", [""])


@given(st.integers(0, 2**32))
def test_pick_prefers_live_peers_and_respects_skip(seed: int) -> None:
    rng = random.Random(seed)
    m = Membership("a", [f"p{i}" for i in range(10)], PhiAccrualDetector(first_interval=1.0))
    for i in range(5):
        m.heard(f"p{i}", 100.0)
    picks = [m.pick(rng, 100.0, skip={"p0"}) for _ in range(50)]
    assert "p0" not in picks
    live = sum(p in {"p1", "p2", "p3", "p4"} for p in picks)
    assert live > 25  # suspected peers are only probed now and then
    assert m.pick(rng, 100.0, skip=set(m.peers)) is None
    assert Membership("a", []).pick(rng, 0.0) is None
