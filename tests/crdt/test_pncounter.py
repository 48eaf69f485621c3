"""PNCounter: increments, decrements, reset floors, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import PNCounter
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch


def wire(delta: Any) -> Any:
    """What a delta looks like after the network (tuples become lists)."""
    return unpackb(packb(delta))


def test_increment_and_decrement_return_their_deltas() -> None:
    c = PNCounter("a")
    assert c.value == 0
    assert c.increment(3) == [{"a": 3}, {}, {}, {}]
    assert c.increment() == [{"a": 4}, {}, {}, {}]
    assert c.decrement(2) == [{}, {"a": 2}, {}, {}]
    assert c.decrement() == [{}, {"a": 3}, {}, {}]
    assert c.value == 1
    assert c.increment(0) == [{"a": 4}, {}, {}, {}]


def test_on_change_sees_every_local_delta_but_not_remote_ones() -> None:
    seen: list[Any] = []
    c = PNCounter("a")
    c.on_change = seen.append
    d1 = c.increment(2)
    d2 = c.decrement(1)
    other = PNCounter("b")
    other.increment(5)
    c.apply(other.state())
    assert seen == [d1, d2]
    assert c.value == 6


def test_replicas_converge_and_value_sums_over_replicas() -> None:
    a, b = PNCounter("a"), PNCounter("b")
    da = a.increment(5)
    db = b.decrement(2)
    a.apply(wire(db))
    b.apply(wire(da))
    assert a.value == b.value == 3
    assert a.state() == b.state()


def test_apply_is_idempotent_and_old_deltas_do_not_go_back() -> None:
    a, b = PNCounter("a"), PNCounter("b")
    d1 = a.increment(1)
    d2 = a.increment(1)
    b.apply(d2)
    b.apply(d1)
    b.apply(d2)
    assert b.value == 2


@pytest.mark.parametrize("n", [-1, 1.5, "1", True, None])
def test_increment_and_decrement_refuse_anything_but_non_negative_ints(n: Any) -> None:
    c = PNCounter("a")
    with pytest.raises(InvalidOperation, match="non-negative int"):
        c.increment(n)
    with pytest.raises(InvalidOperation, match="non-negative int"):
        c.decrement(n)
    assert c.value == 0
    assert c.state() == [{}, {}, {}, {}]


def test_counts_beyond_64_bits_are_refused() -> None:
    c = PNCounter("a")
    c.increment(2**64 - 1)
    with pytest.raises(InvalidOperation, match="2\\*\\*64"):
        c.increment()
    c.decrement(2**64 - 1)
    with pytest.raises(InvalidOperation, match="2\\*\\*64"):
        c.decrement()
    assert c.value == 0


def test_reset_forgets_what_it_saw_but_keeps_concurrent_increments() -> None:
    a, b = PNCounter("a"), PNCounter("b")
    b.apply(a.increment(5))
    b.apply(a.decrement(1))
    reset = a.reset()
    assert reset == [{}, {}, {"a": 5}, {"a": 1}]
    assert a.value == 0
    concurrent = b.increment(2)  # b has not seen the reset
    a.apply(wire(concurrent))
    b.apply(wire(reset))
    assert a.value == b.value == 2
    assert a.state() == b.state()
    a.increment(1)
    assert a.value == 3


def test_reset_is_reported_to_on_change() -> None:
    seen: list[Any] = []
    c = PNCounter("a")
    c.increment(2)
    c.on_change = seen.append
    d = c.reset()
    assert seen == [d]


def test_state_is_canonical_and_from_state_round_trips() -> None:
    a, b = PNCounter("a"), PNCounter("b")
    a.apply(PNCounter("z").increment(1))
    a.apply(b.increment(1))
    assert list(a.state()[0]) == ["b", "z"]
    copy = PNCounter.from_state("c", wire(a.state()))
    assert copy.value == 2
    assert copy.replica == "c"
    assert packb(copy.state()) == packb(a.state())


def test_merge_joins_states_and_refuses_other_types() -> None:
    from microstatedb.crdt import AWSet

    a, b = PNCounter("a"), PNCounter("b")
    a.increment(1)
    b.increment(2)
    a.merge(b)
    assert a.value == 3
    with pytest.raises(TypeMismatch):
        a.merge(AWSet("b"))


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [{}, {}, {}],
        [{}, {}, {}, {}, {}],
        [{"a": -1}, {}, {}, {}],
        [{"a": 1.0}, {}, {}, {}],
        [{1: 1}, {}, {}, {}],
        [{}, {}, {}, []],
        [{"a": 1}, {}, {}, {"b": "x"}],
        [{"a": 2**64}, {}, {}, {}],
    ],
)
def test_malformed_deltas_raise_decode_error_and_change_nothing(bad: Any) -> None:
    c = PNCounter("a")
    c.increment(1)
    before = c.state()
    with pytest.raises(DecodeError):
        c.apply(bad)
    assert c.state() == before
    assert c.value == 1


def test_repr_shows_value() -> None:
    c = PNCounter("a")
    c.increment(4)
    assert repr(c) == "PNCounter(replica='a', value=4)"


def test_a_floor_above_this_replicas_own_count_hides_increments_up_to_it() -> None:
    # A floor can only run ahead of the local count when a replica restarted without its
    # state under the same id; the counter still adds up correctly.
    c = PNCounter("a")
    c.increment(2)
    c.decrement(2)
    c.apply([{}, {}, {"a": 5}, {"a": 5}])
    assert c.value == 0
    c.increment(1)
    c.decrement(1)
    assert c.value == 0
    c.increment(3)
    c.decrement(1)
    assert c.value == 1 - 0
    assert c.value == c._compute()
