"""DotContext: compact version vector plus cloud, with a unique encoded form."""

from __future__ import annotations

import pytest

from microstatedb.crdt import DotContext
from microstatedb.errors import DecodeError


def test_next_dot_counts_per_replica_from_one() -> None:
    ctx = DotContext()
    assert ctx.next_dot("a") == ("a", 1)
    assert ctx.next_dot("a") == ("a", 2)
    assert ctx.next_dot("b") == ("b", 1)
    assert ctx.vv == {"a": 2, "b": 1}
    assert ctx.cloud == set()


def test_out_of_order_dots_wait_in_the_cloud_then_compact() -> None:
    ctx = DotContext()
    ctx.add(("a", 3))
    ctx.add(("a", 2))
    assert ctx.cloud == {("a", 2), ("a", 3)}
    assert ("a", 3) in ctx
    assert ("a", 1) not in ctx
    ctx.add(("a", 1))
    assert ctx.vv == {"a": 3}
    assert ctx.cloud == set()


def test_add_of_a_seen_dot_changes_nothing() -> None:
    ctx = DotContext({"a": 2})
    ctx.add(("a", 1))
    assert ctx.encode() == [{"a": 2}, []]


def test_next_dot_skips_dots_already_in_the_cloud() -> None:
    ctx = DotContext()
    ctx.cloud = {("a", 1), ("a", 2)}  # a non-compact context, as if built by hand
    assert ctx.next_dot("a") == ("a", 3)
    assert ctx.vv == {"a": 3}
    assert ctx.cloud == set()


def test_join_is_union_and_compacts() -> None:
    a = DotContext({"a": 1}, [("b", 2)])
    b = DotContext({"b": 1}, [("a", 3)])
    a.join(b)
    assert a.vv == {"a": 1, "b": 2}
    assert a.cloud == {("a", 3)}
    assert a.dots() == [("a", 1), ("a", 3), ("b", 1), ("b", 2)]


def test_encode_is_sorted_and_round_trips() -> None:
    ctx = DotContext({"z": 1, "a": 2}, [("q", 5), ("b", 3)])
    enc = ctx.encode()
    assert list(enc[0]) == ["a", "z"]
    assert enc[1] == [["b", 3], ["q", 5]]
    back = DotContext.decode(enc)
    assert back == ctx
    assert back.copy() == ctx
    assert back != DotContext()
    assert (ctx == "x") is False
    assert "DotContext" in repr(ctx)


def test_decode_drops_zero_entries_and_compacts() -> None:
    ctx = DotContext.decode([{"a": 0, "b": 1}, [["b", 2], ["c", 1]]])
    assert ctx.vv == {"b": 2, "c": 1}
    assert ctx.cloud == set()
    assert DotContext().is_empty()
    assert not ctx.is_empty()


@pytest.mark.parametrize(
    "bad",
    [
        None,
        [],
        [{}, [], 1],
        [[], []],
        [{"a": -1}, []],
        [{"a": "1"}, []],
        [{1: 1}, []],
        [{"": 1}, []],
        [{}, [["a", 0]]],
        [{}, [["a"]]],
        [{}, [[1, 1]]],
        [{}, "ab"],
        [{}, [["a", True]]],
        [{}, [["a", 2**64]]],
    ],
)
def test_decode_rejects_malformed_contexts(bad: object) -> None:
    with pytest.raises(DecodeError):
        DotContext.decode(bad)
