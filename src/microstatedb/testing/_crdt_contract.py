"""The contract suite for CRDT types: the laws, and the semantics the type claims.

A type proves itself with one hook::

    class TestMySet(CRDTContract):
        def make_crdt(self, replica):
            return MySet(replica)

Programs of operations run on two replicas, deltas travel through msgpack as on the network,
and hypothesis shrinks any failure to a short program. The laws: concurrent operations commute,
a delta applied twice changes nothing, any causal delivery order converges, and the value after
an exchange is the one the claimed semantics prescribe (``kind``: a PN-counter sums, an add-wins
set keeps an add that a remove did not see).
"""

from __future__ import annotations

import types
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.codec import packb, unpackb
from microstatedb.crdt import CRDT
from microstatedb.testing._strategies import apply_op, crdt_ops

_LAWS = (
    "test_concurrent_operations_commute",
    "test_applying_a_delta_twice_changes_nothing",
    "test_any_causal_delivery_order_converges",
    "test_exchange_converges_on_the_claimed_semantics",
)


def _own_tests(cls: type, names: tuple[str, ...], decorate: Callable[[Any], Any]) -> None:
    """Give ``cls`` its own hypothesis-wrapped copy of each law: one test function shared by
    many subclasses would run under many executors, which hypothesis rightly refuses."""
    for name in names:
        if name in cls.__dict__:
            continue
        law = getattr(cls, f"_{name}")
        fn = types.FunctionType(law.__code__, law.__globals__, name, law.__defaults__)
        fn.__qualname__ = f"{cls.__qualname__}.{name}"
        fn.__doc__ = law.__doc__
        setattr(cls, name, decorate(fn))


REPLICAS = ("a", "b")


def _wire(delta: Any) -> Any:
    return unpackb(packb(delta))


@dataclass
class _Model:
    """The value a replica must show, by the claimed semantics, from the operations it saw."""

    ops: dict[int, tuple[Any, ...]] = field(default_factory=dict)
    """Operation id -> (op, ids of the adds a remove saw)."""

    def value(self, kind: str) -> Any:
        if kind == "counter":
            return sum(op[1] if op[0] == "increment" else -op[1] for op, _ in self.ops.values())
        if kind == "set":
            removed = {j for op, seen in self.ops.values() if op[0] == "remove" for j in seen}
            return frozenset(
                op[1] for i, (op, _) in self.ops.items() if op[0] == "add" and i not in removed
            )
        return None


@dataclass
class _World:
    kind: str
    replicas: list[Any]
    models: list[_Model]
    deltas: list[tuple[int, Any, frozenset[int]]] = field(default_factory=list)
    """(origin replica, delta on the wire, deltas its origin had seen)."""
    seen: list[set[int]] = field(default_factory=list)


class CRDTContract:
    """The laws every CRDT type keeps; subclass and implement ``make_crdt``.

    ``operations()`` defaults to ``strategies.crdt_ops(kind)`` for the type's ``kind``; override
    it for a type of your own kind (operations are ``(method, *args)`` tuples).
    """

    max_steps = 10
    """Steps (operations and exchanges) per drawn program."""

    max_examples: int | None = None
    """Examples per law (None: the active hypothesis profile decides)."""

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)

        def decorate(fn: Any) -> Any:
            test = given(data=st.data())(fn)
            return settings(max_examples=cls.max_examples)(test) if cls.max_examples else test

        _own_tests(cls, _LAWS, decorate)

    def make_crdt(self, replica: str) -> CRDT:
        """Return a new, empty replica named ``replica``."""
        raise NotImplementedError

    def operations(self) -> st.SearchStrategy[tuple[Any, ...]]:
        """The operations programs are made of."""
        return crdt_ops(self.make_crdt("probe").kind)

    # ---------------------------------------------------------------------- harness

    def _program(self, data: st.DataObject) -> _World:
        probe = self.make_crdt("probe")
        world = _World(
            probe.kind,
            [self.make_crdt(r) for r in REPLICAS],
            [_Model() for _ in REPLICAS],
            seen=[set() for _ in REPLICAS],
        )
        step = st.one_of(
            st.tuples(st.sampled_from([0, 1]), self.operations()),
            st.tuples(st.sampled_from([0, 1]), st.just("sync")),
        )
        program = data.draw(st.lists(step, min_size=1, max_size=self.max_steps), label="program")
        self.last_program = program
        for i, what in program:
            if isinstance(what, tuple):
                self._local(world, i, what)
            else:
                self._sync(world, 1 - i, i)
        return world

    def _local(self, world: _World, i: int, op: tuple[Any, ...]) -> None:
        model = world.models[i]
        seen = frozenset(
            j for j, (o, _) in model.ops.items() if o[0] == "add" and len(op) > 1 and o[1] == op[1]
        )
        delta = apply_op(world.replicas[i], op)
        n = len(world.deltas)
        model.ops[n] = (op, seen if op[0] == "remove" else frozenset())
        world.deltas.append((i, _wire(delta), frozenset(world.seen[i])))
        world.seen[i].add(n)

    def _sync(self, world: _World, src: int, dst: int) -> None:
        """``dst`` joins the full state of ``src``."""
        world.replicas[dst].apply(_wire(world.replicas[src].state()))
        world.models[dst].ops.update(world.models[src].ops)
        world.seen[dst] |= world.seen[src]

    def _fresh_with(self, deltas: list[Any]) -> Any:
        target = self.make_crdt("z")
        for d in deltas:
            target.apply(_wire(d))
        return target

    # ------------------------------------------------------------------------ laws

    def _test_concurrent_operations_commute(self, data: st.DataObject) -> None:
        world = self._program(data)
        self._sync(world, 0, 1)
        self._sync(world, 1, 0)
        base = _wire(world.replicas[0].state())
        concurrent = []
        for i in (0, 1):
            for op in data.draw(st.lists(self.operations(), max_size=3), label=f"ops of {i}"):
                concurrent.append(_wire(apply_op(world.replicas[i], op)))
        order = data.draw(st.permutations(concurrent), label="order")
        one = self._fresh_with([base, *concurrent])
        other = self._fresh_with([base, *order])
        assert packb(one.state()) == packb(other.state()), "concurrent deltas do not commute"
        assert one.value == other.value

    def _test_applying_a_delta_twice_changes_nothing(self, data: st.DataObject) -> None:
        world = self._program(data)
        for _, delta, _ in world.deltas:
            once = self._fresh_with([delta])
            twice = self._fresh_with([delta, delta])
            assert twice.value == once.value, f"a duplicated delta changed the value: {delta!r}"
            assert packb(twice.state()) == packb(once.state())
        for replica in world.replicas:
            before = packb(replica.state())
            replica.apply(_wire(replica.state()))
            assert packb(replica.state()) == before, "joining its own state changed a replica"

    def _test_any_causal_delivery_order_converges(self, data: st.DataObject) -> None:
        world = self._program(data)
        rng = data.draw(st.randoms(use_true_random=False), label="rng")
        results = set()
        values = []
        for _ in range(2):
            done: set[int] = set()
            order: list[Any] = []
            pending = list(range(len(world.deltas)))
            while pending:
                j = rng.choice([j for j in pending if world.deltas[j][2] <= done])
                pending.remove(j)
                done.add(j)
                order.append(world.deltas[j][1])
            target = self._fresh_with(order)
            results.add(packb(target.state()))
            values.append(target.value)
        assert len(results) == 1, "two causal delivery orders gave two states"
        assert values[0] == values[1]

    def _test_exchange_converges_on_the_claimed_semantics(self, data: st.DataObject) -> None:
        world = self._program(data)
        self._sync(world, 0, 1)
        self._sync(world, 1, 0)
        a, b = world.replicas
        assert packb(a.state()) == packb(b.state()), "replicas differ after a full exchange"
        assert a.value == b.value
        expected = world.models[0].value(world.kind)
        if expected is not None:
            described = {"counter": "a PN-counter", "set": "an add-wins set"}[world.kind]
            assert _plain(a.value) == expected, (
                f"{type(a).__name__} claims to be {described}, but shows {a.value!r} where "
                f"{expected!r} is due"
            )


def _plain(value: Any) -> Any:
    return frozenset(value) if isinstance(value, set | frozenset) else value
