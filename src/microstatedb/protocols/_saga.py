"""Sagas as sans-I/O state machines: an orchestrator and barrier-guarded participants.

The orchestrator appends ``saga`` (the steps) before it invokes anything, and one record per
step outcome (``s/<branch>/action``, ``s/<branch>/compensate``), so after a crash it resumes
exactly where it stopped: it invokes again the operation whose outcome it had not recorded
(the participant's barrier answers a repeat with its first outcome, without running it).

Outcomes stay apart: ``failed`` is a business failure (compensate at once, never retry),
``retry`` asks to try again later, and silence past ``step_timeout`` is a transport failure.
Retries and transport failures share a limit of ``step_attempts`` attempts, with backoff;
past it the orchestrator compensates, in reverse order, every step that may have run,
including the uncertain one (its barrier turns that into a null compensation if it never
ran, and refuses the action if it arrives later). Compensations are retried until they are
done: a compensation must not fail for business reasons.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from microstatedb import observability as _obs
from microstatedb.errors import ConfigurationError
from microstatedb.protocols._barrier import (
    FAILED,
    NULL,
    OK,
    REFUSED,
    Barrier,
    Body,
    Journal,
)
from microstatedb.protocols._twophase import (
    Finished,
    TxnConfig,
    TxnMessage,
    TxnOutput,
    TxnSend,
    _check_txn,
)

SPAN_STEP = "msdb.txn.step"
"""Span of a participant running a saga operation."""


@dataclass(frozen=True, slots=True)
class SagaStep:
    """One step: ``action`` on ``service`` with ``payload``; its compensation undoes it."""

    branch: str
    """The step's name, unique within its saga."""
    service: str
    """The node that runs it."""
    action: str
    """The handler name on that node."""
    payload: Any = None
    """Data for the action and its compensation."""


@dataclass(frozen=True, slots=True)
class SagaStats:
    """Counters of an orchestrator since it started."""

    completed: int
    """Sagas whose every step succeeded."""
    compensated: int
    """Sagas that compensated."""
    open: int
    """Sagas in progress."""
    retries: int
    """Operations sent again after a ``retry`` outcome."""
    timeouts: int
    """Operations sent again after no answer (transport failures)."""


class _Run:
    __slots__ = ("attempts", "deadline", "detail", "due", "headers", "index", "op", "steps")

    def __init__(self, steps: list[SagaStep], headers: dict[str, str]) -> None:
        self.steps = steps
        self.index = 0
        self.op = "action"
        self.attempts = 0
        self.deadline = 0.0
        self.detail: Any = None
        self.due = False  # a resend waits for its backoff
        self.headers = headers


class Orchestrator:
    """Runs sagas: steps in order, then compensations in reverse order when one fails."""

    def __init__(
        self,
        journal: Journal,
        *,
        config: TxnConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.journal = journal
        self.node = journal.node
        self.config = config or TxnConfig()
        self._policy = self.config.policy(rng or random.Random())
        self._runs: dict[str, _Run] = {}
        self._completed = self._compensated = self._retries = self._timeouts = 0
        self._recovery: list[TxnOutput] = []
        for txn in journal.txns():
            rec = journal.get(txn)
            saga = rec.get("saga")
            # Only the orchestrator that began a saga resumes it, not a replica of its store.
            if saga is None or "end" in rec or saga.get("orchestrator") != self.node:
                continue
            run = _Run([SagaStep(*s) for s in saga["steps"]], dict(saga.get("headers", {})))
            self._runs[txn] = run
            self._resume(txn, run, rec, now, self._recovery)

    def recovered(self) -> list[TxnOutput]:
        """Operations to send after a restart; empties the list."""
        out, self._recovery = self._recovery, []
        return out

    def _resume(
        self, txn: str, run: _Run, rec: Mapping[str, Any], now: float, out: list[TxnOutput]
    ) -> None:
        # Forward while every recorded action succeeded; else back from the failed step.
        for i, step in enumerate(run.steps):
            done = rec.get(f"s/{step.branch}/action")
            if done is None:
                run.index, run.op = i, "action"
                self._send(txn, run, now, out)
                return
            if done["status"] != OK:
                run.index, run.op = i, "compensate"
                break
        else:
            self._finish(txn, run, "completed", now, out)
            return
        self._next_compensation(txn, run, rec, now, out)

    def begin(self, now: float, txn: str, steps: Sequence[SagaStep]) -> list[TxnOutput]:
        """Start saga ``txn``; returns the first invocation to send."""
        _check_txn(txn)
        steps = list(steps)
        if not steps or not all(isinstance(s, SagaStep) for s in steps):
            raise ConfigurationError("a saga needs a non-empty sequence of SagaStep")
        branches = [s.branch for s in steps]
        if len(set(branches)) != len(branches) or any(not b or "/" in b for b in branches):
            raise ConfigurationError(f"step branches must be unique names without '/': {branches}")
        if self.journal.get(txn):
            raise ConfigurationError(f"transaction {txn!r} already exists; use a fresh id")
        headers = dict(_obs.inject({}))
        self.journal.put(
            txn,
            "saga",
            {
                "steps": [list(_fields(s)) for s in steps],
                "orchestrator": self.node,
                "at": now,
                "headers": headers,
            },
        )
        run = _Run(steps, headers)
        self._runs[txn] = run
        out: list[TxnOutput] = []
        self._send(txn, run, now, out)
        return out

    def _send(self, txn: str, run: _Run, now: float, out: list[TxnOutput]) -> None:
        step = run.steps[run.index]
        run.attempts += 1
        run.deadline = now + self.config.step_timeout
        body = {
            "branch": step.branch,
            "op": run.op,
            "action": step.action,
            "payload": step.payload,
            "headers": run.headers,
        }
        out.append(TxnSend(step.service, TxnMessage("invoke", txn, self.node, body)))

    def _finish(self, txn: str, run: _Run, status: str, now: float, out: list[TxnOutput]) -> None:
        self.journal.put(txn, "end", {"status": status, "at": now, "why": run.detail})
        del self._runs[txn]
        if status == "completed":
            self._completed += 1
        else:
            self._compensated += 1
        out.append(Finished(txn, status, run.detail))

    def _next_compensation(
        self, txn: str, run: _Run, rec: Mapping[str, Any], now: float, out: list[TxnOutput]
    ) -> None:
        # Compensate from run.index down to 0, skipping steps already compensated and those
        # whose action is known to have failed (nothing to undo, and the barrier keeps the
        # failure as that action's answer).
        if run.detail is None:
            for step in run.steps:
                act = rec.get(f"s/{step.branch}/action")
                if act is not None and act["status"] != OK:
                    run.detail = act.get("why")
        i = run.index
        while i >= 0:
            step = run.steps[i]
            act = rec.get(f"s/{step.branch}/action")
            comp = rec.get(f"s/{step.branch}/compensate")
            if comp is None and not (act is not None and act["status"] == FAILED):
                run.index, run.op, run.attempts = i, "compensate", 0
                self._send(txn, run, now, out)
                return
            i -= 1
        self._finish(txn, run, "compensated", now, out)

    def receive(self, now: float, msg: TxnMessage) -> list[TxnOutput]:
        """Handle the outcome of an operation."""
        out: list[TxnOutput] = []
        run = self._runs.get(msg.txn)
        if msg.kind != "outcome" or run is None:
            return out
        step = run.steps[run.index]
        if msg.body.get("branch") != step.branch or msg.body.get("op") != run.op:
            return out  # a late answer to an operation already settled
        status = msg.body.get("status")
        if run.op == "action":
            if status == OK:
                self.journal.put(msg.txn, f"s/{step.branch}/action", {"status": OK, "at": now})
                if run.index + 1 == len(run.steps):
                    self._finish(msg.txn, run, "completed", now, out)
                else:
                    run.index, run.attempts = run.index + 1, 0
                    self._send(msg.txn, run, now, out)
            elif status in (FAILED, REFUSED):
                why = {"step": step.branch, "status": status, "detail": msg.body.get("detail")}
                self._fail(msg.txn, run, FAILED, why, now, out)
            else:
                self._retry(msg.txn, run, now, out, timeout=False)
        elif status in (OK, NULL):
            self.journal.put(msg.txn, f"s/{step.branch}/compensate", {"status": status, "at": now})
            run.index -= 1
            self._next_compensation(msg.txn, run, self.journal.get(msg.txn), now, out)
        else:
            self._retry(msg.txn, run, now, out, timeout=False)
        return out

    def _fail(
        self, txn: str, run: _Run, status: str, why: Any, now: float, out: list[TxnOutput]
    ) -> None:
        step = run.steps[run.index]
        run.detail = why
        self.journal.put(txn, f"s/{step.branch}/action", {"status": status, "at": now, "why": why})
        self._next_compensation(txn, run, self.journal.get(txn), now, out)

    def _retry(
        self, txn: str, run: _Run, now: float, out: list[TxnOutput], *, timeout: bool
    ) -> None:
        if timeout:
            self._timeouts += 1
        else:
            self._retries += 1
        if run.op == "action" and run.attempts >= self.config.step_attempts:
            step = run.steps[run.index]
            why = {"step": step.branch, "status": "exhausted", "transport": timeout}
            # The action may have run: it is compensated too (null if it never ran).
            self._fail(txn, run, "exhausted", why, now, out)
            return
        # Wait out the backoff, then send again (tick does it).
        run.deadline = now + self._policy.backoff(min(run.attempts, 30))
        run.due = True

    def tick(self, now: float) -> list[TxnOutput]:
        """Send again the operations whose answer is late or whose backoff ran out."""
        out: list[TxnOutput] = []
        for txn, run in list(self._runs.items()):
            if now < run.deadline:
                continue
            if run.due:
                run.due = False
                self._send(txn, run, now, out)
            else:
                self._retry(txn, run, now, out, timeout=True)
        return out

    @property
    def next_deadline(self) -> float:
        """When ``tick`` has work next (infinity when idle)."""
        return min((r.deadline for r in self._runs.values()), default=float("inf"))

    def stats(self) -> SagaStats:
        """Counters since start."""
        return SagaStats(
            self._completed, self._compensated, len(self._runs), self._retries, self._timeouts
        )


def _fields(step: SagaStep) -> tuple[str, str, str, Any]:
    return (step.branch, step.service, step.action, step.payload)


class SagaParticipant:
    """Runs saga operations behind the barrier; ``handlers`` maps an action name to
    ``(action body, compensation body)``."""

    def __init__(self, journal: Journal, handlers: Mapping[str, tuple[Body, Body]]) -> None:
        self.journal = journal
        self.node = journal.node
        self.barrier = Barrier(journal)
        self.handlers = dict(handlers)
        self.runs = 0
        """Bodies actually run (repeats and null compensations excluded)."""

    def receive(self, now: float, msg: TxnMessage) -> list[TxnOutput]:
        """Run an invoked operation once and answer its outcome."""
        if msg.kind != "invoke":
            return []
        b = msg.body
        branch, op, action = b.get("branch"), b.get("op"), b.get("action")
        pair = self.handlers.get(action) if isinstance(action, str) else None
        with _obs.span(SPAN_STEP, {"txn": msg.txn, "branch": str(branch), "op": str(op)}):
            if pair is None or not isinstance(branch, str) or op not in ("action", "compensate"):
                status, detail = FAILED, f"no handler for {action!r} on {self.node}"
            else:
                body = pair[0] if op == "action" else pair[1]
                try:
                    res = self.barrier.run(
                        msg.txn, branch, op, _counted(self, body), b.get("payload"), now=now
                    )
                except ConfigurationError as exc:
                    status, detail = FAILED, str(exc)
                else:
                    status, detail = res.status, res.detail
        reply = {"branch": branch, "op": op, "status": status, "detail": detail}
        return [TxnSend(msg.sender, TxnMessage("outcome", msg.txn, self.node, reply))]


def _counted(p: SagaParticipant, body: Body) -> Body:
    def run(store: Any, payload: Any) -> Any:
        p.runs += 1
        return body(store, payload)

    return run
