"""Session guarantees (Terry et al., 1994) over session-tagged read/write histories.

A session's read must not return a value older than a write the session already depends on:
its own earlier writes (read-your-writes), the writes its earlier reads returned (monotonic
reads), the earlier writes of the sessions whose writes it saw (monotonic writes), and the writes
those sessions had read before writing (writes-follow-reads). "Older" is decided by causality:
a write is older than another when it lies in the other's causal past (program order and
read-from, transitively), and the initial value is older than every write.

Operations belong to ``op.session`` when the history names sessions, else to their process.
"""

from __future__ import annotations

from collections.abc import Hashable, Iterable, Sequence
from dataclasses import dataclass

from microstatedb.errors import ConfigurationError
from microstatedb.verify._causal import _READS, _bits, _Graph, _operations, _short
from microstatedb.verify._history import History, Operation
from microstatedb.verify._linear import Verdict

GUARANTEES = ("read-your-writes", "monotonic-reads", "monotonic-writes", "writes-follow-reads")
"""The session guarantees, in the order their violations are attributed."""


@dataclass(frozen=True, slots=True)
class SessionViolation:
    """A read that returned something older than a write its session depends on."""

    guarantee: str
    """Which guarantee is broken (one of ``GUARANTEES``)."""
    session: Hashable
    """The session of the read."""
    read: Operation
    """The offending read."""
    required: Operation | None
    """The write the read should have seen (or something newer); None for a causality cycle."""
    observed: Operation | None
    """The write the read did see; None when it returned the initial value."""
    text: str
    """The violation in a sentence."""


@dataclass(frozen=True, slots=True)
class SessionResult:
    """The verdict of ``check_sessions``."""

    verdict: Verdict
    """HOLDS or VIOLATED."""
    violations: tuple[SessionViolation, ...]
    """Violations of the asked guarantees (at most ``limit``)."""
    counts: dict[str, int]
    """Violations found per guarantee (all of them, not only those listed)."""

    @property
    def ok(self) -> bool:
        """True when every asked guarantee holds."""
        return self.verdict is Verdict.HOLDS


def check_sessions(
    history: History | Iterable[Operation],
    guarantees: Sequence[str] = GUARANTEES,
    *,
    limit: int = 20,
) -> SessionResult:
    """Check read-your-writes, monotonic reads, monotonic writes and writes-follow-reads.

    The history must be differentiated (each value written once per key; None is the
    initial value), as for ``check_causal``; otherwise ``DecodeError`` names the line.
    """
    for g in guarantees:
        if g not in GUARANTEES:
            raise ConfigurationError(f"unknown session guarantee {g!r}; use some of {GUARANTEES}")
    wanted = set(guarantees)
    graph = _Graph(_operations(history))
    ops = graph.ops
    session_of = [op.session if op.session is not None else op.process for op in ops]
    position = {i: k for members in graph.sessions.values() for k, i in enumerate(members)}
    found: list[SessionViolation] = []
    counts = dict.fromkeys(GUARANTEES, 0)
    pred, stuck = graph.closure()
    if stuck:
        loop = graph.cycle(stuck)
        text = "operations depend on each other in a cycle: " + " -> ".join(
            _short(ops[i]) for i in loop
        )
        r = loop[0]
        violation = SessionViolation("causality", session_of[r], ops[r], None, None, text)
        return SessionResult(Verdict.VIOLATED, (violation,), {**counts, "causality": 1})

    def classify(r: int, w_req: int) -> str:
        s = session_of[r]
        if session_of[w_req] == s:
            return "read-your-writes"
        earlier = graph.sessions[s][: position[r]]
        seen = [graph.writer[x] for x in earlier if x in graph.writer]
        if w_req in seen:
            return "monotonic-reads"
        for w in seen:
            if session_of[w] == session_of[w_req] and pred[w] >> w_req & 1:
                return "monotonic-writes"
        return "writes-follow-reads"

    for r, op in enumerate(ops):
        if op.f not in _READS:
            continue
        w_obs = graph.writer.get(r)
        if w_obs is None and op.output is not None:
            continue  # a value nobody wrote: check_causal reports it as ThinAirRead
        candidates = pred[r] & graph.wmask.get(op.key, 0)
        if w_obs is not None:
            candidates &= ~(1 << w_obs)
        stale = [
            w for w in _bits(candidates) if w_obs is None or pred[w] >> w_obs & 1
        ]  # required writes that the observed one is older than
        if not stale:
            continue
        kinds = {w: classify(r, w) for w in stale}
        for g in GUARANTEES:
            chosen = [w for w in stale if kinds[w] == g]
            if chosen:
                break
        w_req = chosen[-1]
        guarantee = kinds[w_req]
        counts[guarantee] += 1
        if guarantee in wanted and len(found) < limit:
            seen_text = "the initial value" if w_obs is None else _short(ops[w_obs])
            found.append(
                SessionViolation(
                    guarantee,
                    session_of[r],
                    op,
                    ops[w_req],
                    None if w_obs is None else ops[w_obs],
                    f"{guarantee}: {_short(op)} returns {seen_text}, older than"
                    f" {_short(ops[w_req])} which its session depends on",
                )
            )
    broken = any(counts[g] for g in wanted)
    return SessionResult(Verdict.VIOLATED if broken else Verdict.HOLDS, tuple(found), counts)
