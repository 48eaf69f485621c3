"""Document: pycrdt updates as deltas, any-order apply, malformed updates refused."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import Document
from microstatedb.crdt._document import client_id_for
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch


def recording(replica: str) -> tuple[Document, list[Any]]:
    doc = Document(replica)
    seen: list[Any] = []
    doc.on_change = seen.append
    return doc, seen


def test_local_edits_become_update_deltas() -> None:
    doc, seen = recording("a")
    text = doc.text("notes")
    assert seen == []  # asking for a root is not an edit
    text += "hello"
    doc.array("list").append(1)
    doc.map("meta")["k"] = "v"
    assert len(seen) == 3
    assert all(type(u) is bytes for u in seen)
    assert doc.value == {"list": [1.0], "meta": {"k": "v"}, "notes": "hello"}


def test_a_transaction_is_one_delta() -> None:
    doc, seen = recording("a")
    text = doc.text("t")
    with doc.transaction():
        text += "a"
        text += "b"
    assert len(seen) == 1


def test_remote_updates_apply_in_any_order_and_are_not_reported() -> None:
    a, seen_a = recording("a")
    text = a.text("t")
    text += "one "
    text += "two"
    b, seen_b = recording("b")
    b.text("t")
    for update in reversed(seen_a):
        b.apply(unpackb(packb(update)))
    b.apply(seen_a[0])
    assert seen_b == []
    assert b.value == a.value == {"t": "one two"}
    assert b.state() == a.state()


def test_concurrent_edits_converge() -> None:
    a, seen_a = recording("a")
    b, seen_b = recording("b")
    ta, tb = a.text("t"), b.text("t")
    ta += "left"
    tb += "right"
    for u in seen_b:
        a.apply(u)
    for u in seen_a:
        b.apply(u)
    assert a.value == b.value
    assert len(a.value["t"]) == len("leftright")
    assert a.state() == b.state()


def test_client_ids_derive_from_the_replica_id() -> None:
    assert Document("a").doc.client_id == client_id_for("a")
    assert client_id_for("a") != client_id_for("b")
    assert 0 <= client_id_for("node-7") < 2**53


def test_from_state_and_merge() -> None:
    a = Document("a")
    a.map("m")["x"] = 1
    copy = Document.from_state("b", a.state())
    assert copy.map("m")["x"] == 1
    other = Document("c")
    other.map("m")["y"] = 2
    copy.merge(other)
    assert copy.value == {"m": {"x": 1.0, "y": 2.0}}


def test_a_root_keeps_its_type() -> None:
    doc = Document("a")
    doc.text("x")
    with pytest.raises(TypeMismatch, match="is a text"):
        doc.map("x")
    with pytest.raises(InvalidOperation, match="str"):
        doc.text(3)  # type: ignore[arg-type]


def test_reset_clears_the_roots_and_is_reported() -> None:
    a, seen = recording("a")
    a.text("t").insert(0, "abc")
    a.array("l").append("x")
    b = Document("b")
    b.apply(a.state())
    b.text("t")
    delta = a.reset()
    assert seen[-1] == delta
    assert a.value == {"l": [], "t": ""}
    b.apply(delta)
    assert b.value == {"t": ""}
    assert Document("c").reset() == b"\x00\x00"


def test_empty_document_state() -> None:
    d = Document("a")
    assert d.state() == b"\x00\x00"
    assert d._is_empty()
    d.text("t").insert(0, "x")
    assert not d._is_empty()


@pytest.mark.parametrize("bad", [b"\x01\x02garbage", b"", b"\x05", "text", 3, None])
def test_malformed_updates_raise_decode_error_and_change_nothing(bad: Any) -> None:
    doc = Document("a")
    doc.text("t").insert(0, "kept")
    before = doc.state()
    with pytest.raises(DecodeError):
        doc.apply(bad)
    assert doc.state() == before
    assert doc.value == {"t": "kept"}


def test_bytearray_and_memoryview_updates_are_accepted() -> None:
    a = Document("a")
    a.text("t").insert(0, "x")
    b, c = Document("b"), Document("c")
    b.apply(bytearray(a.state()))
    c.apply(memoryview(a.state()))
    assert b.state() == c.state() == a.state()


def test_updates_waiting_for_predecessors_are_held_until_they_fit() -> None:
    a, seen = recording("a")
    text = a.text("t")
    text += "ab"
    arr = a.array("l")
    arr.append(1)
    text += "c"
    b = Document("b")
    b.text("t")
    b.array("l")
    b.apply(seen[1])
    b.apply(seen[2])
    assert b.pending == 2  # both wait for the first insert
    assert b.value["t"] == ""  # the appended "c" waits for "ab"
    b.apply(seen[0])
    assert b.pending == 0
    assert b.value == a.value == {"l": [1.0], "t": "abc"}
    assert b.state() == a.state()


def test_a_delete_arriving_before_the_text_it_deletes_still_deletes_it() -> None:
    a, seen = recording("a")
    text = a.text("t")
    text += "hello"
    del text[0:2]
    b = Document("b")
    b.text("t")
    b.apply(seen[1])
    assert b.pending == 1
    b.apply(seen[0])
    assert b.pending == 0
    assert b.value == {"t": "llo"}
    assert b.state() == a.state()


def test_an_empty_transaction_is_not_a_delta() -> None:
    doc, seen = recording("a")
    doc.text("t")
    with doc.transaction():
        pass
    assert seen == []
