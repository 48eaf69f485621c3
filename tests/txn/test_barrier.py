"""The journal and the idempotency barrier: records, redo after a cut, the barrier laws."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.protocols import Barrier, Journal, Outcome, failed, ok, retry
from microstatedb.protocols._barrier import apply_write, check_writes
from microstatedb.replica import Store


def journal(name: str = "stock") -> Journal:
    return Journal(Store(name))


def test_records_are_events_in_the_store_and_replicate() -> None:
    j = journal()
    rec = j.put("t1", "begin", {"at": 1.0})
    assert rec["seq"] == 1
    assert j.store.version_vector == {"stock": 1}
    assert j.get("t1") == {"begin": {"at": 1.0, "seq": 1, "node": "stock"}}
    assert j.get("nope") == {}
    assert j.txns() == ["t1"]
    other = Store("replica")
    other.apply(j.store.events_since(other.version_vector))
    assert Journal(other).get("t1") == j.get("t1")


def test_writes_are_checked() -> None:
    for bad in (
        "x",
        [("counter", "k")],
        [("cas", "k", 1)],
        [("counter", "", 1)],
        [("counter", "txn/x", 1)],
        [("counter", "k", 1.5)],
        [("counter", "k", True)],
    ):
        with pytest.raises(ConfigurationError):
            check_writes(bad)
    assert check_writes([["add", "s", 1]]) == [("add", "s", 1)]


def test_every_write_kind_applies_one_event() -> None:
    s = Store("a")
    for w in (
        ("counter", "c", 3),
        ("counter", "c", -1),
        ("register", "r", "x"),
        ("add", "s", 1),
        ("discard", "s", 2),
    ):
        before = s.version_vector.get("a", 0)
        apply_write(s, w)
        assert s.version_vector["a"] == before + 1
    assert s.value() == {"c": 2, "r": "x", "s": frozenset({1})}


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=6), st.data())
def test_redo_applies_exactly_the_writes_a_crash_cut(
    deltas: list[int], data: st.DataObject
) -> None:
    s = Store("a")
    j = Journal(s)
    writes = [("counter", "c", d) for d in deltas]
    cut = data.draw(st.integers(0, len(writes)))
    # What a crash leaves: the record, and only the first `cut` writes after it.
    j.put("t", "outcome/a", {"apply": True, "writes": [list(w) for w in writes]})
    for w in writes[:cut]:
        apply_write(s, w)
    assert j.redo() == len(writes) - cut
    assert s.counter("c").value == sum(deltas)
    assert j.redo() == 0  # and again: nothing twice
    assert s.counter("c").value == sum(deltas)


def test_redo_leaves_replicated_records_to_their_origin() -> None:
    a = journal("a")
    for _ in range(5):
        a.store.counter("other").increment()
    a.put_and_apply("t", "outcome/a", {"writes": [["counter", "c", 1]]})  # a's event 6
    b = journal("b")
    for _ in range(6):  # b's own sequence reaches 6 too
        b.store.counter("mine").increment()
    b.store.apply(a.store.events_since({}))
    assert b.redo() == 0
    assert b.store.counter("c").value == 1  # replicated once, not applied again


def test_redo_ignores_intents() -> None:
    j = journal("a")
    j.put("t", "prepared/a", {"writes": [["counter", "c", 1]]})
    assert j.redo() == 0
    assert "c" not in j.store


def take(n: int):  # type: ignore[no-untyped-def]
    def body(store: Store, payload: object) -> Outcome:
        return ok(("counter", "apples", -n))

    return body


def give(n: int):  # type: ignore[no-untyped-def]
    def body(store: Store, payload: object) -> Outcome:
        return ok(("counter", "apples", n))

    return body


def test_a_repeated_action_runs_once() -> None:
    b = Barrier(journal())
    first = b.run("t", "reserve", "action", take(2))
    again = b.run("t", "reserve", "action", take(2))
    assert (first.status, first.repeated) == ("ok", False)
    assert (again.status, again.repeated) == ("ok", True)
    assert b.journal.store.counter("apples").value == -2


def test_compensation_without_action_is_null_and_blocks_the_action() -> None:
    b = Barrier(journal())
    comp = b.run("t", "reserve", "compensate", give(2))
    assert comp.status == "null"
    late = b.run("t", "reserve", "action", take(2))
    assert late.status == "refused"
    assert late.repeated
    assert "apples" not in b.journal.store
    assert b.run("t", "reserve", "compensate", give(2)).repeated


def test_compensation_of_a_failed_action_is_null() -> None:
    b = Barrier(journal())
    res = b.run("t", "charge", "action", lambda s, p: failed("declined"))
    assert (res.status, res.detail) == ("failed", "declined")
    assert b.run("t", "charge", "compensate", give(5)).status == "null"


def test_retry_records_nothing_so_the_action_may_run_later() -> None:
    b = Barrier(journal())
    assert b.run("t", "x", "action", lambda s, p: retry("busy")).status == "retry"
    assert b.journal.get("t") == {}
    assert b.run("t", "x", "action", take(1)).status == "ok"
    assert b.run("t", "x", "compensate", give(1)).status == "ok"
    assert b.journal.store.counter("apples").value == 0


def test_bad_barrier_input_is_refused() -> None:
    b = Barrier(journal())
    with pytest.raises(ConfigurationError):
        b.run("t", "x", "undo", take(1))
    with pytest.raises(ConfigurationError):
        b.run("t", "a/b", "action", take(1))
    with pytest.raises(ConfigurationError):
        b.run("t", "x", "action", lambda s, p: 42)  # type: ignore[arg-type,return-value]
    with pytest.raises(ConfigurationError):
        Outcome("maybe")
    with pytest.raises(ConfigurationError):
        Outcome("failed", (("counter", "k", 1),))
    b.journal.put("t", "b/y/action", {"at": 0})
    with pytest.raises(DecodeError):
        b.run("t", "y", "action", take(1))


ops = st.lists(st.tuples(st.sampled_from(("action", "compensate")), st.booleans()), max_size=8)


@given(ops)
def test_barrier_law_any_order_of_repeats(sequence: list[tuple[str, bool]]) -> None:
    # Whatever order and repetition of action and compensation arrive in, the net effect is
    # the action applied once and undone once, or neither, or the action alone (no comp).
    b = Barrier(journal())
    for op, _ in sequence:
        b.run("t", "r", op, take(3) if op == "action" else give(3))
    value = b.journal.store.counter("apples").value if "apples" in b.journal.store else 0
    ops_seen = [op for op, _ in sequence]
    if "compensate" in ops_seen:
        assert value == 0
    elif "action" in ops_seen:
        assert value == -3
    else:
        assert value == 0
