"""Two-phase commit as sans-I/O state machines, durable in each party's own store.

The coordinator appends ``begin`` before it sends any ``prepare``, and ``decision`` before any
``decide``; a participant appends ``prepared/<node>`` (its write intents) before it votes yes,
and ``outcome/<node>`` with the writes when it learns the decision. Records are events in the
party's store (:class:`Journal`), so they replicate with it and survive restarts; the driver
flushes the store before it sends what a handler returned.

Presumed abort: a coordinator that finds ``begin`` without ``decision`` after a crash, or is
asked about a transaction it never began, answers abort. A participant that prepared and hears
nothing asks the coordinator, the other participants and the coordinator's replicas
(cooperative termination); a participant that has not voted yes answers abort and will then
vote no, so an undecided transaction can always be settled by anyone who knows.

Write intents lock their keys on a participant until the outcome: a prepare that touches a
locked key votes no at once (no waiting, so no deadlock). Over CRDT keys this gives atomic
visibility of the group of writes: none is applied before commit, all are applied after it.
"""

from __future__ import annotations

import random
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, NamedTuple

from microstatedb import observability as _obs
from microstatedb.codec import packb, unpackb
from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.protocols._barrier import Journal, Write, check_writes
from microstatedb.replica import Store
from microstatedb.resilience import Retry

KINDS = ("prepare", "vote", "decide", "ack", "query", "answer", "invoke", "outcome")
"""Message kinds of 2PC and sagas."""

_VERSION = 1
SPAN_PREPARE = "msdb.txn.prepare"
"""Span of a participant handling a prepare."""
SPAN_DECIDE = "msdb.txn.decide"
"""Span of a coordinator's decision or a participant applying one."""


class TxnMessage(NamedTuple):
    """A transaction message: ``kind`` of ``KINDS``, the transaction, the sender, fields."""

    kind: str
    txn: str
    sender: str
    body: dict[str, Any]


def encode_txn_message(msg: TxnMessage) -> bytes:
    """The wire form of ``msg`` (msgpack); ``ConfigurationError`` if a value cannot go."""
    try:
        return packb([_VERSION, msg.kind, msg.txn, msg.sender, msg.body])
    except (OverflowError, TypeError, ValueError) as exc:
        raise ConfigurationError(
            f"a {msg.kind} message of {msg.txn!r} holds a value msgpack cannot encode ({exc}); "
            "use str, bytes, bool, None, 64-bit int, float, list or dict"
        ) from exc


def decode_txn_message(data: bytes) -> TxnMessage:
    """Parse a transaction message; ``DecodeError`` if it is not one."""
    raw = unpackb(data)
    if (
        not isinstance(raw, list)
        or len(raw) != 5
        or raw[0] != _VERSION
        or raw[1] not in KINDS
        or not isinstance(raw[2], str)
        or not raw[2]
        or not isinstance(raw[3], str)
        or not isinstance(raw[4], dict)
    ):
        raise DecodeError(
            "not a transaction message: expected [1, kind, txn, sender, {fields}]; "
            "check that both sides run the same MicroStateDB version"
        )
    return TxnMessage(raw[1], raw[2], raw[3], raw[4])


@dataclass(frozen=True, slots=True)
class TxnSend:
    """Output: deliver ``message`` to node ``to``."""

    to: str
    """The destination node."""
    message: TxnMessage
    """The message (the driver encodes and authenticates it)."""


@dataclass(frozen=True, slots=True)
class Finished:
    """Output: the transaction ended (2PC: decided; saga: completed or compensated)."""

    txn: str
    """The transaction id."""
    status: str
    """``committed``, ``aborted``, ``completed`` or ``compensated``."""
    detail: Any = None
    """Why, when it did not go through (a vote, a business reason, a timeout)."""


TxnOutput = TxnSend | Finished


@dataclass(frozen=True, slots=True)
class TxnConfig:
    """Timeouts (seconds) and retry limits of the transaction protocols."""

    vote_timeout: float = 1.0
    """A coordinator aborts when a vote is missing after this long."""
    retry_base: float = 0.1
    """First resend delay of decisions, queries and saga steps (doubling, full jitter)."""
    retry_max: float = 2.0
    """Cap of the resend delay."""
    query_after: float = 1.0
    """A prepared participant starts asking for the decision after this long."""
    step_timeout: float = 1.0
    """A saga step without an answer after this long counts as a transport failure."""
    step_attempts: int = 4
    """Saga: attempts of one action (retries and transport failures) before compensating."""

    def __post_init__(self) -> None:
        for name in ("vote_timeout", "retry_base", "retry_max", "query_after", "step_timeout"):
            if not getattr(self, name) > 0:
                raise ConfigurationError(f"{name} must be positive seconds")
        if self.retry_max < self.retry_base:
            raise ConfigurationError("retry_max must be at least retry_base")
        if isinstance(self.step_attempts, bool) or self.step_attempts < 1:
            raise ConfigurationError("step_attempts must be an integer >= 1")

    def policy(self, rng: random.Random) -> Retry:
        """The backoff of resends, drawing jitter from ``rng``."""
        return Retry(
            max_attempts=self.step_attempts,
            base_delay=self.retry_base,
            max_delay=self.retry_max,
            rng=rng,
        )


def _check_txn(txn: Any) -> str:
    if not isinstance(txn, str) or not txn or "/" in txn or len(txn) > 200:
        raise ConfigurationError(f"a transaction id is a non-empty string without '/': {txn!r}")
    return txn


@dataclass(slots=True)
class _Pending:
    participants: list[str]
    deadline: float
    votes: dict[str, bool] = field(default_factory=dict)
    decision: bool | None = None
    acked: set[str] = field(default_factory=set)
    resends: int = 0
    headers: dict[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TwoPhaseStats:
    """Counters of one 2PC party since it started."""

    committed: int
    """Transactions this party saw commit."""
    aborted: int
    """Transactions this party saw abort."""
    in_doubt: int
    """Transactions prepared here and not yet decided (participant), or open (coordinator)."""
    resends: int
    """Decisions, prepares and queries sent again after a timeout."""


class Coordinator:
    """The coordinator of two-phase commit for the transactions it begins.

    It may also run on a replica of another coordinator's store: there it only answers
    queries about decisions its store already holds.
    """

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
        self._open: dict[str, _Pending] = {}
        self._committed = self._aborted = self._resends = 0
        self._recovery: list[TxnOutput] = self._recover(now)

    def recovered(self) -> list[TxnOutput]:
        """Messages to send after a restart (decisions to finish); empties the list."""
        out, self._recovery = self._recovery, []
        return out

    def _recover(self, now: float) -> list[TxnOutput]:
        out: list[TxnOutput] = []
        for txn in self.journal.txns():
            rec = self.journal.get(txn)
            begin = rec.get("begin")
            if begin is None or begin.get("coordinator") != self.node or "end" in rec:
                continue
            parts = list(begin["participants"])
            p = _Pending(parts, now)
            dec = rec.get("decision")
            if dec is None:
                # Presumed abort: no decision was sent, so abort is always safe.
                self._decide(txn, p, False, now, "coordinator restarted before deciding", out)
            else:
                p.decision = bool(dec["commit"])
                self._open[txn] = p
                out.extend(self._decisions(txn, p, parts))
                out.append(Finished(txn, "committed" if p.decision else "aborted", dec.get("why")))
                p.deadline = now + self._backoff(p)
        return out

    def begin(self, now: float, txn: str, writes: Mapping[str, Sequence[Write]]) -> list[TxnOutput]:
        """Start ``txn`` with each participant's writes; returns the prepares to send."""
        _check_txn(txn)
        if not writes or not isinstance(writes, Mapping):
            raise ConfigurationError("a transaction needs a mapping of participant -> writes")
        if self.journal.get(txn):
            raise ConfigurationError(f"transaction {txn!r} already exists; use a fresh id")
        checked = {str(p): check_writes(list(w)) for p, w in writes.items()}
        parts = sorted(checked)
        self.journal.put(txn, "begin", {"coordinator": self.node, "participants": parts, "at": now})
        p = _Pending(parts, now + self.config.vote_timeout, headers=dict(_obs.inject({})))
        self._open[txn] = p
        return [
            TxnSend(
                q,
                TxnMessage(
                    "prepare",
                    txn,
                    self.node,
                    {
                        "writes": [list(w) for w in checked[q]],
                        "participants": parts,
                        "coordinator": self.node,
                        "headers": p.headers,
                    },
                ),
            )
            for q in parts
        ]

    def _decisions(self, txn: str, p: _Pending, to: Iterable[str]) -> list[TxnOutput]:
        body = {"commit": p.decision, "headers": p.headers}
        return [TxnSend(q, TxnMessage("decide", txn, self.node, body)) for q in to]

    def _backoff(self, p: _Pending) -> float:
        p.resends += 1
        return self.config.retry_base + self._policy.backoff(p.resends)

    def _decide(
        self, txn: str, p: _Pending, commit: bool, now: float, why: Any, out: list[TxnOutput]
    ) -> None:
        with _obs.span(SPAN_DECIDE, {"txn": txn, "commit": commit}):
            self.journal.put(txn, "decision", {"commit": commit, "at": now, "why": why})
        p.decision = commit
        p.deadline = now + self.config.retry_base
        self._open[txn] = p
        if commit:
            self._committed += 1
        else:
            self._aborted += 1
        out.extend(self._decisions(txn, p, p.participants))
        out.append(Finished(txn, "committed" if commit else "aborted", why))

    def receive(self, now: float, msg: TxnMessage) -> list[TxnOutput]:
        """Handle a vote, an acknowledgement or a query."""
        out: list[TxnOutput] = []
        p = self._open.get(msg.txn)
        if msg.kind == "vote" and p is not None:
            if p.decision is None:
                yes = bool(msg.body.get("yes"))
                p.votes[msg.sender] = yes
                if not yes:
                    why = {"vote": "no", "by": msg.sender, "reason": msg.body.get("reason")}
                    self._decide(msg.txn, p, False, now, why, out)
                elif all(p.votes.get(q) for q in p.participants):
                    self._decide(msg.txn, p, True, now, "all voted yes", out)
            elif not p.decision and msg.sender not in p.acked:
                out.extend(self._decisions(msg.txn, p, [msg.sender]))
        elif msg.kind == "ack" and p is not None and p.decision is not None:
            p.acked.add(msg.sender)
            if p.acked.issuperset(p.participants):
                self.journal.put(msg.txn, "end", {"at": now})
                del self._open[msg.txn]
        elif msg.kind == "query":
            answer = self._answer(msg)
            if answer is not None:
                body = {"commit": answer}
                out.append(TxnSend(msg.sender, TxnMessage("answer", msg.txn, self.node, body)))
        return out

    def _answer(self, msg: TxnMessage) -> bool | None:
        rec = self.journal.get(msg.txn)
        dec = rec.get("decision")
        if dec is not None:
            return bool(dec["commit"])
        if msg.body.get("coordinator") == self.node and msg.txn not in self._open:
            return False  # presumed abort: never began here, or began before a crash
        return None  # still collecting votes, or a replica that has not seen the decision

    def tick(self, now: float) -> list[TxnOutput]:
        """Abort transactions whose votes are late; resend unacknowledged decisions."""
        out: list[TxnOutput] = []
        for txn, p in list(self._open.items()):
            if now < p.deadline:
                continue
            if p.decision is None:
                missing = [q for q in p.participants if q not in p.votes]
                self._decide(txn, p, False, now, {"timeout": missing}, out)
            else:
                self._resends += 1
                out.extend(self._decisions(txn, p, [q for q in p.participants if q not in p.acked]))
                p.deadline = now + self._backoff(p)
        return out

    @property
    def next_deadline(self) -> float:
        """When ``tick`` has work next (infinity when idle)."""
        return min((p.deadline for p in self._open.values()), default=float("inf"))

    def stats(self) -> TwoPhaseStats:
        """Counters since start."""
        return TwoPhaseStats(self._committed, self._aborted, len(self._open), self._resends)


Check = Callable[[Store, list[Write]], Any]
"""A participant's vote: ``None`` or ``True`` to vote yes, anything else is the no reason."""


@dataclass(slots=True)
class _Doubt:
    coordinator: str
    participants: list[str]
    deadline: float
    asks: int = 0


class Participant:
    """A 2PC participant: holds write intents on its keys from prepare until the outcome."""

    def __init__(
        self,
        journal: Journal,
        *,
        check: Check | None = None,
        replicas: Mapping[str, Sequence[str]] | None = None,
        config: TxnConfig | None = None,
        rng: random.Random | None = None,
        now: float = 0.0,
    ) -> None:
        self.journal = journal
        self.node = journal.node
        self.config = config or TxnConfig()
        self._check = check
        # Coordinator -> nodes holding replicas of its store, asked for lost decisions.
        self._replicas = {k: list(v) for k, v in (replicas or {}).items()}
        self._policy = self.config.policy(rng or random.Random())
        self.locks: dict[str, str] = {}
        """Locked key -> the transaction holding a write intent on it."""
        self._doubt: dict[str, _Doubt] = {}
        self._committed = self._aborted = self._resends = 0
        journal.redo()
        for txn in journal.txns():
            rec = journal.get(txn)
            prep = rec.get(f"prepared/{self.node}")
            if prep is not None and f"outcome/{self.node}" not in rec:
                self._hold(txn, prep, now)
                self._doubt[txn].deadline = now  # ask at once after a restart

    def _hold(self, txn: str, prep: Mapping[str, Any], now: float) -> None:
        for w in prep["writes"]:
            self.locks[w[1]] = txn
        self._doubt[txn] = _Doubt(
            prep["coordinator"], list(prep["participants"]), now + self.config.query_after
        )

    def _release(self, txn: str) -> None:
        self._doubt.pop(txn, None)
        for k in [k for k, t in self.locks.items() if t == txn]:
            del self.locks[k]

    def _vote(self, msg: TxnMessage, yes: bool, reason: Any = None) -> TxnOutput:
        body = {"yes": yes, "reason": reason}
        return TxnSend(msg.sender, TxnMessage("vote", msg.txn, self.node, body))

    def _settle(self, txn: str, commit: bool, now: float) -> None:
        rec = self.journal.get(txn)
        if f"outcome/{self.node}" in rec:
            return
        prep = rec.get(f"prepared/{self.node}")
        if commit and prep is not None:
            with _obs.span(SPAN_DECIDE, {"txn": txn, "node": self.node}):
                self.journal.put_and_apply(
                    txn,
                    f"outcome/{self.node}",
                    {"commit": True, "at": now, "writes": prep["writes"]},
                )
            self._committed += 1
        else:
            self.journal.put(txn, f"outcome/{self.node}", {"commit": False, "at": now})
            self._aborted += 1
        self._release(txn)

    def receive(self, now: float, msg: TxnMessage) -> list[TxnOutput]:
        """Handle a prepare, a decision, a query or an answer."""
        txn = msg.txn
        if msg.kind == "prepare":
            return [self._prepare(now, msg)]
        if msg.kind == "decide":
            self._settle(txn, bool(msg.body.get("commit")), now)
            return [TxnSend(msg.sender, TxnMessage("ack", txn, self.node, {}))]
        if msg.kind == "query":
            rec = self.journal.get(txn)
            out = rec.get(f"outcome/{self.node}")
            asked_as = msg.body.get("participants")
            member = isinstance(asked_as, list) and self.node in asked_as
            if out is None and f"prepared/{self.node}" not in rec and member:
                # Cooperative termination: not having voted yes, refuse to ever vote yes.
                # Only a participant may: a node outside the transaction (a replica of the
                # coordinator's store) has no vote to withhold.
                out = self.journal.put(
                    txn, f"outcome/{self.node}", {"commit": False, "at": now, "why": "terminated"}
                )
                self._aborted += 1
            if out is None:
                return []
            body = {"commit": bool(out["commit"])}
            return [TxnSend(msg.sender, TxnMessage("answer", txn, self.node, body))]
        if msg.kind == "answer" and txn in self._doubt:
            coordinator = self._doubt[txn].coordinator
            self._settle(txn, bool(msg.body.get("commit")), now)
            return [TxnSend(coordinator, TxnMessage("ack", txn, self.node, {}))]
        return []

    def _prepare(self, now: float, msg: TxnMessage) -> TxnOutput:
        txn = msg.txn
        rec = self.journal.get(txn)
        out = rec.get(f"outcome/{self.node}")
        if out is not None:
            return self._vote(msg, bool(out["commit"]), out.get("why"))
        if f"prepared/{self.node}" in rec:
            return self._vote(msg, True)
        with _obs.span(SPAN_PREPARE, {"txn": txn, "node": self.node}):
            try:
                writes = check_writes(msg.body.get("writes"))
                parts = [str(p) for p in msg.body["participants"]]
                coordinator = str(msg.body["coordinator"])
            except (ConfigurationError, KeyError, TypeError) as exc:
                reason: Any = f"malformed prepare: {exc}"
            else:
                busy = sorted({self.locks[w[1]] for w in writes if w[1] in self.locks})
                reason = f"keys locked by {busy}" if busy else None
                if reason is None and self._check is not None:
                    verdict = self._check(self.journal.store, writes)
                    reason = None if verdict is None or verdict is True else verdict
            if reason is not None:
                self.journal.put(
                    txn, f"outcome/{self.node}", {"commit": False, "at": now, "why": reason}
                )
                self._aborted += 1
                return self._vote(msg, False, reason)
            prep = {
                "writes": [list(w) for w in writes],
                "coordinator": coordinator,
                "participants": parts,
                "at": now,
            }
            self.journal.put(txn, f"prepared/{self.node}", prep)
            self._hold(txn, prep, now)
            return self._vote(msg, True)

    def tick(self, now: float) -> list[TxnOutput]:
        """Ask for the decisions of transactions in doubt for too long."""
        out: list[TxnOutput] = []
        for txn, d in self._doubt.items():
            if now < d.deadline:
                continue
            d.asks += 1
            self._resends += 1
            ask = [d.coordinator, *self._replicas.get(d.coordinator, ())]
            ask += [q for q in d.participants if q != self.node]
            body = {"coordinator": d.coordinator, "participants": d.participants}
            out.extend(TxnSend(q, TxnMessage("query", txn, self.node, body)) for q in ask)
            d.deadline = now + self.config.retry_base + self._policy.backoff(d.asks)
        return out

    @property
    def next_deadline(self) -> float:
        """When ``tick`` has work next (infinity when nothing is in doubt)."""
        return min((d.deadline for d in self._doubt.values()), default=float("inf"))

    def stats(self) -> TwoPhaseStats:
        """Counters since start."""
        return TwoPhaseStats(self._committed, self._aborted, len(self._doubt), self._resends)
