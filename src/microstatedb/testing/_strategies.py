"""Hypothesis strategies: CRDT operations, schedules of faults, and histories.

Operations are plain tuples, so a shrunk counterexample prints as something a person reads:
``("add", "x")`` on a set, ``("at", "counter", "k", ("increment", 1))`` inside a map.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError
from microstatedb.testing._cluster import Step
from microstatedb.verify import History, HistoryEvent

ELEMENTS = ("x", "y", "z")
"""The elements set operations use: few, so that operations meet on one element."""

_COUNTER = st.one_of(
    st.tuples(st.just("increment"), st.integers(1, 5)),
    st.tuples(st.just("decrement"), st.integers(1, 5)),
)
_SET = st.tuples(st.sampled_from(["add", "remove"]), st.sampled_from(ELEMENTS))
_REGISTER = st.tuples(st.just("set"), st.integers(0, 9))
# One key per nested kind: a key asked for as two kinds raises TypeMismatch by design.
_MAP = st.one_of(
    st.tuples(st.just("at"), st.just("counter"), st.just("hits"), _COUNTER),
    st.tuples(st.just("at"), st.just("set"), st.just("tags"), _SET),
    st.tuples(st.just("at"), st.just("register"), st.just("status"), _REGISTER),
    st.tuples(st.just("remove"), st.sampled_from(["hits", "tags", "status"])),
)
_BY_KIND: dict[str, st.SearchStrategy[tuple[Any, ...]]] = {
    "counter": _COUNTER,
    "set": _SET,
    "register": _REGISTER,
    "mvregister": _REGISTER,
    "map": _MAP,
}


def crdt_ops(kind: str) -> st.SearchStrategy[tuple[Any, ...]]:
    """Operations for a CRDT of ``kind`` (``counter``, ``set``, ``register``, ``mvregister``,
    ``map``); apply one with ``apply_op``."""
    try:
        return _BY_KIND[kind]
    except KeyError:
        raise ConfigurationError(
            f"no operation strategy for kind {kind!r}; the kinds are {', '.join(_BY_KIND)}, "
            "or give your own strategy"
        ) from None


def apply_op(obj: Any, op: Sequence[Any]) -> Any:
    """Run ``op`` on ``obj`` and return what the mutator returned (the delta).

    ``("at", kind, key, sub)`` runs ``sub`` on ``obj.<kind>(key)``; any other ``(name, *args)``
    calls ``obj.<name>(*args)``.
    """
    if op[0] == "at":
        _, kind, key, sub = op
        return apply_op(getattr(obj, kind)(key), sub)
    return getattr(obj, op[0])(*op[1:])


def schedules(
    names: Sequence[str], *, max_steps: int = 8, crashes: bool = True
) -> st.SearchStrategy[list[Step]]:
    """Schedules of faults, writes and time over the nodes ``names`` (run with
    ``Cluster.apply``); each ends with time passing, so messages are in flight."""
    if not names:
        raise ConfigurationError("schedules need at least one node name")
    node = st.sampled_from(list(names))
    choices: list[st.SearchStrategy[Step]] = [
        st.tuples(st.just("write"), node),
        st.tuples(st.just("run"), st.sampled_from([0.05, 0.2, 1.0])),
        st.tuples(st.just("heal")),
        st.tuples(st.just("loss"), st.sampled_from([0.0, 0.2, 0.5])),
        st.tuples(st.just("duplicate"), st.sampled_from([0.0, 0.3])),
        st.tuples(st.just("reorder"), st.sampled_from([0.01, 0.3])),
    ]
    if len(names) > 1:
        choices.append(
            st.tuples(
                st.just("partition"),
                st.permutations(list(names)).flatmap(
                    lambda order: st.integers(1, len(order) - 1).map(
                        lambda cut: (tuple(sorted(order[:cut])), tuple(sorted(order[cut:])))
                    )
                ),
            )
        )
    if crashes:
        choices.append(st.tuples(st.sampled_from(["crash", "restart"]), node))
    steps = st.lists(st.one_of(choices), max_size=max_steps)
    return steps.map(lambda s: [*s, ("run", 0.5)])


def histories(
    *, processes: int = 3, max_ops: int = 12, keys: int = 1
) -> st.SearchStrategy[History]:
    """Linearizable register histories: reads and writes of distinct values by ``processes``
    clients whose calls overlap, each read returning the value at its linearization point.

    Every such history also keeps the session guarantees and causal consistency, so checkers
    must accept it; break one read to test that a checker rejects.
    """
    if processes < 1 or keys < 1:
        raise ConfigurationError("histories need at least one process and one key")
    return _histories(processes, max_ops, keys)


@st.composite
def _histories(draw: st.DrawFn, processes: int, max_ops: int, keys: int) -> History:
    n = draw(st.integers(0, max_ops), label="operations")
    # Op i takes effect at 100*(i+1); its call and return lie within 99 of that point, so
    # neighbours overlap but one process's ops (i, i+processes, ...) never do when
    # processes >= 2. Calls end in 1 and returns in 9: no two events share a time.
    reach = 9 if processes >= 2 else 4
    state: dict[str, int | None] = {}
    events: list[HistoryEvent] = []
    written = 0
    for i in range(n):
        process = i % processes
        key = f"k{draw(st.integers(0, keys - 1))}" if keys > 1 else "k0"
        before = draw(st.integers(0, reach))
        after = draw(st.integers(0, reach))
        point = 100 * (i + 1)
        f: str
        arg: int | None
        out: int | None
        if draw(st.booleans()):
            written += 1
            state[key] = written
            f, arg, out = "write", written, state[key]
        else:
            f, arg, out = "read", None, state.get(key)
        events.append(HistoryEvent(process, "invoke", f, key, arg, point - 10 * before - 9))
        events.append(HistoryEvent(process, "ok", f, key, out, point + 10 * after + 9))
    events.sort(key=lambda ev: ev.time)
    return History(events)
