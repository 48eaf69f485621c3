"""Causal consistency by bad patterns (Bouajjani, Enea, Guerraoui, Hamza, POPL 2017).

For a *differentiated* read/write history (no value written twice to a key; reads of None see
the initial value), each of the three levels holds exactly when none of its bad patterns occurs:

- CC, causal consistency: CyclicCO, WriteCOInitRead, ThinAirRead, WriteCORead;
- CM, causal memory: CC's patterns and WriteHBInitRead, CyclicHB;
- CCv, causal convergence: CC's patterns and CyclicCF.

``co`` is the causal order, the transitive closure of program order (per session) and
read-from. Relations are kept as ints used as bitsets of predecessors, so a closure costs a few
big-integer ORs per operation.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Iterable, Iterator
from dataclasses import dataclass

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.verify._history import History, Operation
from microstatedb.verify._linear import Verdict

_READS = frozenset({"read", "get"})
_WRITES = frozenset({"write", "put"})

_Report = Callable[[str, list[int], str], None]

LEVELS = ("cc", "cm", "ccv")
"""The causal levels ``check_causal`` knows."""

PATTERNS: dict[str, tuple[str, ...]] = {
    "cc": ("CyclicCO", "WriteCOInitRead", "ThinAirRead", "WriteCORead"),
    "cm": (
        "CyclicCO",
        "WriteCOInitRead",
        "ThinAirRead",
        "WriteCORead",
        "WriteHBInitRead",
        "CyclicHB",
    ),
    "ccv": ("CyclicCO", "WriteCOInitRead", "ThinAirRead", "WriteCORead", "CyclicCF"),
}
"""The bad patterns of each level."""


@dataclass(frozen=True, slots=True)
class BadPattern:
    """One occurrence of a bad pattern."""

    name: str
    """The pattern's name in the paper (CyclicCO, WriteCORead...)."""
    operations: tuple[Operation, ...]
    """The operations that form it."""
    text: str
    """What it means, in a sentence."""


@dataclass(frozen=True, slots=True)
class CausalResult:
    """The verdict of ``check_causal`` for one level, with every bad pattern found."""

    level: str
    """``cc``, ``cm`` or ``ccv``."""
    verdict: Verdict
    """HOLDS or VIOLATED."""
    patterns: tuple[BadPattern, ...]
    """Bad patterns of this level found (at most ``limit`` of each kind)."""

    @property
    def ok(self) -> bool:
        """True when the level holds."""
        return self.verdict is Verdict.HOLDS


def _bits(mask: int) -> Iterator[int]:
    while mask:
        low = mask & -mask
        yield low.bit_length() - 1
        mask ^= low


def _short(op: Operation) -> str:
    arg = op.output if op.f in _READS else op.value
    return f"{op.f}({op.key!r}, {arg!r}) by {op.session or op.process!r} (line {op.line})"


class _Graph:
    """The history as numbered operations with program order and read-from."""

    def __init__(self, ops: list[Operation]) -> None:
        self.ops = ops
        n = len(ops)
        self.writer: dict[int, int] = {}  # read -> the write it read from
        self.thin_air: list[int] = []
        self.wmask: dict[Hashable, int] = {}
        writes: dict[tuple[Hashable, Hashable], int] = {}
        for i, op in enumerate(ops):
            if op.f in _WRITES:
                if op.value is None:
                    raise DecodeError(
                        f"line {op.line}: a causal history may not write None (the initial value)"
                    )
                if (op.key, op.value) in writes:
                    first = ops[writes[(op.key, op.value)]].line
                    raise DecodeError(
                        f"line {op.line}: {op.value!r} was already written to {op.key!r} on line"
                        f" {first}; causal checks need each value written once per key"
                    )
                writes[(op.key, op.value)] = i
                self.wmask[op.key] = self.wmask.get(op.key, 0) | 1 << i
        self.succ: list[list[int]] = [[] for _ in range(n)]
        last: dict[Hashable, int] = {}
        self.sessions: dict[Hashable, list[int]] = {}
        for i, op in enumerate(ops):
            s = op.session if op.session is not None else op.process
            if s in last:
                self.succ[last[s]].append(i)
            last[s] = i
            self.sessions.setdefault(s, []).append(i)
            if op.f in _READS and op.output is not None:
                w = writes.get((op.key, op.output))
                if w is None:
                    self.thin_air.append(i)
                else:
                    self.writer[i] = w
                    self.succ[w].append(i)

    def closure(self, extra: dict[int, list[int]] | None = None) -> tuple[list[int], list[int]]:
        """Predecessor bitsets of (po ∪ rf ∪ extra)+, and the nodes on or after a cycle."""
        n = len(self.ops)
        succ = self.succ
        if extra:
            succ = [s + extra.get(i, []) for i, s in enumerate(self.succ)]
        indeg = [0] * n
        for s in succ:
            for j in s:
                indeg[j] += 1
        ready = [i for i in range(n) if indeg[i] == 0]
        pred = [0] * n
        done = 0
        while ready:
            i = ready.pop()
            done += 1
            mine = pred[i] | 1 << i
            for j in succ[i]:
                pred[j] |= mine
                indeg[j] -= 1
                if indeg[j] == 0:
                    ready.append(j)
        stuck = [i for i in range(n) if indeg[i] > 0] if done < n else []
        return pred, stuck

    def cycle(self, nodes: list[int], extra: dict[int, list[int]] | None = None) -> list[int]:
        """One cycle among ``nodes`` (all of which lie on or after a cycle)."""
        inside = set(nodes)
        succ = {
            i: [j for j in self.succ[i] + (extra or {}).get(i, []) if j in inside] for i in nodes
        }
        # walk forward until a node repeats: every stuck node has a stuck predecessor,
        # so walk backwards instead, through the reversed edges
        preds: dict[int, list[int]] = {i: [] for i in nodes}
        for i, js in succ.items():
            for j in js:
                preds[j].append(i)
        seen: dict[int, int] = {}
        path: list[int] = []
        i = nodes[0]
        while i not in seen:
            seen[i] = len(path)
            path.append(i)
            i = preds[i][0]
        return list(reversed(path[seen[i] :]))


def _operations(history: History | Iterable[Operation]) -> list[Operation]:
    ops = history.operations() if isinstance(history, History) else list(history)
    kept: list[Operation] = []
    for op in ops:
        if op.f not in _READS and op.f not in _WRITES:
            raise DecodeError(f"line {op.line}: causal checks know read and write, not {op.f!r}")
        if op.status == "fail" or (op.f in _READS and op.status != "ok"):
            continue  # not applied, or nothing observed
        kept.append(op)
    return kept


def check_causal(
    history: History | Iterable[Operation], level: str = "cc", *, limit: int = 10
) -> CausalResult:
    """Check a differentiated read/write history for ``cc``, ``cm`` or ``ccv``.

    Failed operations and reads without a result are left out; a write whose outcome is
    unknown counts as a write (a read may have seen it). Raises ``DecodeError`` when a value is
    written twice to one key, and ``ConfigurationError`` for an unknown level.
    """
    if level not in LEVELS:
        raise ConfigurationError(f"unknown causal level {level!r}; use one of {LEVELS}")
    graph = _Graph(_operations(history))
    ops = graph.ops
    found: list[BadPattern] = []
    counts: dict[str, int] = {}

    def report(name: str, members: list[int], text: str) -> None:
        if counts.get(name, 0) < limit:
            found.append(BadPattern(name, tuple(ops[i] for i in members), text))
        counts[name] = counts.get(name, 0) + 1

    for r in graph.thin_air:
        report("ThinAirRead", [r], f"{_short(ops[r])} returns a value nobody wrote")
    pred, stuck = graph.closure()
    if stuck:
        loop = graph.cycle(stuck)
        report(
            "CyclicCO",
            loop,
            "causal order is cyclic: " + " -> ".join(_short(ops[i]) for i in loop),
        )
        return CausalResult(level, Verdict.VIOLATED, tuple(found))
    _cc_patterns(graph, pred, report)
    if level == "cm":
        _cm_patterns(graph, pred, report)
    elif level == "ccv":
        _ccv_patterns(graph, report)
    verdict = Verdict.VIOLATED if found else Verdict.HOLDS
    return CausalResult(level, verdict, tuple(found))


def _cc_patterns(graph: _Graph, pred: list[int], report: _Report) -> None:
    ops = graph.ops
    for r, op in enumerate(ops):
        if op.f not in _READS:
            continue
        same_key = graph.wmask.get(op.key, 0)
        if op.output is None:
            before = pred[r] & same_key
            if before:
                w = next(_bits(before))
                report(
                    "WriteCOInitRead",
                    [w, r],
                    f"{_short(ops[r])} sees the initial value after {_short(ops[w])} in causal"
                    " order",
                )
            continue
        writer = graph.writer.get(r)
        if writer is None:
            continue
        w = writer
        for w2 in _bits(pred[r] & same_key & ~(1 << w)):
            if pred[w2] >> w & 1:
                report(
                    "WriteCORead",
                    [w, w2, r],
                    f"{_short(ops[r])} reads {_short(ops[w])}, overwritten by"
                    f" {_short(ops[w2])} in its causal past",
                )
                break


def _cm_patterns(graph: _Graph, pred: list[int], report: _Report) -> None:
    """Causal memory: per session, co plus the writes each of its reads must follow."""
    ops = graph.ops
    for members in graph.sessions.values():
        last = members[-1]
        past = pred[last] | 1 << last
        hb = {i: pred[i] for i in _bits(past)}
        reads = [r for r in members if ops[r].f in _READS]
        changed = True
        cyclic = False
        while changed and not cyclic:
            changed = False
            for r in reads:
                w = graph.writer.get(r)
                if w is None:
                    continue
                for w2 in _bits(hb[r] & graph.wmask.get(ops[r].key, 0) & ~(1 << w)):
                    if hb[w] >> w2 & 1:
                        continue
                    # w2 happened before the read, so it is ordered before the write it read
                    add = hb[w2] | 1 << w2
                    for x in hb:
                        if x == w or hb[x] >> w & 1:
                            hb[x] |= add
                    changed = True
                    if hb[w] >> w & 1 or hb[w2] >> w2 & 1:
                        cyclic = True
                        report(
                            "CyclicHB",
                            [w2, w, r],
                            f"for session {ops[last].session or ops[last].process!r},"
                            f" {_short(ops[w2])} must precede {_short(ops[w])} (read by"
                            f" {_short(ops[r])}) and follow it",
                        )
                        break
                if cyclic:
                    break
        if cyclic:
            continue
        for r in reads:
            if ops[r].output is None:
                before = hb[r] & graph.wmask.get(ops[r].key, 0)
                if before and not pred[r] & graph.wmask.get(ops[r].key, 0):
                    w = next(_bits(before))
                    report(
                        "WriteHBInitRead",
                        [w, r],
                        f"{_short(ops[r])} sees the initial value although {_short(ops[w])}"
                        " happened before it for its session",
                    )


def _ccv_patterns(graph: _Graph, report: _Report) -> None:
    """Causal convergence: co plus the arbitration its reads imply must be acyclic."""
    ops = graph.ops
    pred, _ = graph.closure()
    extra: dict[int, list[int]] = {}
    for r, w in graph.writer.items():
        for w2 in _bits(pred[r] & graph.wmask.get(ops[r].key, 0) & ~(1 << w)):
            extra.setdefault(w2, []).append(w)  # w2 is arbitrated before w
    _, stuck = graph.closure(extra)
    if stuck:
        loop = graph.cycle(stuck, extra)
        report(
            "CyclicCF",
            loop,
            "no single order of the writes fits what was read: "
            + " -> ".join(_short(ops[i]) for i in loop),
        )
