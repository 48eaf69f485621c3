"""LWWRegister: larger (hlc, replica) stamp wins, reset floors, bad input."""

from __future__ import annotations

import itertools
from typing import Any

import pytest

from microstatedb.clock import HLC, ManualClock
from microstatedb.codec import packb, unpackb
from microstatedb.crdt import LWWRegister
from microstatedb.errors import DecodeError, InvalidOperation


def wire(delta: Any) -> Any:
    return unpackb(packb(delta))


def fixed(ts: int) -> Any:
    return lambda: ts


def test_never_set_is_none_and_set_returns_its_delta() -> None:
    r = LWWRegister("a", clock=fixed(10))
    assert r.value is None
    assert r.stamp is None
    assert r.set("open") == [[10, "a"], "open", None]
    assert r.value == "open"
    assert r.stamp == (10, "a")


def test_larger_hlc_wins_whatever_the_order() -> None:
    early = LWWRegister("z", clock=fixed(5))
    late = LWWRegister("a", clock=fixed(9))
    d1, d2 = early.set("early"), late.set("late")
    early.apply(wire(d2))
    late.apply(wire(d1))
    assert early.value == late.value == "late"


def test_equal_hlc_ties_go_to_the_larger_replica_id() -> None:
    a = LWWRegister("a", clock=fixed(7))
    b = LWWRegister("b", clock=fixed(7))
    da, db = a.set("from a"), b.set("from b")
    a.apply(wire(db))
    b.apply(wire(da))
    assert a.value == b.value == "from b"
    assert a.state() == b.state()


def test_a_write_after_seeing_another_beats_it_even_with_a_lagging_clock() -> None:
    ahead = LWWRegister("b", clock=fixed(100))
    behind = LWWRegister("a", clock=fixed(1))
    behind.apply(ahead.set("seen"))
    d = behind.set("after")
    assert d[0] == [101, "a"]
    ahead.apply(d)
    assert ahead.value == behind.value == "after"


def test_default_clock_is_a_real_hlc_and_strictly_increases() -> None:
    r = LWWRegister("a")
    s1 = r.set(1)[0][0]
    s2 = r.set(2)[0][0]
    assert s2 > s1 > 0


def test_the_store_clock_can_be_an_hlc_on_a_manual_clock() -> None:
    hlc = HLC(ManualClock())
    r = LWWRegister("a", clock=hlc.now)
    r.set("x")
    assert r.stamp is not None
    assert r.stamp[0] == hlc.last


def test_container_values_are_copied_and_tuples_become_lists() -> None:
    r = LWWRegister("a", clock=itertools.count(1).__next__)
    items = [1, {"k": (2, 3)}]
    r.set(items)
    items.append(4)
    assert r.value == [1, {"k": [2, 3]}]


@pytest.mark.parametrize("bad", [{1, 2}, object(), 2**64, [object()], -(2**63) - 1])
def test_values_that_msgpack_cannot_carry_are_refused(bad: Any) -> None:
    r = LWWRegister("a", clock=fixed(1))
    with pytest.raises(InvalidOperation, match="msgpack"):
        r.set(bad)
    assert r.value is None


def test_reset_hides_what_it_saw_but_not_a_concurrent_write() -> None:
    a = LWWRegister("a", clock=fixed(10))
    b = LWWRegister("b", clock=fixed(20))
    b.apply(a.set("old"))
    reset = a.reset()
    assert reset == [None, None, [10, "a"]]
    assert a.value is None
    concurrent = b.set("new")
    a.apply(wire(concurrent))
    b.apply(wire(reset))
    assert a.value == b.value == "new"
    assert a.state() == b.state()


def test_reset_wins_over_a_write_it_saw_in_any_order() -> None:
    a = LWWRegister("a", clock=fixed(10))
    d = a.set("x")
    reset = a.reset()
    c = LWWRegister("c")
    c.apply(reset)
    c.apply(d)
    assert c.value is None
    assert c.state() == a.state() == [None, None, [10, "a"]]


def test_a_write_after_a_reset_is_visible_even_with_a_lagging_clock() -> None:
    a = LWWRegister("a", clock=fixed(10))
    a.set("x")
    a.reset()
    assert a.set("y")[0] == [11, "a"]
    assert a.value == "y"


def test_reset_of_an_empty_register_is_a_no_op() -> None:
    r = LWWRegister("a")
    assert r.reset() == [None, None, None]
    assert r.state() == [None, None, None]


def test_from_state_and_merge() -> None:
    a = LWWRegister("a", clock=fixed(3))
    a.set({"x": 1})
    copy = LWWRegister.from_state("b", wire(a.state()))
    assert copy.value == {"x": 1}
    other = LWWRegister("c", clock=fixed(4))
    other.set("later")
    copy.merge(other)
    assert copy.value == "later"


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        [[1, "a"], "v"],
        [[1], "v", None],
        [["1", "a"], "v", None],
        [[1, ""], "v", None],
        [[-1, "a"], "v", None],
        [None, "value without stamp", None],
        [[1, "a"], "v", [1, 2]],
        [[2**64, "a"], "v", None],
    ],
)
def test_malformed_deltas_raise_decode_error_and_change_nothing(bad: Any) -> None:
    r = LWWRegister("a", clock=fixed(1))
    r.set("kept")
    before = r.state()
    with pytest.raises(DecodeError):
        r.apply(bad)
    assert r.state() == before


def test_on_change_sees_each_write() -> None:
    seen: list[Any] = []
    r = LWWRegister("a", clock=fixed(1))
    r.on_change = seen.append
    d = r.set("x")
    assert seen == [d]
