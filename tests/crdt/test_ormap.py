"""ORMap: nested CRDTs, add-wins presence, update-wins remove, one delta per change."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import AWSet, LWWRegister, MVRegister, ORMap, PNCounter
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch


def wire(delta: Any) -> Any:
    return unpackb(packb(delta))


def fixed(ts: int) -> Any:
    return lambda: ts


def test_child_handles_are_the_standalone_types() -> None:
    m = ORMap("a", clock=fixed(5))
    assert isinstance(m.counter("c"), PNCounter)
    assert isinstance(m.register("r"), LWWRegister)
    assert isinstance(m.mvregister("v"), MVRegister)
    assert isinstance(m.set("s"), AWSet)
    assert isinstance(m.map("m"), ORMap)
    assert m.counter("c") is m.counter("c")


def test_a_key_is_present_only_after_an_update_inside_it() -> None:
    m = ORMap("a", clock=fixed(5))
    m.counter("items")
    assert "items" not in m
    assert m.value == {}
    assert m.state() == [[], [{}, []], []]
    m.counter("items").increment(2)
    m.register("status").set("open")
    m.set("tags").add("vip")
    m.mvregister("note").set("n")
    m.map("inner").counter("x").increment()
    assert "items" in m
    assert 3 not in m
    assert m.keys() == ["inner", "items", "note", "status", "tags"]
    assert len(m) == 5
    assert m.kind_of("tags") == "set"
    assert m.kind_of("nothing") is None
    assert m.value == {
        "items": 2,
        "status": "open",
        "tags": frozenset({"vip"}),
        "note": ("n",),
        "inner": {"x": 1},
    }


def test_a_child_mutation_is_one_map_delta_given_to_the_root_on_change() -> None:
    seen: list[Any] = []
    m = ORMap("a")
    m.on_change = seen.append
    inner = m.map("cart")
    inner.on_change = lambda d: pytest.fail("a nested map reports to its root only")
    returned = inner.counter("items").increment(3)
    assert len(seen) == 1
    assert seen[0] is returned
    presence, ctx, children = returned
    assert presence == [[["cart", "map"], [["a", 1]]]]
    assert ctx == [{}, [["a", 1]]]
    assert children[0][:2] == ["cart", "map"]
    other = ORMap("b")
    other.apply(wire(returned))
    assert other.value == {"cart": {"items": 3}}


def test_asking_for_a_key_as_another_kind_raises_type_mismatch() -> None:
    m = ORMap("a")
    m.counter("k").increment()
    with pytest.raises(TypeMismatch, match="holds a counter"):
        m.set("k")
    m.remove("k")
    m.set("k").add(1)
    assert m.value == {"k": frozenset({1})}


def test_keys_must_be_str() -> None:
    m = ORMap("a")
    with pytest.raises(InvalidOperation, match="str"):
        m.counter(1)  # type: ignore[arg-type]
    with pytest.raises(InvalidOperation, match="str"):
        m.remove(1)  # type: ignore[arg-type]


def test_remove_then_the_key_restarts_from_empty() -> None:
    m = ORMap("a")
    m.counter("c").increment(5)
    m.set("s").add("x")
    m.remove("c")
    m.remove("s")
    assert m.value == {}
    m.counter("c").increment(1)
    m.set("s").add("y")
    assert m.value == {"c": 1, "s": frozenset({"y"})}


def test_an_update_concurrent_with_a_remove_keeps_the_key_with_only_the_update() -> None:
    a, b = ORMap("a"), ORMap("b")
    b.apply(a.counter("items").increment(5))
    b.apply(a.set("tags").add("old"))
    removals = [a.remove("items"), a.remove("tags")]
    updates = [b.counter("items").increment(2), b.set("tags").add("new")]
    for d in updates:
        a.apply(wire(d))
    for d in removals:
        b.apply(wire(d))
    assert a.value == b.value == {"items": 2, "tags": frozenset({"new"})}
    assert a.state() == b.state()


def test_a_remove_that_saw_every_update_removes_the_key_everywhere() -> None:
    a, b = ORMap("a"), ORMap("b")
    a.apply(b.register("r").set("x"))
    removal = a.remove("r")
    b.apply(wire(removal))
    assert a.value == b.value == {}
    assert "r" not in b


def test_nested_map_remove_resets_the_whole_subtree() -> None:
    a, b = ORMap("a"), ORMap("b")
    b.apply(a.map("cart").counter("n").increment(4))
    b.apply(a.map("cart").set("s").add(1))
    removal = a.remove("cart")
    concurrent = b.map("cart").counter("n").increment(1)
    a.apply(wire(concurrent))
    b.apply(wire(removal))
    assert a.value == b.value == {"cart": {"n": 1}}
    assert a.state() == b.state()


def test_remove_inside_a_nested_map_is_wrapped_by_the_root() -> None:
    seen: list[Any] = []
    a = ORMap("a")
    a.map("x").counter("y").increment()
    a.on_change = seen.append
    d = a.map("x").remove("y")
    assert seen == [d]
    b = ORMap("b")
    b.apply(wire(a.state()))
    assert b.value == {"x": {}}


def test_reset_of_a_map_and_through_a_child_handle() -> None:
    a = ORMap("a")
    a.counter("c").increment(2)
    a.map("m").set("s").add("x")
    delta = a.reset()
    assert a.value == {}
    b = ORMap("b")
    b.apply(wire(delta))
    assert b.value == {}
    # reset through a handle clears the child but keeps the key (it is an update inside it)
    a.counter("c").increment(3)
    a.counter("c").reset()
    assert a.value == {"c": 0}


def test_a_key_created_concurrently_as_two_kinds_keeps_both_and_shows_one() -> None:
    a, b = ORMap("a"), ORMap("b")
    da = a.counter("k").increment(1)
    db = b.set("k").add("x")
    a.apply(wire(db))
    b.apply(wire(da))
    assert a.value == b.value == {"k": frozenset({"x"})}
    assert a.state() == b.state()
    # both fields stay reachable, so nothing is lost; removing the key removes both
    a.counter("k").increment(1)
    assert a.counter("k").value == 2
    a.remove("k")
    assert a.value == {}


def test_state_omits_children_that_were_only_asked_for() -> None:
    a, b = ORMap("a"), ORMap("b")
    a.counter("asked")
    a.set("s").add(1)
    b.apply(a.state())
    assert packb(a.state()) == packb(b.state())
    copy = ORMap.from_state("c", wire(a.state()))
    assert copy.value == {"s": frozenset({1})}


def test_removed_keys_keep_their_floors_as_tombstones_in_the_state() -> None:
    a = ORMap("a")
    a.counter("c").increment(7)
    a.remove("c")
    state = a.state()
    assert state[0] == []
    assert state[2] == [["c", "counter", [{"a": 7}, {}, {"a": 7}, {}]]]


def test_registers_in_a_map_use_the_maps_clock() -> None:
    m = ORMap("a", clock=fixed(42))
    m.register("r").set("x")
    assert m.register("r").stamp == (42, "a")


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [[], [{}, []]],
        [[], [{}, []], "kids"],
        [[[["k", "nope"], [["a", 1]]]], [{}, []], []],
        [[[["k"], [["a", 1]]]], [{}, []], []],
        [[], [{}, []], [["k", "counter"]]],
        [[], [{}, []], [["k", "counter", [{}, {}, {}, {"a": -1}]]]],
        [[], [{}, []], [["k", "document", b""]]],
        [[], [{}, []], [["k", "set", [[], [{}, []]]], ["k", "set", [[], [{}, []]]]]],
        [[], [{}, []], [["ok", "counter", [{"a": 1}, {}, {}, {}]], [1, "counter", []]]],
    ],
)
def test_malformed_deltas_raise_decode_error_and_change_nothing(bad: Any) -> None:
    m = ORMap("a")
    m.counter("ok").increment(1)
    before = m.state()
    with pytest.raises(DecodeError):
        m.apply(bad)
    assert m.state() == before
    assert m.value == {"ok": 1}


def test_a_present_key_with_an_empty_child_reads_as_empty_on_another_replica() -> None:
    a, b = ORMap("a"), ORMap("b")
    a.set("k").remove("x")  # the key becomes present, its set stays empty
    b.apply(a.state())
    assert b.value == a.value == {"k": frozenset()}
