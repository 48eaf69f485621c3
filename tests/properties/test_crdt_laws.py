"""The CRDT laws, checked with hypothesis for every type (Document and nested maps included).

Random operation programs run over three replicas with random delta exchange (deltas go
through msgpack, as on the network, and are delivered in any order, not only causally). For
every type:

1. concurrent deltas commute: any permutation gives one state;
2. applying a delta twice changes nothing;
3. merge of full states is associative, commutative and idempotent;
4. any causal delivery order gives one state;
5. convergence: after exchanging everything, all replicas have equal ``state()`` and ``value``.
"""

from __future__ import annotations

import itertools
import random
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import (
    AWSet,
    Document,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    new_crdt,
)
from microstatedb.errors import TypeMismatch

REPLICAS = ("a", "b", "c")

# -- operations per type ------------------------------------------------------------------

counter_ops = st.one_of(
    st.tuples(st.just("increment"), st.integers(0, 5)),
    st.tuples(st.just("decrement"), st.integers(0, 5)),
    st.just(("reset", None)),
)
values = st.one_of(st.none(), st.integers(-3, 3), st.text(max_size=2), st.lists(st.booleans()))
register_ops = st.one_of(st.tuples(st.just("set"), values), st.just(("reset", None)))
elements = st.sampled_from(["x", "y", "z", 1, True, 1.0, 0.0, -0.0, None, b"x"])
set_ops = st.one_of(
    st.tuples(st.just("add"), elements),
    st.tuples(st.just("remove"), elements),
    st.just(("reset", None)),
)


def do_simple(obj: Any, op: tuple[str, Any]) -> Any:
    name, arg = op
    if name == "reset":
        return obj.reset()
    return getattr(obj, name)(arg)


# A map op: a path of nested map keys, then an op on a child (or a remove) at the end.
# Keys overlap with the path names, so one key is sometimes used as two kinds concurrently.
map_keys = st.sampled_from(["k", "m", "n"])
map_leaf = st.one_of(
    st.tuples(st.just("counter"), map_keys, counter_ops),
    st.tuples(st.just("register"), map_keys, register_ops),
    st.tuples(st.just("mvregister"), map_keys, register_ops),
    st.tuples(st.just("set"), map_keys, set_ops),
    st.tuples(st.just("remove"), map_keys, st.none()),
    st.tuples(st.just("reset"), st.none(), st.none()),
)
map_ops = st.tuples(st.lists(st.sampled_from(["m", "n"]), max_size=2), map_leaf)


def do_map(m: ORMap, op: Any) -> Any:
    path, (kind, key, sub) = op
    try:
        target = m
        for p in path:
            target = target.map(p)
        if kind == "remove":
            return target.remove(key)
        if kind == "reset":
            return target.reset()
        return do_simple(getattr(target, kind)(key), sub)
    except TypeMismatch:
        return None


ROOTS = ("t", "l", "m")
doc_ops = st.one_of(
    st.tuples(st.just("insert"), st.integers(0, 20), st.text("abc", min_size=1, max_size=3)),
    st.tuples(st.just("delete"), st.integers(0, 20), st.integers(1, 3)),
    st.tuples(st.just("append"), st.integers(0, 9), st.none()),
    st.tuples(st.just("put"), st.sampled_from(["p", "q"]), st.integers(0, 9)),
    st.tuples(st.just("batch"), st.integers(0, 20), st.text("xy", min_size=1, max_size=2)),
)


def do_doc(doc: Document, op: Any) -> Any:
    seen: list[Any] = []
    doc.on_change = seen.append
    name, a, b = op
    text = doc.text("t")
    n = len(str(text))
    if name == "insert":
        text.insert(min(a, n), b)
    elif name == "delete":
        if n:
            start = min(a, n - 1)
            del text[start : min(n, start + b)]
    elif name == "append":
        doc.array("l").append(a)
    elif name == "put":
        doc.map("m")[a] = b
    else:
        with doc.transaction():
            text.insert(min(a, n), b)
            doc.array("l").append(len(b))
    doc.on_change = None
    assert len(seen) <= 1
    return seen[0] if seen else None


def make_doc(replica: str, clock: Any) -> Document:
    doc = Document(replica)
    doc.text("t")
    doc.array("l")
    doc.map("m")
    return doc


@dataclass(frozen=True)
class Spec:
    name: str
    make: Callable[[str, Any], Any]
    ops: st.SearchStrategy[Any]
    do: Callable[[Any, Any], Any]


SPECS = [
    Spec("counter", lambda r, c: PNCounter(r, clock=c), counter_ops, do_simple),
    Spec("register", lambda r, c: LWWRegister(r, clock=c), register_ops, do_simple),
    Spec("mvregister", lambda r, c: MVRegister(r, clock=c), register_ops, do_simple),
    Spec("set", lambda r, c: AWSet(r, clock=c), set_ops, do_simple),
    Spec("map", lambda r, c: ORMap(r, clock=c), map_ops, do_map),
    Spec("document", make_doc, doc_ops, do_doc),
]
specs = pytest.mark.parametrize("spec", SPECS, ids=[s.name for s in SPECS])


# -- the harness ---------------------------------------------------------------------------


def wire(delta: Any) -> Any:
    return unpackb(packb(delta))


def small_clock(data: st.DataObject) -> Callable[[], int]:
    """A lagging, tie-prone clock, so registers meet equal and out-of-order timestamps."""
    ticks = data.draw(st.lists(st.integers(0, 4), min_size=1, max_size=4), label="clock")
    return itertools.cycle(ticks).__next__


@dataclass
class World:
    spec: Spec
    rng: random.Random
    replicas: list[Any] = field(default_factory=list)
    deltas: list[Any] = field(default_factory=list)
    """Every delta made, in the order made."""
    deps: list[frozenset[int]] = field(default_factory=list)
    """For each delta, the deltas its origin had applied when it was made."""
    applied: list[set[int]] = field(default_factory=list)
    """For each replica, the deltas it has applied (its own included)."""

    def local(self, i: int, op: Any) -> None:
        delta = self.spec.do(self.replicas[i], op)
        if delta is None:
            return
        self.deps.append(frozenset(self.applied[i]))
        self.deltas.append(wire(delta))
        self.applied[i].add(len(self.deltas) - 1)

    def deliver(self, i: int, which: list[int]) -> None:
        for j in which:
            self.replicas[i].apply(wire(self.deltas[j]))
            self.applied[i].add(j)

    def missing(self, i: int) -> list[int]:
        return [j for j in range(len(self.deltas)) if j not in self.applied[i]]

    def exchange_all(self) -> None:
        for i in range(len(self.replicas)):
            todo = self.missing(i)
            self.rng.shuffle(todo)
            self.deliver(i, todo)

    def fresh(self, replica: str = "z") -> Any:
        return self.spec.make(replica, itertools.count(1).__next__)


def run_program(spec: Spec, data: st.DataObject, max_steps: int = 12) -> World:
    rng = data.draw(st.randoms(use_true_random=False), label="rng")
    world = World(spec, rng)
    for r in REPLICAS:
        world.replicas.append(spec.make(r, small_clock(data)))
        world.applied.append(set())
    steps = data.draw(st.integers(1, max_steps), label="steps")
    for _ in range(steps):
        i = data.draw(st.integers(0, len(REPLICAS) - 1), label="replica")
        if data.draw(st.booleans(), label="local op?"):
            world.local(i, data.draw(spec.ops, label="op"))
        else:
            todo = world.missing(i)
            picked = [j for j in todo if rng.random() < 0.5]
            rng.shuffle(picked)  # any order, not only causal
            world.deliver(i, picked)
    return world


def snapshot(obj: Any) -> bytes:
    return packb(obj.state())


def clone(spec: Spec, obj: Any, replica: str | None = None) -> Any:
    copy = spec.make(replica or obj.replica, itertools.count(1).__next__)
    copy.apply(wire(obj.state()))
    return copy


# -- the laws ------------------------------------------------------------------------------


@specs
@given(data=st.data())
def test_concurrent_deltas_commute(spec: Spec, data: st.DataObject) -> None:
    world = run_program(spec, data)
    world.exchange_all()
    base = world.replicas[0].state()
    # One round of concurrent work: no replica sees another's new deltas.
    start = len(world.deltas)
    for i in range(len(REPLICAS)):
        for op in data.draw(st.lists(spec.ops, max_size=3), label=f"ops of {i}"):
            world.local(i, op)
    concurrent = world.deltas[start:]
    results = set()
    for _ in range(2):
        order = data.draw(st.permutations(concurrent), label="order")
        target = world.fresh()
        target.apply(wire(base))
        for d in order:
            target.apply(wire(d))
        results.add(snapshot(target))
    assert len(results) == 1


@specs
@given(data=st.data())
def test_applying_a_delta_twice_changes_nothing(spec: Spec, data: st.DataObject) -> None:
    world = run_program(spec, data)
    if not world.deltas:
        return
    for i, replica in enumerate(world.replicas):
        j = data.draw(st.integers(0, len(world.deltas) - 1), label="delta")
        before = snapshot(replica)
        replica.apply(wire(world.deltas[j]))
        once = snapshot(replica)
        if j in world.applied[i]:
            assert once == before
        replica.apply(wire(world.deltas[j]))
        assert snapshot(replica) == once


@specs
@given(data=st.data())
def test_merge_is_associative_commutative_and_idempotent(spec: Spec, data: st.DataObject) -> None:
    world = run_program(spec, data)
    x, y, z = world.replicas

    def merged(*objs: Any) -> bytes:
        acc = clone(spec, objs[0], "m")
        for o in objs[1:]:
            acc.merge(clone(spec, o))
        return snapshot(acc)

    assert merged(x, y) == merged(y, x)
    xy = clone(spec, x, "m")
    xy.merge(clone(spec, y))
    yz = clone(spec, y, "m")
    yz.merge(clone(spec, z))
    left = clone(spec, xy, "m")
    left.merge(clone(spec, z))
    right = clone(spec, x, "m")
    right.merge(yz)
    assert snapshot(left) == snapshot(right)
    for o in (x, y, z):
        assert merged(o, o) == snapshot(o)


def causal_order(world: World, rng: random.Random) -> list[int]:
    """A random linear extension of the happened-before order of the deltas."""
    done: set[int] = set()
    order: list[int] = []
    pending = list(range(len(world.deltas)))
    while pending:
        ready = [j for j in pending if world.deps[j] <= done]
        j = rng.choice(ready)
        pending.remove(j)
        done.add(j)
        order.append(j)
    return order


@specs
@given(data=st.data())
def test_any_causal_delivery_order_gives_one_state(spec: Spec, data: st.DataObject) -> None:
    world = run_program(spec, data)
    world.exchange_all()
    expected = snapshot(world.replicas[0])
    for _ in range(2):
        target = world.fresh()
        for j in causal_order(world, world.rng):
            target.apply(wire(world.deltas[j]))
        assert snapshot(target) == expected
        assert target.value == world.replicas[0].value


@specs
@given(data=st.data())
def test_replicas_converge_after_exchanging_everything(spec: Spec, data: st.DataObject) -> None:
    world = run_program(spec, data, max_steps=24)
    world.exchange_all()
    states = {snapshot(r) for r in world.replicas}
    assert len(states) == 1
    first = world.replicas[0].value
    assert all(r.value == first for r in world.replicas)
    # The same state as a replica rebuilt from any one of them, and as a plain union of deltas.
    rebuilt = clone(spec, world.replicas[2], "z")
    assert snapshot(rebuilt) in states
    union = world.fresh()
    for d in world.deltas:
        union.apply(wire(d))
    assert snapshot(union) in states
    assert new_crdt(spec.name, "y").kind == spec.name
