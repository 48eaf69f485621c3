"""z3 proofs: lease timing under drift, quorum intersection, and the CRDT join laws.

Each proof builds the negation of its claim and asks z3 for a model: ``unsat`` means no
counterexample exists, so the claim holds for every value (not only small ones). Each proof
takes a ``mutant`` flag that seeds a known bug, and then must find a counterexample.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import z3  # type: ignore[import-untyped]


@dataclass(frozen=True)
class Z3Result:
    """The verdict of one proof."""

    holds: bool
    """z3 found no counterexample (``unsat``) for every claim."""
    claims: int
    """How many claims (solver calls) the proof made."""
    seconds: float
    """Solver time."""


@dataclass(frozen=True)
class Z3Proof:
    """A proof, the code it backs, and the name of its mutant."""

    name: str
    """Short name printed in reports."""
    prove: Callable[[bool], list[Any]]
    """Returns the negated claims (each must be unsat); ``True`` seeds the mutant."""
    mutant: str
    """Name of the seeded bug."""
    models: tuple[str, ...]
    """``module:qualname`` of the code the proof is about."""


def check(proof: Z3Proof, *, mutant: bool = False) -> Z3Result:
    """Run ``proof`` (or its mutant); every negated claim must be unsat for it to hold."""
    start = time.perf_counter()
    claims = proof.prove(mutant)
    holds = True
    for negated in claims:
        s = z3.Solver()
        s.set("timeout", 60_000)
        s.add(negated)
        if s.check() != z3.unsat:
            holds = False
    return Z3Result(holds, len(claims), time.perf_counter() - start)


# ------------------------------------------------------------------ lease timing


def lease_timing(mutant: bool) -> list[Any]:
    """The holder stops trusting a grant no later (in real time) than the acceptor drops it.

    Holder: trusts ``d * (1 - e) / (1 + e)`` of its clock from the moment it sent the request.
    Acceptor: holds ``d`` of its clock from the moment it granted (after the request was sent).
    Clock rates are within ``[1 - e, 1 + e]`` of real time, ``0 <= e < 0.5``.
    """
    d, e, rh, ra, sent, granted = z3.Reals("d e rh ra sent granted")
    holder = d if mutant else d * (1 - e) / (1 + e)  # LeaseConfig.holder_duration
    return [
        z3.And(
            d > 0,
            e >= 0,
            e < z3.RealVal("0.5"),
            rh >= 1 - e,
            rh <= 1 + e,
            ra >= 1 - e,
            ra <= 1 + e,
            granted >= sent,
            # negation: the holder still trusts after the acceptor's grant ran out
            sent + holder / rh > granted + d / ra,
        )
    ]


# ------------------------------------------------------------------ quorums


def quorum_intersection(mutant: bool, sizes: range = range(1, 10)) -> list[Any]:
    """Any two majorities of ``n`` nodes share a node, for every cluster size we allow.

    QuorumNode uses ``len(nodes) // 2 + 1`` for accepts, promises and lease grants alike.
    """
    claims = []
    for n in sizes:
        need = n // 2 if mutant else n // 2 + 1
        a = [z3.Bool(f"a{i}") for i in range(n)]
        b = [z3.Bool(f"b{i}") for i in range(n)]

        def size(xs: list[Any]) -> Any:
            return z3.Sum([z3.If(x, 1, 0) for x in xs])

        claims.append(
            z3.And(
                size(a) >= need,
                size(b) >= need,
                z3.And([z3.Not(z3.And(x, y)) for x, y in zip(a, b, strict=True)]),
            )
        )
    return claims


# ------------------------------------------------------------------ semilattices


def _laws(
    join: Callable[[Any, Any], Any],
    eq: Callable[[Any, Any], Any],
    xs: list[Any],
    valid: Callable[[Any], Any],
) -> list[Any]:
    a, b, c = xs
    pre = z3.And(valid(a), valid(b), valid(c))
    return [
        z3.And(pre, z3.Not(eq(join(a, b), join(b, a)))),
        z3.And(pre, z3.Not(eq(join(join(a, b), c), join(a, join(b, c))))),
        z3.And(pre, z3.Not(eq(join(a, a), a))),
        z3.And(pre, z3.Not(valid(join(a, b)))),  # the join stays in the state space
    ]


def pncounter_laws(mutant: bool) -> list[Any]:
    """PNCounter state: four maps replica -> count (P, N and their floors), joined pointwise
    by max (``PNCounter._join``); one map shows it, the four are a product."""
    r = z3.Int("r")

    def join(x: Any, y: Any) -> Any:
        if mutant:  # adding instead of taking the max counts a delta twice
            return z3.Lambda([r], x[r] + y[r])
        return z3.Lambda([r], z3.If(x[r] >= y[r], x[r], y[r]))

    xs = [z3.Array(n, z3.IntSort(), z3.IntSort()) for n in "abc"]
    q = z3.Int("q")
    return _laws(join, lambda x, y: x == y, xs, lambda x: z3.ForAll([q], x[q] >= 0))


def lww_laws(mutant: bool) -> list[Any]:
    """LWWRegister state: (stamp, floor), -1 for none; the larger stamp wins, the floor is the
    max, and a stamp at or below the floor is forgotten (``LWWRegister._join``). Stamps are
    unique (HLC, node id), so the value follows the stamp."""

    def join(x: Any, y: Any) -> Any:
        (s1, f1), (s2, f2) = x, y
        f = z3.If(f1 >= f2, f1, f2)
        s = z3.If(s1 >= s2, s1, s2)
        if mutant:  # keep the first stamp on a tie-less compare: not commutative
            s = s1
        return (z3.If(s <= f, -1, s), f)

    def eq(x: Any, y: Any) -> Any:
        return z3.And(x[0] == y[0], x[1] == y[1])

    def valid(x: Any) -> Any:  # canonical: no stamp at or below the floor
        return z3.And(x[0] >= -1, x[1] >= -1, z3.Or(x[0] == -1, x[0] > x[1]))

    xs = [(z3.Int(f"s{n}"), z3.Int(f"f{n}")) for n in "abc"]
    return _laws(join, eq, xs, valid)


def dotstore_laws(mutant: bool) -> list[Any]:
    """The add-wins join of dots and causal contexts (``join_dots``, used by AWSet, ORMap
    presence and, with the same rule, MVRegister): a dot survives if both sides have it, or one
    side has it and the other's context has not seen it; contexts are unions. States keep
    their dots inside their context."""
    d = z3.Int("d")

    def join(x: Any, y: Any) -> Any:
        (s1, c1), (s2, c2) = x, y
        if mutant:  # drop dots both sides hold: not idempotent
            keep = z3.Lambda([d], z3.Or(z3.And(s1[d], z3.Not(c2[d])), z3.And(s2[d], z3.Not(c1[d]))))
        else:
            keep = z3.Lambda(
                [d],
                z3.Or(
                    z3.And(s1[d], s2[d]),
                    z3.And(s1[d], z3.Not(c2[d])),
                    z3.And(s2[d], z3.Not(c1[d])),
                ),
            )
        return (keep, z3.Lambda([d], z3.Or(c1[d], c2[d])))

    def eq(x: Any, y: Any) -> Any:
        return z3.And(x[0] == y[0], x[1] == y[1])

    q = z3.Int("q")

    def valid(x: Any) -> Any:
        return z3.ForAll([q], z3.Implies(x[0][q], x[1][q]))

    xs = [
        (
            z3.Array(f"S{n}", z3.IntSort(), z3.BoolSort()),
            z3.Array(f"C{n}", z3.IntSort(), z3.BoolSort()),
        )
        for n in "abc"
    ]
    return _laws(join, eq, xs, valid)


PROOFS: tuple[Z3Proof, ...] = (
    Z3Proof(
        "lease-timing",
        lease_timing,
        "lease-holder-without-drift-margin",
        (
            "microstatedb.protocols._lease:LeaseConfig.holder_duration",
            "microstatedb.protocols._lease:LeaseHolder.granted",
        ),
    ),
    Z3Proof(
        "quorum-intersection",
        quorum_intersection,
        "quorum-half-is-enough",
        ("microstatedb.protocols._quorum:QuorumNode.__init__",),
    ),
    Z3Proof(
        "pncounter-semilattice",
        pncounter_laws,
        "pncounter-join-adds",
        ("microstatedb.crdt._counter:PNCounter._join",),
    ),
    Z3Proof(
        "lww-semilattice",
        lww_laws,
        "lww-join-keeps-first",
        ("microstatedb.crdt._register:LWWRegister._join",),
    ),
    Z3Proof(
        "dotstore-semilattice",
        dotstore_laws,
        "dotstore-drops-common-dots",
        (
            "microstatedb.crdt._dotmap:join_dots",
            "microstatedb.crdt._set:AWSet._join",
            "microstatedb.crdt._register:MVRegister._join",
            "microstatedb.crdt._map:ORMap._join",
        ),
    ),
)
"""Every z3 proof the proofs run."""
