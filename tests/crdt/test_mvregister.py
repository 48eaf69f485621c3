"""MVRegister: concurrent writes all stay, a write replaces what it saw."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import MVRegister
from microstatedb.errors import DecodeError, InvalidOperation


def wire(delta: Any) -> Any:
    return unpackb(packb(delta))


def test_never_set_is_empty_and_set_replaces() -> None:
    r = MVRegister("a")
    assert r.value == ()
    assert r.set("x") == [[[["a", 1], "x"]], [{}, [["a", 1]]]]
    assert r.set("y") == [[[["a", 2], "y"]], [{}, [["a", 1], ["a", 2]]]]
    assert r.value == ("y",)


def test_concurrent_writes_are_all_kept_ordered_by_dot() -> None:
    a, b = MVRegister("a"), MVRegister("b")
    da, db = a.set("from a"), b.set("from b")
    a.apply(wire(db))
    b.apply(wire(da))
    assert a.value == b.value == ("from a", "from b")
    assert a.state() == b.state()


def test_a_write_after_seeing_both_replaces_both() -> None:
    a, b = MVRegister("a"), MVRegister("b")
    db = b.set(2)
    a.set(1)
    a.apply(db)
    d = a.set(3)
    b.apply(wire(d))
    assert a.value == b.value == (3,)


def test_old_deltas_arriving_late_do_not_come_back() -> None:
    a, c = MVRegister("a"), MVRegister("c")
    d1 = a.set(1)
    d2 = a.set(2)
    c.apply(d2)
    c.apply(d1)
    assert c.value == (2,)


def test_reset_removes_what_it_saw_and_keeps_a_concurrent_write() -> None:
    a, b = MVRegister("a"), MVRegister("b")
    b.apply(a.set("seen"))
    reset = a.reset()
    assert a.value == ()
    concurrent = b.set("concurrent")
    a.apply(wire(concurrent))
    b.apply(wire(reset))
    assert a.value == b.value == ("concurrent",)


def test_values_are_checked() -> None:
    with pytest.raises(InvalidOperation):
        MVRegister("a").set({1, 2})


def test_from_state_round_trips() -> None:
    a, b = MVRegister("a"), MVRegister("b")
    a.apply(b.set([1]))
    a.apply(MVRegister("c").set(None))
    copy = MVRegister.from_state("z", wire(a.state()))
    assert copy.value == ([1], None)
    assert packb(copy.state()) == packb(a.state())


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [[]],
        ["x", [{}, []]],
        [[["a", 1]], [{}, []]],
        [[[["a", 0], 1]], [{}, []]],
        [[[["a", 1], 1], [["a", 1], 2]], [{}, []]],
        [[], [{}]],
        [[[["a", 1], 1, 2]], [{}, []]],
    ],
)
def test_malformed_deltas_raise_decode_error_and_change_nothing(bad: Any) -> None:
    r = MVRegister("a")
    r.set("kept")
    before = r.state()
    with pytest.raises(DecodeError):
        r.apply(bad)
    assert r.state() == before
