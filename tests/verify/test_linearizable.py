"""The linearizability checker: Porcupine's corpus, histories built by construction, laws."""

from __future__ import annotations

import csv
import random
from collections.abc import Hashable
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify import (
    History,
    HistoryEvent,
    KVAppendModel,
    KVModel,
    Operation,
    RegisterModel,
    SequentialModel,
    Verdict,
    brute_force_linearizable,
    check_linearizable,
    synthetic_history,
)
from microstatedb.verify._models import model_named

FIXTURES = Path(__file__).parent.parent / "fixtures" / "porcupine"


def _manifest() -> list[tuple[str, bool]]:
    with open(FIXTURES / "MANIFEST.tsv", newline="") as fh:
        rows = list(csv.DictReader(fh, delimiter="\t"))
    return [
        (row["path"], row["porcupine_expected_linearizable"] == "true")
        for row in rows
        if row["porcupine_expected_linearizable"] in ("true", "false")
    ]


CORPUS = _manifest()


def _load(path: str) -> tuple[History, str]:
    if path.endswith(".log"):
        return History.load(FIXTURES / path, "jepsen-log"), "register"
    return History.load(FIXTURES / path, "edn"), "kv-append"


def test_corpus_is_complete() -> None:
    assert len(CORPUS) == 108  # 102 etcd histories (095 is empty) and six kv histories
    assert sum(expected for _, expected in CORPUS) == 23 + 3


@pytest.mark.parametrize(("path", "expected"), CORPUS, ids=[p for p, _ in CORPUS])
def test_porcupine_verdicts(path: str, expected: bool) -> None:
    history, model = _load(path)
    result = check_linearizable(history, model, timeout=30, explain=False)
    assert result.verdict is (Verdict.HOLDS if expected else Verdict.VIOLATED)
    assert result.ok is expected
    if path == "kv/c50-bad.txt":
        # some keys here are very expensive to refute: cheap ones answer first and stop them
        assert result.stats.partitions == 10
        assert result.stats.partitions_checked < 10


# files that Knossos could not finish in 2015 (out of memory or time)
@pytest.mark.parametrize("path", ["jepsen/etcd_040.log", "jepsen/etcd_085.log"])
def test_both_readings_of_failed_cas_agree_on_hard_files(path: str) -> None:
    history, _ = _load(path)
    expected = dict(CORPUS)[path]
    assert check_linearizable(history, RegisterModel(fail_observes=True), explain=False).ok is (
        expected
    )


# -- built by construction ------------------------------------------------------------------


def _op(
    i: int,
    f: str,
    value: Any,
    call: int,
    ret: int | None,
    *,
    output: Any = None,
    status: str = "ok",
    key: Hashable = None,
) -> Operation:
    return Operation(i, i, f, key, value, output, status, call, ret, line=i + 1)


def test_stale_read_explained_minimally() -> None:
    ops = [
        _op(0, "write", 1, 0, 10),
        _op(1, "write", 2, 20, 30),
        _op(2, "read", None, 40, 50, output=1),
        _op(3, "read", None, 0, 100, output=2),  # concurrent with everything: irrelevant
    ]
    result = check_linearizable(ops, "register")
    assert result.verdict is Verdict.VIOLATED
    ex = result.explanation
    assert ex is not None
    assert [op.index for op in ex.operations] == [0, 1, 2]
    assert ex.minimal
    assert ex.blocked is not None
    assert ex.blocked.index == 2
    assert ex.state == 2
    assert "not linearizable" in ex.text
    assert "line 3" in ex.text


def test_long_orders_are_cut_in_the_text() -> None:
    writes = [_op(i, "write", i, 10 * i, 10 * i + 5) for i in range(30)]
    stale = _op(30, "read", None, 400, 405, output=3)
    # many weakened writes make shrinking expensive: a short budget keeps this test quick
    result = check_linearizable([*writes, stale], "register", explain_budget=0.2)
    ex = result.explanation
    assert ex is not None
    assert stale in ex.operations
    assert "earlier operations" in ex.text
    assert len(ex.longest_order) > 20


def test_operations_built_with_repeated_indexes() -> None:
    ops = [replace(op, index=0) for op in (_op(0, "write", 1, 0, 10), _op(1, "read", None, 20, 30))]
    result = check_linearizable([*ops, replace(ops[1], output=None)], "register")
    assert result.explanation is not None
    assert [op.index for op in result.explanation.operations] == [0, 2]


def test_pending_write_may_take_effect_late_or_never() -> None:
    # a write with unknown outcome explains a later read of its value ...
    late = [_op(0, "write", 1, 0, None, status="info"), _op(1, "read", None, 50, 60, output=1)]
    assert check_linearizable(late, "register").ok
    # ... or never happens at all
    never = [_op(0, "write", 1, 0, None, status="info"), _op(1, "read", None, 50, 60)]
    assert check_linearizable(never, "register").ok
    # but it cannot take effect before its call
    early = [_op(0, "read", None, 0, 10, output=1), _op(1, "write", 1, 20, None, status="info")]
    assert check_linearizable(early, "register").verdict is Verdict.VIOLATED


def test_failed_operations_did_not_happen() -> None:
    ops = [_op(0, "write", 1, 0, 10, status="fail"), _op(1, "read", None, 20, 30, output=None)]
    assert check_linearizable(ops, "register").ok
    seen = [_op(0, "write", 1, 0, 10, status="fail"), _op(1, "read", None, 20, 30, output=1)]
    assert not check_linearizable(seen, "register").ok


def test_failed_cas_reading() -> None:
    # cas(None -> 5) failed although the register held None: only the comparing reading sees it
    ops = [_op(0, "cas", (None, 5), 0, 10, status="fail")]
    assert check_linearizable(ops, RegisterModel()).ok
    assert not check_linearizable(ops, RegisterModel(fail_observes=True)).ok


@pytest.mark.parametrize("seed", range(3))
def test_synthetic_histories_hold_and_stale_reads_do_not(seed: int) -> None:
    rng = random.Random(seed)
    h = synthetic_history(rng, operations=2_000, clients=10, keys=10, info_rate=0.05)
    assert check_linearizable(h, "kv").ok
    bad = synthetic_history(
        random.Random(seed), operations=2_000, clients=10, keys=10, info_rate=0.05, stale_read=True
    )
    result = check_linearizable(bad, "kv")
    assert result.verdict is Verdict.VIOLATED
    assert result.explanation is not None
    assert result.explanation.partition == 0


def test_ten_thousand_operations_are_checked_quickly() -> None:
    h = synthetic_history(random.Random(7), operations=10_000, clients=10, keys=10)
    result = check_linearizable(h, "kv", timeout=10)
    assert result.ok
    assert result.stats.operations == 10_000 - sum(
        1 for op in h.operations() if op.status == "fail"
    )
    assert result.stats.elapsed < 10


def test_synthetic_history_arguments() -> None:
    with pytest.raises(ConfigurationError):
        synthetic_history(random.Random(0), operations=0, clients=1, keys=1)
    with pytest.raises(ConfigurationError):
        synthetic_history(random.Random(0), operations=5, clients=1, keys=1, info_rate=2.0)
    # a seed whose only operation is a read has no write for the stale read to undo
    seed = next(
        s
        for s in range(100)
        if synthetic_history(random.Random(s), operations=1, clients=1, keys=1)[0].f == "read"
    )
    with pytest.raises(ConfigurationError, match="stale_read needs"):
        synthetic_history(random.Random(seed), operations=1, clients=1, keys=1, stale_read=True)


# -- budgets ---------------------------------------------------------------------------------


def test_step_budget_gives_unknown() -> None:
    history, _ = _load("jepsen/etcd_002.log")
    result = check_linearizable(history, "register", max_steps=5_000)
    assert result.verdict is Verdict.UNKNOWN
    assert result.unknown_partitions == (None,)
    assert not result.ok


class _TickingClock(ManualClock):
    """Every look at the clock costs one second."""

    def monotonic(self) -> float:
        self.advance(1.0)
        return super().monotonic()


def test_timeout_gives_unknown() -> None:
    history, _ = _load("jepsen/etcd_002.log")
    result = check_linearizable(history, "register", timeout=1.5, clock=_TickingClock())
    assert result.verdict is Verdict.UNKNOWN
    with pytest.raises(ConfigurationError, match="timeout"):
        check_linearizable(history, "register", timeout=0)


def test_explanation_budget_can_run_out() -> None:
    history, _ = _load("jepsen/etcd_000.log")
    result = check_linearizable(history, "register", clock=_TickingClock(), explain_budget=0.5)
    assert result.explanation is not None
    assert not result.explanation.minimal
    assert "may not be minimal" in result.explanation.text


# -- models ----------------------------------------------------------------------------------


def test_models_by_name() -> None:
    assert isinstance(model_named("register"), RegisterModel)
    assert isinstance(model_named("kv"), KVModel)
    assert isinstance(model_named("kv-append"), KVAppendModel)
    with pytest.raises(ConfigurationError, match="unknown model"):
        model_named("queue")


@pytest.mark.parametrize(
    ("model", "op"),
    [
        ("register", _op(0, "cas", 3, 0, 1)),
        ("register", _op(0, "append", "x", 0, 1)),
        ("kv-append", _op(0, "append", 3, 0, 1)),
        ("kv-append", _op(0, "cas", (1, 2), 0, 1)),
    ],
)
def test_model_refuses_operations_it_cannot_read(model: str, op: Operation) -> None:
    with pytest.raises(DecodeError, match="line 1"):
        check_linearizable([op], model)


def test_kv_append_model() -> None:
    ops = [
        _op(0, "append", "a", 0, 10, key="k"),
        _op(1, "put", "b", 20, 30, key="k"),
        _op(2, "append", "c", 40, 50, key="k"),
        _op(3, "get", None, 60, 70, output="bc", key="k"),
        _op(4, "get", None, 60, 70, output=None, key="other"),
        _op(5, "get", None, 60, None, status="info", key="k"),
    ]
    assert check_linearizable(ops, "kv-append").ok
    wrong = [*ops[:3], replace(ops[3], output="abc")]
    assert not check_linearizable(wrong, "kv-append").ok


class QueueModel(SequentialModel):
    """A FIFO queue, as a user would write one: the docs show this example."""

    name = "queue"

    def init(self) -> Hashable:
        return ()

    def step(self, state: Any, op: Operation) -> tuple[bool, Hashable]:
        if op.f == "enqueue":
            return True, (*state, op.value)
        if op.status != "ok":  # a dequeue with unknown result may have taken anything
            return True, state[1:]
        if not state:
            return op.output is None, state
        return op.output == state[0], state[1:]


def test_user_defined_model() -> None:
    ops = [
        _op(0, "enqueue", 1, 0, 10),
        _op(1, "enqueue", 2, 5, 15),  # concurrent with the first: either order
        _op(2, "dequeue", None, 20, 30, output=2),
        _op(3, "dequeue", None, 40, 50, output=1),
    ]
    assert check_linearizable(ops, QueueModel()).ok
    fifo_broken = [*ops[:2], replace(ops[2], output=2), replace(ops[3], output=2)]
    assert not check_linearizable(fifo_broken, QueueModel()).ok
    with pytest.raises(NotImplementedError):
        SequentialModel().init()
    with pytest.raises(NotImplementedError):
        SequentialModel().step(None, ops[0])
    assert SequentialModel().describe(3) == "3"
    assert not SequentialModel().is_read_only(ops[0])


def test_brute_force_refuses_large_inputs() -> None:
    ops = [_op(i, "write", i, i, i + 1) for i in range(10)]
    with pytest.raises(ConfigurationError):
        brute_force_linearizable(ops, RegisterModel())


# -- laws ------------------------------------------------------------------------------------


@st.composite
def small_histories(draw: st.DrawFn, keys: tuple[str, ...] = ("a",)) -> list[Operation]:
    n = draw(st.integers(1, 6))
    ops: list[Operation] = []
    for i in range(n):
        f = draw(st.sampled_from(["read", "write", "cas"]))
        call = draw(st.integers(0, 20))
        status = draw(st.sampled_from(["ok", "ok", "ok", "info", "fail"]))
        ret = None if status == "info" else call + draw(st.integers(0, 10))
        value: Any = None
        output: Any = None
        if f == "write":
            value = draw(st.integers(0, 2))
        elif f == "cas":
            value = (draw(st.one_of(st.none(), st.integers(0, 2))), draw(st.integers(0, 2)))
        if f == "read" and status == "ok":
            output = draw(st.one_of(st.none(), st.integers(0, 2)))
        key = draw(st.sampled_from(keys))
        ops.append(Operation(i, i, f, key, value, output, status, call, ret, line=i + 1))
    return ops


@given(small_histories(), st.booleans())
def test_search_agrees_with_brute_force(ops: list[Operation], fail_observes: bool) -> None:
    model = RegisterModel(fail_observes=fail_observes)
    expected = brute_force_linearizable(ops, model)
    assert check_linearizable(ops, model).ok is expected


@given(small_histories(keys=("a", "b")))
def test_p_compositionality(ops: list[Operation]) -> None:
    whole = check_linearizable(ops, "kv").ok
    per_key = all(
        check_linearizable([op for op in ops if op.key == k], "kv").ok for k in ("a", "b")
    )
    assert whole is per_key
    assert whole is brute_force_linearizable(ops, KVModel())


@settings(max_examples=20)
@given(st.integers(0, 2**32 - 1), st.integers(5, 40))
def test_explanations_are_sound_and_minimal(seed: int, n: int) -> None:
    try:
        h = synthetic_history(
            random.Random(seed), operations=n, clients=4, keys=2, info_rate=0.1, stale_read=True
        )
    except ConfigurationError:
        assume(False)  # no write to key 0 to read stale
    result = check_linearizable(h, "kv", explain_budget=5)
    ex = result.explanation
    assert result.verdict is Verdict.VIOLATED
    assert ex is not None
    weak = sorted([*ex.operations, *ex.context], key=lambda op: op.index)
    assert all(op.status == "info" for op in ex.context)
    # sound: with every other operation's outcome forgotten, the violation remains
    assert not check_linearizable(weak, "kv", explain=False).ok
    if not ex.minimal:
        return
    for drop in ex.operations:
        relaxed = [
            replace(op, status="info", output=None, ret=None) if op.index == drop.index else op
            for op in weak
        ]
        assert check_linearizable(relaxed, "kv", explain=False).ok


@settings(max_examples=25)
@given(
    st.integers(0, 2**32 - 1),
    st.integers(1, 300),
    st.integers(1, 8),
    st.integers(1, 4),
    st.floats(0, 0.3),
)
def test_histories_built_linearizable_are_linearizable(
    seed: int, n: int, clients: int, keys: int, info_rate: float
) -> None:
    h = synthetic_history(
        random.Random(seed), operations=n, clients=clients, keys=keys, info_rate=info_rate
    )
    assert check_linearizable(h, "kv").ok


def test_empty_history_holds() -> None:
    result = check_linearizable(History([]), "register")
    assert result.ok
    assert result.stats.partitions == 0
    only_pending = History([HistoryEvent(0, "invoke", "write", None, 1, 0)])
    assert check_linearizable(only_pending, "register").ok
