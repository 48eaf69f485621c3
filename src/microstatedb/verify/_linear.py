"""Linearizability: the Wing-Gong-Lowe search with memoization and P-compositionality.

The search walks a doubly linked list of call and return entries in time order. At a call it
tries to take that operation effect now (the model must accept it, and the pair
``(linearized set, state)`` must be new: the set is an int used as a bitset, so a visited
configuration costs one hash lookup); at the first return whose operation is not yet
linearized it backtracks. Operations whose outcome is unknown have no return entry: they may
be linearized anywhere after their call, or never, and the search succeeds as soon as every
operation that did complete has been placed.

The history is split by ``model.partition`` and the parts are searched as generators, a slice
of steps each in turn, so that cheap parts finish first and the first violation stops the
others: one hard part cannot hide an easy refutation.
"""

from __future__ import annotations

import enum
from collections.abc import Generator, Hashable, Iterable, Sequence
from dataclasses import dataclass, field, replace

from microstatedb.clock import Clock, RealClock
from microstatedb.errors import ConfigurationError
from microstatedb.verify._history import History, Operation
from microstatedb.verify._models import SequentialModel, model_named

_SLICE = 4096  # search steps between two looks at the clock and the other partitions
_SHOWN = 20  # operations of the longest order printed in an explanation


class Verdict(enum.Enum):
    """The answer of a checker."""

    HOLDS = "holds"
    VIOLATED = "violated"
    UNKNOWN = "unknown"  # the time or step budget ran out first


@dataclass(frozen=True, slots=True)
class SearchStats:
    """What a linearizability check did."""

    operations: int
    """Operations searched (failed ones that the model ignores are not counted)."""
    partitions: int
    """Independent parts the history was split into."""
    partitions_checked: int
    """Parts whose search finished (the rest were stopped by a violation or the budget)."""
    configurations: int
    """Distinct (linearized set, state) pairs visited, over all parts."""
    elapsed: float
    """Seconds spent, by the checker's clock."""


@dataclass(frozen=True, slots=True)
class Explanation:
    """Why no order works: a small set of operations that is not linearizable by itself."""

    partition: Hashable
    """The key (or other part) the operations belong to."""
    operations: tuple[Operation, ...]
    """The operations involved, by invocation time."""
    context: tuple[Operation, ...]
    """The part's other operations that may matter, weakened to unknown outcomes."""
    longest_order: tuple[Operation, ...]
    """The longest legal order the search found for them."""
    state: Hashable
    """The model's state after ``longest_order``."""
    blocked: Operation | None
    """A completed operation that can come neither before nor after: it returned first."""
    minimal: bool
    """True when removing any one operation makes the rest linearizable (1-minimal)."""
    text: str
    """The explanation as sentences."""


@dataclass(frozen=True, slots=True)
class LinearizabilityResult:
    """The verdict of ``check_linearizable`` with its explanation and statistics."""

    verdict: Verdict
    """HOLDS, VIOLATED or UNKNOWN."""
    explanation: Explanation | None
    """For VIOLATED: the operations involved and why no order works."""
    stats: SearchStats
    """What the search did."""
    unknown_partitions: tuple[Hashable, ...] = field(default=())
    """Parts whose search ran out of budget."""

    @property
    def ok(self) -> bool:
        """True when the history is linearizable."""
        return self.verdict is Verdict.HOLDS


class _Budget(Exception):
    """Internal: the step budget of one search ran out."""


# -- one partition --------------------------------------------------------------------------


class _Prepared:
    """The entry list of one partition, built once, searched possibly many times."""

    __slots__ = ("bits", "entry_op", "is_call", "match", "ops", "readonly", "required")

    def __init__(self, ops: Sequence[Operation], model: SequentialModel) -> None:
        self.ops = list(ops)
        self.readonly = [model.is_read_only(op) for op in self.ops]
        entries: list[tuple[int, int, int]] = []
        for i, op in enumerate(self.ops):
            entries.append((op.call, 0, i))
            if op.ret is not None:
                # calls sort before returns at equal times: touching operations overlap
                entries.append((op.ret, 1, i))
        entries.sort()
        self.entry_op = [e[2] for e in entries]
        self.is_call = [e[1] == 0 for e in entries]
        ret_of = {e[2]: k for k, e in enumerate(entries) if e[1] == 1}
        self.match = [ret_of.get(e[2], -1) if e[1] == 0 else -1 for e in entries]
        self.required = [1 if op.ret is not None else 0 for op in self.ops]
        self.bits = [1 << i for i in range(len(self.ops))]


def _search(
    prep: _Prepared,
    model: SequentialModel,
    max_steps: int | None,
    track: list[object] | None = None,
) -> Generator[None, None, tuple[bool, int, int]]:
    """Yield every ``_SLICE`` steps; return ``(linearizable, configurations, stuck_time)``.

    ``stuck_time`` is the return time of the operation that blocked the deepest attempt.
    With ``track`` (small histories only), it receives ``[depth, order, state, blocked]``
    of the deepest attempt.
    """
    n_entries = len(prep.entry_op)
    head = n_entries
    nxt = [*range(1, n_entries), -1, 0 if n_entries else -1]
    prv = [head, *range(n_entries - 1), -1]
    entry_op = prep.entry_op
    is_call = prep.is_call
    match = prep.match
    required = prep.required
    bits = prep.bits
    ops = prep.ops
    readonly = prep.readonly
    step = model.step
    state: Hashable = model.init()
    left = sum(required)
    lin = 0
    cache: set[tuple[int, Hashable]] = set()
    stack: list[tuple[int, Hashable, bool]] = []
    deepest = -1
    stuck_time = -1
    steps = 0
    e = nxt[head]
    while left:
        steps += 1
        if steps % _SLICE == 0:
            if max_steps is not None and steps > max_steps:
                raise _Budget
            yield
        if e != -1 and is_call[e]:
            i = entry_op[e]
            legal, new_state = step(state, ops[i])
            if legal:
                key = (lin | bits[i], new_state)
                if key not in cache:
                    cache.add(key)
                    # a read that is legal now may as well take effect now: any order that
                    # places it later works with it moved here (it changes nothing), so this
                    # choice needs no alternatives when the search comes back to it
                    stack.append((e, state, readonly[i]))
                    lin = key[0]
                    state = new_state
                    left -= required[i]
                    # lift the call entry and its return entry out of the list
                    p, q = prv[e], nxt[e]
                    nxt[p] = q
                    if q != -1:
                        prv[q] = p
                    r = match[e]
                    if r != -1:
                        p, q = prv[r], nxt[r]
                        nxt[p] = q
                        if q != -1:
                            prv[q] = p
                    e = nxt[head]
                    continue
                if readonly[i]:
                    e = -1  # with the read placed, this was searched and failed: so did this
                    continue
            e = nxt[e]
            continue
        # a return entry (or the end of the list): the search must undo its last choice
        if len(stack) > deepest:
            deepest = len(stack)
            if e != -1:
                stuck_time = ops[entry_op[e]].ret or 0
            if track is not None:
                order = [ops[entry_op[s[0]]] for s in stack]
                blocked = ops[entry_op[e]] if e != -1 else None
                track[:] = [deepest, order, state, blocked]
        forced = True
        while forced:
            if not stack:
                return False, len(cache), stuck_time
            e, state, forced = stack.pop()
            i = entry_op[e]
            lin &= ~bits[i]
            left += required[i]
            r = match[e]
            if r != -1:
                nxt[prv[r]] = r
                if nxt[r] != -1:
                    prv[nxt[r]] = r
            nxt[prv[e]] = e
            if nxt[e] != -1:
                prv[nxt[e]] = e
        e = nxt[e]
    return True, len(cache), stuck_time


def _run(gen: Generator[None, None, tuple[bool, int, int]]) -> tuple[bool, int, int]:
    while True:
        try:
            next(gen)
        except StopIteration as stop:
            result: tuple[bool, int, int] = stop.value
            return result


def _violates(ops: Sequence[Operation], model: SequentialModel, max_steps: int) -> bool | None:
    """True when the search refutes ``ops`` within ``max_steps``; None when it ran out."""
    try:
        return not _run(_search(_Prepared(ops, model), model, max_steps))[0]
    except _Budget:
        return None


# -- explanation ------------------------------------------------------------------------------


def _describe(op: Operation) -> str:
    if op.status == "ok":
        outcome = f"ok {op.output!r}" if op.f in ("read", "get") else "ok"
    elif op.status == "fail":
        outcome = "failed"
    else:
        outcome = "unknown outcome"
    span = f"[{op.call}, {'∞' if op.ret is None else op.ret}]"
    return f"process {op.process!r} {op.f} {op.value!r} -> {outcome} {span} (line {op.line})"


def _weaken(op: Operation) -> Operation:
    """The same call with its outcome forgotten: it may take effect at any time, or never."""
    return replace(op, status="info", output=None, ret=None)


def _minimize(
    ops: list[Operation],
    model: SequentialModel,
    stuck_time: int,
    clock: Clock,
    budget_s: float,
    max_steps: int,
) -> tuple[list[Operation], list[Operation], bool]:
    """Find a small set of completed operations whose outcomes alone refute the history.

    Shrinking by deleting operations would blame a read once the write it read is deleted;
    instead the other operations are *weakened* to unknown outcomes (they may still take
    effect, at any time after their call, or never). Returns ``(kept, context, minimal)``:
    ``kept`` is 1-minimal when ``minimal`` is True.
    """
    deadline = clock.monotonic() + budget_s
    if stuck_time >= 0:
        cut = [op for op in ops if op.call <= stuck_time]
        if len(cut) < len(ops) and _violates(cut, model, max_steps):
            ops = cut
    weak = {op.index: _weaken(op) for op in ops}

    def with_strong(strong: list[Operation]) -> list[Operation]:
        keep = {op.index for op in strong}
        # a weakened read constrains nothing: leave it out of the search
        return [
            op if op.index in keep else weak[op.index]
            for op in ops
            if op.index in keep or not model.is_read_only(op)
        ]

    strong = [op for op in ops if op.ret is not None]
    granularity = 2
    out_of_time = False
    undecided = False  # a candidate's search ran out of steps: 1-minimality is not proven
    while len(strong) >= 2:
        if clock.monotonic() > deadline:
            out_of_time = True
            break
        undecided = False
        size = max(1, len(strong) // granularity)
        chunks = [strong[k : k + size] for k in range(0, len(strong), size)]
        for k in range(len(chunks)):
            rest = [op for j, chunk in enumerate(chunks) if j != k for op in chunk]
            verdict = _violates(with_strong(rest), model, max_steps)
            if verdict:
                strong = rest
                granularity = max(granularity - 1, 2)
                break
            if verdict is None:
                undecided = True
            if clock.monotonic() > deadline:
                out_of_time = True
                break
        else:
            if size == 1:
                break
            granularity = min(granularity * 2, len(strong))
        if out_of_time:
            break
    keep = {op.index for op in strong}
    context = [weak[op.index] for op in ops if op.index not in keep and not model.is_read_only(op)]
    return strong, context, not (out_of_time or undecided)


def _explain(
    partition: Hashable,
    ops: list[Operation],
    model: SequentialModel,
    stuck_time: int,
    clock: Clock,
    budget_s: float,
) -> Explanation:
    small, context, minimal = _minimize(ops, model, stuck_time, clock, budget_s, 50_000)
    track: list[object] = []
    try:
        everything = sorted([*small, *context], key=_by_call)
        _run(_search(_Prepared(everything, model), model, 400_000, track))
    except _Budget:  # pragma: no cover - the set was refuted within a budget just before
        track = []
    order: list[Operation] = list(track[1]) if track else []  # type: ignore[call-overload]
    state = track[2] if track else model.init()
    blocked = track[3] if track else None
    assert blocked is None or isinstance(blocked, Operation)
    lines = [
        f"not linearizable: no order of these {len(small)} completed operations on"
        f" {partition!r} fits their real-time intervals and results"
    ]
    lines += [f"  {_describe(op)}" for op in small]
    if context:
        lines.append(
            f"(even if the other {len(context)} operations of this part may have taken effect"
            " at any time after their call, or never)"
        )
    shown = order
    if shown:
        lines.append("the longest legal order (with the other operations that help it):")
        if len(shown) > _SHOWN:
            lines.append(f"  ... {len(shown) - _SHOWN} earlier operations")
        lines += [f"  {_describe(op)}" for op in shown[-_SHOWN:]]
        lines.append(f"leaves the state {model.describe(state)}")
    if blocked is not None:
        lines.append(
            f"and then {_describe(blocked)} has returned, but it cannot take effect legally"
            " there, and every other order was tried"
        )
    if not minimal:
        lines.append("(the time for shrinking ran out; the set may not be minimal)")
    return Explanation(
        partition=partition,
        operations=tuple(small),
        context=tuple(context),
        longest_order=tuple(shown),
        state=state,
        blocked=blocked,
        minimal=minimal,
        text="\n".join(lines),
    )


def _by_call(op: Operation) -> int:
    return op.index


# -- the checker ----------------------------------------------------------------------------


def _operations_of(history: History | Iterable[Operation]) -> list[Operation]:
    if isinstance(history, History):
        return history.operations()
    ops = list(history)
    if len({op.index for op in ops}) != len(ops):
        # operations built by hand may repeat indexes; explanations need them distinct
        ops = [replace(op, index=i) for i, op in enumerate(ops)]
    return ops


def check_linearizable(
    history: History | Iterable[Operation],
    model: SequentialModel | str = "register",
    *,
    timeout: float | None = None,
    max_steps: int | None = None,
    explain: bool = True,
    explain_budget: float = 1.0,
    clock: Clock | None = None,
) -> LinearizabilityResult:
    """Decide whether ``history`` is linearizable with respect to ``model``.

    ``model`` is a ``SequentialModel`` or a built-in name (``register``, ``kv``,
    ``kv-append``). ``timeout`` (seconds, by ``clock``) and ``max_steps`` (per part) bound the
    search; when either runs out first the verdict is ``UNKNOWN``. A violation comes with an
    ``Explanation`` shrunk within ``explain_budget`` seconds.
    """
    mdl = model_named(model) if isinstance(model, str) else model
    if timeout is not None and timeout <= 0:
        raise ConfigurationError(f"timeout must be positive, not {timeout!r}")
    clk: Clock = clock if clock is not None else RealClock()
    start = clk.monotonic()
    deadline = None if timeout is None else start + timeout
    parts: dict[Hashable, list[Operation]] = {}
    for op in _operations_of(history):
        if op.status == "fail" and op.f not in mdl.keeps_failed:
            continue  # certainly not applied: it constrains nothing
        mdl.check_operation(op)
        parts.setdefault(mdl.partition(op), []).append(op)
    # smaller parts first: they are cheaper to refute
    order = sorted(parts, key=lambda k: len(parts[k]))
    running: dict[Hashable, Generator[None, None, tuple[bool, int, int]]] = {
        k: _search(_Prepared(parts[k], mdl), mdl, max_steps) for k in order
    }
    configurations = 0
    finished = 0
    unknown: list[Hashable] = []
    violated: tuple[Hashable, int] | None = None
    while running and violated is None:
        for k in list(running):
            try:
                next(running[k])
            except StopIteration as stop:
                ok, seen, stuck = stop.value
                configurations += seen
                finished += 1
                del running[k]
                if not ok:
                    violated = (k, stuck)
                    break
            except _Budget:
                unknown.append(k)
                del running[k]
        if deadline is not None and running and clk.monotonic() > deadline:
            unknown.extend(running)
            running.clear()
    for gen in running.values():
        gen.close()

    def stats() -> SearchStats:
        return SearchStats(
            operations=sum(len(p) for p in parts.values()),
            partitions=len(parts),
            partitions_checked=finished,
            configurations=configurations,
            elapsed=clk.monotonic() - start,
        )

    if violated is not None:
        k, stuck = violated
        searched = stats()
        explanation = _explain(k, parts[k], mdl, stuck, clk, explain_budget) if explain else None
        return LinearizabilityResult(Verdict.VIOLATED, explanation, searched, tuple(unknown))
    if unknown:
        return LinearizabilityResult(Verdict.UNKNOWN, None, stats(), tuple(unknown))
    return LinearizabilityResult(Verdict.HOLDS, None, stats())


def brute_force_linearizable(
    ops: Sequence[Operation], model: SequentialModel, *, limit: int = 9
) -> bool:
    """Reference answer by trying every order of every allowed subset (tests, tiny inputs).

    Raises ``ConfigurationError`` above ``limit`` operations: the cost is factorial.
    """
    from itertools import permutations

    kept = [op for op in ops if not (op.status == "fail" and op.f not in model.keeps_failed)]
    if len(kept) > limit:
        raise ConfigurationError(f"brute force is for at most {limit} operations")
    required = [op for op in kept if op.ret is not None]
    optional = [op for op in kept if op.ret is None]

    def legal(order: Sequence[Operation]) -> bool:
        # real-time order: an operation that returned before another's call comes first
        for a_pos, a in enumerate(order):
            for b in order[a_pos + 1 :]:
                if b.ret is not None and b.ret < a.call:
                    return False
        parts: dict[Hashable, Hashable] = {}
        for op in order:
            key = model.partition(op)
            ok, parts[key] = model.step(parts.get(key, model.init()), op)
            if not ok:
                return False
        return True

    for mask in range(1 << len(optional)):
        chosen = required + [op for j, op in enumerate(optional) if mask >> j & 1]
        if any(legal(p) for p in permutations(chosen)):
            return True
    return False
