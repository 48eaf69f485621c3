"""AWSet: add-wins, observed-remove, element rules, bad input."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import AWSet
from microstatedb.errors import DecodeError, InvalidOperation


def wire(delta: Any) -> Any:
    return unpackb(packb(delta))


def test_add_remove_contains_len_iter() -> None:
    s = AWSet("a")
    assert s.value == frozenset()
    assert s.add("vip") == [[["vip", [["a", 1]]]], [{}, [["a", 1]]]]
    s.add(3)
    assert "vip" in s
    assert 3 in s
    assert "other" not in s
    assert len(s) == 2
    assert sorted(s, key=str) == [3, "vip"]
    assert s.remove("vip") == [[], [{}, [["a", 1]]]]
    assert s.value == frozenset({3})


def test_adding_again_replaces_the_dots_it_saw() -> None:
    s = AWSet("a")
    s.add("x")
    assert s.add("x") == [[["x", [["a", 2]]]], [{}, [["a", 2], ["a", 1]]]]
    assert s.state() == [[["x", [["a", 2]]]], [{"a": 2}, []]]


def test_an_add_concurrent_with_a_remove_survives() -> None:
    a, b = AWSet("a"), AWSet("b")
    b.apply(a.add("x"))
    removal = a.remove("x")
    concurrent = b.add("x")
    a.apply(wire(concurrent))
    b.apply(wire(removal))
    assert a.value == b.value == frozenset({"x"})
    assert a.state() == b.state()


def test_a_remove_takes_exactly_the_adds_it_had_seen() -> None:
    a, b, c = AWSet("a"), AWSet("b"), AWSet("c")
    seen_by_c = a.add("x")
    unseen = b.add("x")
    c.apply(seen_by_c)
    removal = c.remove("x")
    for replica in (a, b, c):
        replica.apply(wire(seen_by_c))
        replica.apply(wire(unseen))
        replica.apply(wire(removal))
    assert a.value == b.value == c.value == frozenset({"x"})
    a.remove("x")
    assert a.value == frozenset()


def test_a_remove_arriving_before_its_add_still_removes_it() -> None:
    a, c = AWSet("a"), AWSet("c")
    add = a.add("x")
    removal = a.remove("x")
    c.apply(removal)
    c.apply(add)
    assert c.value == frozenset()
    assert c.state() == a.state()


def test_remove_of_an_absent_element_is_an_empty_delta() -> None:
    s = AWSet("a")
    assert s.remove("nothing") == [[], [{}, []]]


def test_scalars_that_python_finds_equal_stay_distinct_elements() -> None:
    s = AWSet("a")
    for x in (1, True, 1.0, 0.0, -0.0, None, b"1", "1"):
        s.add(x)
    assert len(s) == 8
    s.remove(True)
    assert 1 in s
    assert 1.0 in s
    assert True not in s
    copy = AWSet.from_state("b", wire(s.state()))
    assert len(copy) == 7
    assert -0.0 in copy
    assert packb(copy.state()) == packb(s.state())
    assert copy.value == s.value


def test_subclasses_of_str_int_and_bytes_are_stored_as_the_base_type() -> None:
    import enum

    class Color(enum.IntEnum):
        RED = 1

    class Name(str):
        pass

    class Raw(bytes):
        pass

    s = AWSet("a")
    s.add(Color.RED)
    s.add(Name("n"))
    s.add(Raw(b"b"))
    assert 1 in s
    assert "n" in s
    assert b"b" in s
    assert {type(e) for e in s.value} == {int, str, bytes}


@pytest.mark.parametrize("bad", [[1], {"a": 1}, (1,), frozenset(), 2**64, -(2**63) - 1, 1j])
def test_elements_must_be_msgpack_scalars(bad: Any) -> None:
    s = AWSet("a")
    with pytest.raises(InvalidOperation, match=r"bool or None|64-bit"):
        s.add(bad)
    assert s.value == frozenset()


def test_nan_is_refused_because_it_could_never_be_removed() -> None:
    with pytest.raises(InvalidOperation, match="NaN"):
        AWSet("a").add(float("nan"))


def test_reset_removes_all_it_saw_and_keeps_concurrent_adds() -> None:
    a, b = AWSet("a"), AWSet("b")
    b.apply(a.add("x"))
    b.apply(a.add("y"))
    reset = a.reset()
    assert a.value == frozenset()
    concurrent = b.add("z")
    a.apply(wire(concurrent))
    b.apply(wire(reset))
    assert a.value == b.value == frozenset({"z"})


def test_merge_of_full_states_uses_the_version_vector() -> None:
    a, b = AWSet("a"), AWSet("b")
    for i in range(5):
        a.add(i)
    b.merge(a)
    for i in range(3):
        b.remove(i)
    a.merge(b)
    assert a.value == b.value == frozenset({3, 4})


def test_on_change_gets_every_local_delta() -> None:
    seen: list[Any] = []
    s = AWSet("a")
    s.on_change = seen.append
    d1 = s.add("x")
    d2 = s.remove("x")
    assert seen == [d1, d2]


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [[]],
        ["x", [{}, []]],
        [[["x"]], [{}, []]],
        [[["x", [["a", 1]]], ["x", [["a", 2]]]], [{}, []]],
        [[["x", [["a", 1]]], ["y", [["a", 1]]]], [{}, []]],
        [[[[1], [["a", 1]]]], [{}, []]],
        [[["x", [["a", -1]]]], [{}, []]],
        [[["x", "dots"]], [{}, []]],
        [[["x", [["a", 1]]]], [{}, [["b", 1]], 3]],
        [[[float("nan"), [["a", 1]]]], [{}, []]],
    ],
)
def test_malformed_deltas_raise_decode_error_and_change_nothing(bad: Any) -> None:
    s = AWSet("a")
    s.add("kept")
    before = s.state()
    with pytest.raises(DecodeError):
        s.apply(bad)
    assert s.state() == before
    assert s.value == frozenset({"kept"})


def test_local_adds_after_out_of_order_deltas_use_fresh_dots() -> None:
    a, b = AWSet("a"), AWSet("b")
    first = b.add("x")
    second = b.add("y")
    a.apply(second)  # b's second dot arrives first: it waits in the cloud
    assert a.add("z") == [[["z", [["a", 1]]]], [{}, [["a", 1]]]]
    a.apply(first)
    assert a.value == frozenset({"x", "y", "z"})
    assert a.state()[1] == [{"a": 1, "b": 2}, []]
