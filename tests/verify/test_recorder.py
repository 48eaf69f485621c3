"""Recording histories around any client, and checking convergence of replicas."""

from __future__ import annotations

import asyncio
import io
import threading
from collections import Counter
from collections.abc import Sequence

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.clock import ManualClock
from microstatedb.errors import (
    CircuitOpen,
    ConfigurationError,
    DeadlineExceeded,
    Unavailable,
)
from microstatedb.verify import (
    History,
    Recorder,
    Verdict,
    check_convergence,
    check_linearizable,
    default_classify,
)


class Register:
    """A user's service client: a plain object with get, put and cas."""

    def __init__(self, clock: ManualClock) -> None:
        self.value: int | None = None
        self.clock = clock

    def get(self) -> int | None:
        self.clock.advance(0.001)
        return self.value

    def put(self, v: int) -> None:
        self.clock.advance(0.001)
        self.value = v

    def cas(self, old: int | None, new: int) -> bool:
        self.clock.advance(0.001)
        if self.value != old:
            return False
        self.value = new
        return True


def test_recorder_writes_a_checkable_history() -> None:
    clock = ManualClock()
    sink = io.StringIO()
    rec = Recorder(clock=clock, sink=sink)
    reg = Register(clock)
    rec.call(0, "write", None, 1, reg.put, 1)
    assert rec.call(1, "read", None, None, reg.get) == 1
    assert rec.call(0, "cas", None, [1, 2], reg.cas, 1, 2) is True
    assert rec.call(1, "cas", None, [1, 3], reg.cas, 1, 3) is False
    history = rec.history()
    assert [(e.type, e.f, e.value) for e in history] == [
        ("invoke", "write", 1),
        ("ok", "write", 1),
        ("invoke", "read", None),
        ("ok", "read", 1),
        ("invoke", "cas", (1, 2)),
        ("ok", "cas", (1, 2)),
        ("invoke", "cas", (1, 3)),
        ("fail", "cas", (1, 3)),  # a cas that returns False did not apply
    ]
    assert [e.time for e in history] == sorted(e.time for e in history)
    assert history[1].time - history[0].time == 1_000_000  # monotonic nanoseconds
    assert History.parse(sink.getvalue()) == history  # the sink got the same lines
    assert check_linearizable(history, "register").ok


def test_exceptions_are_recorded_and_raised_again() -> None:
    clock = ManualClock()
    rec = Recorder(clock=clock)

    def refuse() -> None:
        raise CircuitOpen("db", 1.0)

    def lose() -> None:
        raise DeadlineExceeded("no answer in time")

    with pytest.raises(CircuitOpen):
        rec.call(0, "write", "k", 1, refuse)
    with pytest.raises(DeadlineExceeded):
        rec.call(1, "write", "k", 2, lose)
    ops = rec.history().operations()
    assert [op.status for op in ops] == ["fail", "info"]
    assert default_classify(Unavailable("down")) == "fail"
    assert default_classify(ValueError("?")) == "info"


async def test_async_calls_are_recorded() -> None:
    rec = Recorder(clock=ManualClock())

    async def get() -> str:
        await asyncio.sleep(0)
        return "v"

    async def broken() -> str:
        raise Unavailable("no quorum")

    assert await rec.acall("p", "read", "k", None, get) == "v"
    with pytest.raises(Unavailable):
        await rec.acall("p", "read", "k", None, broken)
    assert [e.type for e in rec.history()] == ["invoke", "ok", "invoke", "fail"]


def test_manual_invoke_and_complete() -> None:
    rec = Recorder(clock=ManualClock())
    pending = rec.invoke(3, "write", "k", 9, session="s", node="n1")
    rec.complete(pending, "info", node="n2")
    (op,) = rec.history().operations()
    assert (op.status, op.session, op.node, op.ret) == ("info", "s", "n2", None)
    with pytest.raises(ConfigurationError):
        rec.complete(pending, "done")


def test_threads_share_a_recorder() -> None:
    rec = Recorder()  # the real monotonic clock
    lock = threading.Lock()
    counter = [0]

    def increment() -> int:
        with lock:
            counter[0] += 1
            return counter[0]

    def worker(p: int) -> None:
        for _ in range(50):
            rec.call(p, "add", None, 1, increment)

    threads = [threading.Thread(target=worker, args=(p,)) for p in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    ops = rec.history().operations()
    assert len(ops) == 200
    assert all(op.status == "ok" and op.ret is not None and op.ret >= op.call for op in ops)


# -- convergence --------------------------------------------------------------------------------


def counter_model(ops: Sequence[tuple[str, int]]) -> int:
    return sum(n if f == "increment" else -n for f, n in ops)


def test_convergence_holds() -> None:
    ops = [("increment", 3), ("decrement", 1)]
    result = check_convergence({"a": (b"d1", 2), "b": (b"d1", 2)}, ops, counter_model)
    assert result.verdict is Verdict.HOLDS
    assert result.ok
    assert result.groups == (("a", "b"),)
    assert result.expected == 2
    assert result.problems == ()


def test_divergent_digests_values_and_wrong_value() -> None:
    ops = [("increment", 3)]
    result = check_convergence(
        {"a": (b"\x01", 3), "b": (b"\x01", 3), "c": (b"\x02", 4)}, ops, counter_model
    )
    assert result.verdict is Verdict.VIOLATED
    assert result.groups == (("a", "b"), ("c",))
    assert any("2 different digests" in p for p in result.problems)
    assert any("2 different values" in p for p in result.problems)
    assert any("'c' hold 4" in p for p in result.problems)
    # all agree, but on the wrong value
    wrong = check_convergence({"a": (b"x", 5), "b": (b"x", 5)}, ops, counter_model)
    assert not wrong.ok
    assert wrong.problems == ("'a', 'b' hold 5 but the 1 operations issued give 3",)
    with pytest.raises(ConfigurationError):
        check_convergence({}, ops, counter_model)


@given(st.lists(st.tuples(st.sampled_from(["increment", "decrement"]), st.integers(0, 9))))
def test_replicas_that_fold_the_same_events_converge(ops: list[tuple[str, int]]) -> None:
    # three replicas fold the same operations in different orders (they commute)
    replicas = {}
    for name, order in (("a", ops), ("b", ops[::-1]), ("c", sorted(ops))):
        value = counter_model(order)
        replicas[name] = (repr(Counter({"v": value})).encode(), value)
    assert check_convergence(replicas, ops, counter_model).ok
