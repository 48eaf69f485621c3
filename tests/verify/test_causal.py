"""Causal consistency (CC, CM, CCv) by bad patterns, and session guarantees."""

from __future__ import annotations

import random
from collections.abc import Hashable
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify import (
    GUARANTEES,
    History,
    HistoryEvent,
    Operation,
    Verdict,
    check_causal,
    check_sessions,
)

Step = tuple[Hashable, str, str, Any]  # (session, f, key, value or read result)


def build(steps: list[Step]) -> list[Operation]:
    """Operations one after another in time, in the order given."""
    ops = []
    for i, (session, f, key, v) in enumerate(steps):
        value, output = (v, None) if f == "write" else (None, v)
        ops.append(Operation(i, session, f, key, value, output, "ok", 2 * i, 2 * i + 1, line=i + 1))
    return ops


def names(ops: list[Operation], level: str) -> set[str]:
    return {p.name for p in check_causal(ops, level).patterns}


def test_sequential_history_is_causal_at_every_level() -> None:
    ops = build(
        [
            ("a", "write", "x", 1),
            ("b", "read", "x", 1),
            ("b", "write", "y", 2),
            ("a", "read", "y", 2),
            ("a", "read", "z", None),
        ]
    )
    for level in ("cc", "cm", "ccv"):
        result = check_causal(ops, level)
        assert result.ok, result.patterns
        assert result.level == level


def test_thin_air_read() -> None:
    assert names(build([("a", "read", "x", 7)]), "cc") == {"ThinAirRead"}


def test_write_co_init_read() -> None:
    ops = build([("a", "write", "x", 1), ("a", "read", "x", None)])
    assert names(ops, "cc") == {"WriteCOInitRead"}


def test_write_co_read() -> None:
    # b sees 2 (written after a's 1 in a's program order), then reads the older 1
    ops = build(
        [
            ("a", "write", "x", 1),
            ("a", "write", "x", 2),
            ("b", "read", "x", 2),
            ("b", "read", "x", 1),
        ]
    )
    result = check_causal(ops, "cc")
    assert result.verdict is Verdict.VIOLATED
    assert {p.name for p in result.patterns} == {"WriteCORead"}
    (pattern,) = result.patterns
    assert [op.line for op in pattern.operations] == [1, 2, 4]
    assert "overwritten" in pattern.text


def test_cyclic_co() -> None:
    # each session reads the other's later write before writing it: causality loops
    ops = build(
        [
            ("a", "read", "y", 1),
            ("b", "read", "x", 1),
            ("a", "write", "x", 1),
            ("b", "write", "y", 1),
        ]
    )
    result = check_causal(ops, "cc")
    assert [p.name for p in result.patterns] == ["CyclicCO"]
    assert len(result.patterns[0].operations) == 4


def test_ccv_needs_one_arbitration_order() -> None:
    # two concurrent writes seen in opposite orders by two sessions: CC and CM allow it,
    # causal convergence does not (no single last-writer order explains both)
    ops = build(
        [
            ("a", "write", "x", 1),
            ("b", "write", "x", 2),
            ("c", "read", "x", 1),
            ("c", "read", "x", 2),
            ("d", "read", "x", 2),
            ("d", "read", "x", 1),
        ]
    )
    assert check_causal(ops, "cc").ok
    assert check_causal(ops, "cm").ok
    assert names(ops, "ccv") == {"CyclicCF"}


def test_cm_write_hb_init_read() -> None:
    # p reads x=2, then y as initial, then (through c) learns of x=1, then reads x=2 again:
    # for p, x=1 must come before x=2, so y=1 (before x=1) came before p's read of y
    ops = build(
        [
            ("a", "write", "y", 1),
            ("a", "write", "x", 1),
            ("b", "write", "x", 2),
            ("c", "read", "x", 1),
            ("c", "write", "z", 1),
            ("p", "read", "x", 2),
            ("p", "read", "y", None),
            ("p", "read", "z", 1),
            ("p", "read", "x", 2),
        ]
    )
    assert check_causal(ops, "cc").ok
    assert names(ops, "cm") == {"WriteHBInitRead"}


def test_cm_cyclic_hb() -> None:
    # p reads x=1 then x=2; the writers of 1 and 2 each saw the other value first: under
    # causal memory p's reads force 2 before 1 and 1 before 2
    ops = build(
        [
            ("a", "write", "x", 1),
            ("b", "write", "x", 2),
            ("a", "write", "y", 1),
            ("b", "write", "y", 2),
            ("p", "read", "y", 1),
            ("p", "read", "x", 2),
            ("p", "read", "y", 2),
            ("p", "read", "x", 1),
        ]
    )
    assert check_causal(ops, "cc").ok
    result = check_causal(ops, "cm")
    assert result.verdict is Verdict.VIOLATED
    assert [p.name for p in result.patterns] == ["CyclicHB"]


def test_causal_input_errors() -> None:
    twice = build([("a", "write", "x", 1), ("b", "write", "x", 1)])
    with pytest.raises(DecodeError, match="line 2: 1 was already written"):
        check_causal(twice)
    with pytest.raises(DecodeError, match="line 1: a causal history may not write None"):
        check_causal(build([("a", "write", "x", None)]))
    with pytest.raises(DecodeError, match="line 1: causal checks know read and write"):
        check_causal(build([("a", "cas", "x", (1, 2))]))
    with pytest.raises(ConfigurationError, match="unknown causal level"):
        check_causal([], "sc")


def test_failed_and_unknown_operations() -> None:
    h = History(
        [
            HistoryEvent(0, "invoke", "write", "x", 1, 0),
            HistoryEvent(0, "fail", "write", "x", 1, 1),
            HistoryEvent(1, "invoke", "write", "x", 2, 2),
            HistoryEvent(1, "info", "write", "x", None, 3),
            HistoryEvent(2, "invoke", "read", "x", None, 4),
            HistoryEvent(2, "ok", "read", "x", 2, 5),  # reads the write with unknown outcome
            HistoryEvent(3, "invoke", "read", "x", None, 6),
        ]
    )
    assert check_causal(h).ok
    assert check_sessions(h).ok


def test_limit_caps_the_patterns_listed() -> None:
    ops = build([("a", "read", "x", v) for v in range(1, 30)])
    assert len(check_causal(ops, "cc", limit=5).patterns) == 5


# -- session guarantees -------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("steps", "guarantee"),
    [
        ([("a", "write", "x", 1), ("a", "read", "x", None)], "read-your-writes"),
        (
            [("a", "write", "x", 1), ("a", "write", "x", 2), ("a", "read", "x", 1)],
            "read-your-writes",
        ),
        (
            [("b", "write", "x", 1), ("a", "read", "x", 1), ("a", "read", "x", None)],
            "monotonic-reads",
        ),
        (
            [
                ("b", "write", "x", 1),
                ("b", "write", "y", 1),
                ("a", "read", "y", 1),
                ("a", "read", "x", None),
            ],
            "monotonic-writes",
        ),
        (
            [
                ("b", "write", "x", 1),
                ("c", "read", "x", 1),
                ("c", "write", "y", 1),
                ("a", "read", "y", 1),
                ("a", "read", "x", None),
            ],
            "writes-follow-reads",
        ),
    ],
)
def test_each_session_guarantee_is_caught(steps: list[Step], guarantee: str) -> None:
    result = check_sessions(build(steps))
    assert result.verdict is Verdict.VIOLATED
    assert [v.guarantee for v in result.violations] == [guarantee]
    assert result.counts[guarantee] == 1
    assert guarantee in result.violations[0].text
    # asking only for the other guarantees, the history passes
    others = [g for g in GUARANTEES if g != guarantee]
    assert check_sessions(build(steps), others).ok


def test_sessions_span_processes() -> None:
    # one session moves from process 1 to process 2 (a token carried between services)
    h = History(
        [
            HistoryEvent(1, "invoke", "write", "x", 1, 0, session="s"),
            HistoryEvent(1, "ok", "write", "x", 1, 1, session="s"),
            HistoryEvent(2, "invoke", "read", "x", None, 2, session="s"),
            HistoryEvent(2, "ok", "read", "x", None, 3, session="s"),
        ]
    )
    result = check_sessions(h)
    assert [v.guarantee for v in result.violations] == ["read-your-writes"]
    assert result.violations[0].session == "s"


def test_session_cycle_and_errors() -> None:
    cyc = build([("a", "read", "x", 1), ("a", "write", "x", 1)])
    result = check_sessions(cyc)
    assert result.verdict is Verdict.VIOLATED
    assert result.violations[0].guarantee == "causality"
    with pytest.raises(ConfigurationError, match="unknown session guarantee"):
        check_sessions(cyc, ["linearizable"])
    # a value nobody wrote is the causal checker's ThinAirRead, not a session violation
    assert check_sessions(build([("a", "read", "x", 5)])).ok


# -- laws ------------------------------------------------------------------------------------


def causal_store_history(rng: random.Random, n: int, replicas: int, keys: int) -> list[Operation]:
    """A run of a causally consistent last-writer-wins store: one session per replica.

    Writes are stamped (lamport, replica) and delivered to other replicas in causal order at
    random moments; a read returns the local replica's value.
    """
    clock = [0] * replicas
    stores: list[dict[str, tuple[tuple[int, int], int]]] = [{} for _ in range(replicas)]
    seen: list[set[int]] = [set() for _ in range(replicas)]
    log: list[tuple[tuple[int, int], str, int, frozenset[int]]] = []  # stamp, key, value, deps
    steps: list[Step] = []
    value = 0
    for _ in range(n):
        r = rng.randrange(replicas)
        # deliver some pending writes whose dependencies are present, in log order
        for i, (stamp, key, v, deps) in enumerate(log):
            if i not in seen[r] and deps <= seen[r] and rng.random() < 0.5:
                seen[r].add(i)
                clock[r] = max(clock[r], stamp[0])
                if key not in stores[r] or stores[r][key][0] < stamp:
                    stores[r][key] = (stamp, v)
        key = f"k{rng.randrange(keys)}"
        if rng.random() < 0.5:
            value += 1
            clock[r] += 1
            stamp = (clock[r], r)
            log.append((stamp, key, value, frozenset(seen[r])))
            seen[r].add(len(log) - 1)
            stores[r][key] = (stamp, value)
            steps.append((r, "write", key, value))
        else:
            got = stores[r].get(key)
            steps.append((r, "read", key, None if got is None else got[1]))
    return build(steps)


@settings(max_examples=60)
@given(st.integers(0, 2**32 - 1), st.integers(1, 60), st.integers(1, 4), st.integers(1, 3))
def test_causal_store_histories_pass(seed: int, n: int, replicas: int, keys: int) -> None:
    ops = causal_store_history(random.Random(seed), n, replicas, keys)
    assert check_causal(ops, "cc").ok
    assert check_causal(ops, "ccv").ok  # one last-writer order: convergence holds too
    assert check_sessions(ops).ok


reads_and_writes = st.lists(
    st.tuples(
        st.sampled_from(["a", "b", "c"]),
        st.sampled_from(["read", "write"]),
        st.sampled_from(["x", "y"]),
        st.one_of(st.none(), st.integers(1, 4)),
    ),
    max_size=12,
)


def _differentiated(steps: list[Step]) -> list[Step]:
    out: list[Step] = []
    written: set[tuple[str, Any]] = set()
    for s, f, k, v in steps:
        if f == "write" and (v is None or (k, v) in written):
            continue
        if f == "write":
            written.add((k, v))
        out.append((s, f, k, v))
    return out


@given(reads_and_writes)
def test_level_hierarchy(raw: list[Step]) -> None:
    ops = build(_differentiated(raw))
    cc = check_causal(ops, "cc").ok
    if check_causal(ops, "cm").ok or check_causal(ops, "ccv").ok:
        assert cc  # CM and CCv both imply CC
    if not check_sessions(ops).ok:
        assert not cc  # the session guarantees follow from causal consistency
