"""Per-key consensus without a log (CASPaxos), with read leases, as a sans-I/O state machine.

Each key is a register changed by functions: a change runs ``prepare`` on every acceptor,
takes the value of the highest accepted ballot among a majority of promises, applies the
function, and has a majority accept the result. A compare-and-set, a conditional update and a
read-modify-write are all changes; a quorum read is the identity change (it commits what it
read, so no later read can see an older value).

One ``QuorumNode`` per node plays the three roles: acceptor (with its durable state in an
``AcceptorStorage`` and a ``LeaseTable``), proposer, and lease holder (``LeaseHolder``). The
driver calls ``tick(now)`` at ``next_deadline``, ``receive(now, sender, payload)`` for every
message, and ``submit``/``lease_read`` for client work, and carries out the ``Send`` and
``Done`` outputs. ``now`` is the node's own monotonic clock; nothing here reads a clock.

Failure behaviour: ``submit`` raises ``Unavailable`` at once (nothing sent) when fewer than a
majority of nodes have been heard from within ``suspect_after``; a change that times out
before any accept went out ends in ``Unavailable`` (certainly not applied); one that timed out
or was outbid after an accept went out ends in ``Indeterminate`` (it may have applied).
"""

from __future__ import annotations

import random
from collections import deque
from collections.abc import Callable, Hashable, Iterable
from dataclasses import dataclass, field
from typing import Any, Protocol

from microstatedb.codec import packb, unpackb
from microstatedb.errors import (
    ConfigurationError,
    CorruptData,
    Indeterminate,
    MicroStateError,
    Unavailable,
)
from microstatedb.protocols._antientropy import Send
from microstatedb.protocols._lease import ZERO, Ballot, LeaseConfig, LeaseHolder, LeaseTable

Change = Callable[[Any], tuple[Any, Any]]
"""A change: current value -> (new value, result for the caller)."""

(
    _PREPARE,
    _PROMISE,
    _ACCEPT,
    _ACCEPTED,
    _REJECT,
    _LEASE_ASK,
    _LEASE_GRANT,
    _INVALIDATE,
    _INVALIDATED,
    _PING,
) = range(1, 11)
KINDS = {
    _PREPARE: "prepare",
    _PROMISE: "promise",
    _ACCEPT: "accept",
    _ACCEPTED: "accepted",
    _REJECT: "reject",
    _LEASE_ASK: "lease-ask",
    _LEASE_GRANT: "lease-grant",
    _INVALIDATE: "invalidate",
    _INVALIDATED: "invalidated",
    _PING: "ping",
}
"""Message kinds by their wire number, for drivers that treat kinds differently."""


def message_kind(payload: bytes) -> str:
    """The kind name of an encoded quorum message (``"?"`` when unreadable)."""
    try:
        return KINDS.get(unpackb(payload)[0], "?")
    except Exception:
        return "?"


@dataclass(frozen=True, slots=True)
class Done:
    """Output: client operation ``op`` finished with ``value`` or with ``error``."""

    op: int
    """The id ``submit`` returned."""
    value: Any
    """The change's result (a read's value, a cas's bool) when ``error`` is None."""
    error: MicroStateError | None
    """``Unavailable`` (certainly not applied) or ``Indeterminate`` (unknown), else None."""
    ballot: Ballot = ZERO
    """The ballot the change was chosen at."""


QuorumOutput = Send | Done


@dataclass(frozen=True, slots=True)
class QuorumConfig:
    """Tuning of the per-key consensus."""

    lease: LeaseConfig = field(default_factory=LeaseConfig)
    """Read leases (``LeaseConfig(enabled=False)`` turns them off)."""
    heartbeat: float = 0.05
    """Seconds between pings to every peer (liveness for fail-fast refusals)."""
    suspect_after: float = 0.3
    """A peer not heard from for this long counts as unreachable."""
    timeout: float = 3.0
    """Seconds a change may take before it ends in Unavailable or Indeterminate."""
    backoff: float = 0.02
    """Mean seconds before retrying a prepare that was outbid (randomised)."""
    resend: float = 0.1
    """Seconds between re-sends of unanswered prepares, accepts and invalidations."""

    def __post_init__(self) -> None:
        for name in ("heartbeat", "suspect_after", "timeout", "backoff", "resend"):
            value = getattr(self, name)
            if not value > 0 or value == float("inf"):
                raise ConfigurationError(f"{name} must be finite seconds > 0, not {value!r}")


class AcceptorStorage(Protocol):
    """Where an acceptor keeps ``(promised, accepted, value)`` per key, durably."""

    def load(self) -> dict[Hashable, tuple[Ballot, Ballot, Any]]:
        """Everything saved so far."""
        ...

    def save(self, key: Hashable, promised: Ballot, accepted: Ballot, value: Any) -> None:
        """Persist one key's record before the acceptor answers (fsync for a real disk)."""
        ...


class MemoryStorage:
    """Acceptor storage in a dict: it survives a simulated crash, not a real one."""

    def __init__(self) -> None:
        self.records: dict[Hashable, tuple[Ballot, Ballot, Any]] = {}
        self.saves = 0

    def load(self) -> dict[Hashable, tuple[Ballot, Ballot, Any]]:
        return dict(self.records)

    def save(self, key: Hashable, promised: Ballot, accepted: Ballot, value: Any) -> None:
        self.saves += 1
        self.records[key] = (promised, accepted, value)


# ------------------------------------------------------------------------------- messages


def _b(raw: Any) -> Ballot:
    if (
        not isinstance(raw, list | tuple)
        or len(raw) != 2
        or not isinstance(raw[0], int)
        or not isinstance(raw[1], str)
    ):
        raise CorruptData(f"malformed ballot {raw!r}")
    return (raw[0], raw[1])


def encode(kind: int, *fields: Any) -> bytes:
    """The msgpack form of a quorum message."""
    return packb([kind, *fields])


def decode(payload: bytes) -> list[Any]:
    """Parse a quorum message; anything malformed raises ``CorruptData``."""
    try:
        fields = unpackb(payload)
    except Exception as exc:
        raise CorruptData(f"malformed quorum message: {exc}") from exc
    if not isinstance(fields, list) or not fields or fields[0] not in KINDS:
        raise CorruptData("malformed quorum message: unknown kind")
    return fields


# ------------------------------------------------------------------------------- the roles


@dataclass(slots=True)
class _Pending:
    """An accepted proposal whose acknowledgement waits for invalidations or lease expiry."""

    proposer: str
    key: Hashable
    ballot: Ballot
    req: int
    waiting: set[str]
    until: float
    resend_at: float


@dataclass(slots=True)
class _Op:
    id: int
    key: Hashable
    fn: Change
    read_only: bool
    deadline: float
    ballot: Ballot = ZERO
    phase: int = 0  # 0 waiting to start, 1 prepare, 2 accept
    promises: dict[str, tuple[Ballot, Any]] = field(default_factory=dict)
    accepted: set[str] = field(default_factory=set)
    new_value: Any = None
    result: Any = None
    accept_sent: bool = False
    start_at: float = 0.0
    resend_at: float = 0.0
    req: int = 0


@dataclass(frozen=True, slots=True)
class QuorumStats:
    """Counts of one node's consensus work."""

    committed: int
    """Changes chosen by a majority that this node proposed."""
    lease_reads: int
    """Reads served locally under a lease."""
    refused: int
    """Submissions refused at once (no majority reachable)."""
    indeterminate: int
    """Changes that ended with an unknown outcome."""
    unavailable: int
    """Changes that timed out before any accept went out."""
    retries: int
    """Prepares retried after being outbid."""
    invalidations: int
    """Invalidations this acceptor sent before acknowledging a write."""
    waited_out: int
    """Acknowledgements this acceptor gave only after a lease ran out."""


class QuorumNode:
    """Acceptor, proposer and lease holder of one node; see the module docstring."""

    def __init__(
        self,
        name: str,
        nodes: Iterable[str],
        *,
        now: float,
        rng: random.Random,
        config: QuorumConfig | None = None,
        storage: AcceptorStorage | None = None,
        lease_table_lost: bool = False,
        epoch: int = 0,
    ) -> None:
        self.name = name
        # Ballots carry the epoch (a boot counter), so a restarted proposer never reuses one.
        self._proposer = f"{name}.{epoch}"
        self.nodes = sorted(set(nodes) | {name})
        self.majority = len(self.nodes) // 2 + 1
        self.config = config if config is not None else QuorumConfig()
        self.rng = rng
        self.storage: AcceptorStorage = storage if storage is not None else MemoryStorage()
        self._state: dict[Hashable, tuple[Ballot, Ballot, Any]] = self.storage.load()
        self._round = max((p[0] for p, _a, _v in self._state.values()), default=0)
        self.leases = LeaseTable(self.config.lease)
        self.holder = LeaseHolder(self.config.lease, self.majority)
        # An acceptor that lost its lease table may have granted leases it no longer knows:
        # it acknowledges no write until any such lease has run out.
        self._safe_after = now + self.config.lease.duration if lease_table_lost else now
        self._pending: list[_Pending] = []
        self._heard: dict[str, float] = {n: float("-inf") for n in self.nodes}
        self._heard[name] = float("inf")
        self._ops: dict[int, _Op] = {}
        self._queues: dict[Hashable, deque[_Op]] = {}
        self._next_op = 0
        self._next_ping = now
        self._next_renew = now
        self._committed = self._lease_reads = self._refused = 0
        self._indeterminate = self._unavailable = self._retries = 0
        self._invalidations = self._waited_out = 0

    # -------------------------------------------------------------------------- liveness

    def reachable(self, now: float) -> list[str]:
        """Nodes heard from within ``suspect_after`` (this one included)."""
        limit = now - self.config.suspect_after
        return [n for n, t in self._heard.items() if t >= limit]

    def has_quorum(self, now: float) -> bool:
        """True when a majority of nodes is reachable."""
        return len(self.reachable(now)) >= self.majority

    @property
    def next_deadline(self) -> float:
        """When ``tick`` must next be called (this node's clock)."""
        times = [self._next_ping]
        for op in self._ops.values():
            times.append(op.deadline)
            if op.phase != 0:
                times.append(op.resend_at)
            elif self._queues[op.key][0] is op:
                times.append(op.start_at)
        for p in self._pending:
            times.append(max(min(p.until, p.resend_at), self._safe_after))
        return min(times)

    # --------------------------------------------------------------------------- client

    def submit(self, now: float, key: Hashable, fn: Change, *, read_only: bool = False) -> int:
        """Start a change of ``key``; its ``Done`` comes out of later calls.

        Raises ``Unavailable`` at once, sending nothing, when no majority is reachable.
        ``read_only`` marks the identity change of a read (safe to retry after an accept).
        """
        if not self.has_quorum(now):
            self._refused += 1
            reach = len(self.reachable(now))
            raise Unavailable(
                f"node {self.name!r} reaches {reach} of {len(self.nodes)} nodes, fewer than the "
                f"majority of {self.majority} that linearizable work needs; nothing was sent. "
                "Retry later, or read with an explicitly stale level"
            )
        self._next_op += 1
        op = _Op(self._next_op, key, fn, read_only, now + self.config.timeout, start_at=now)
        self._ops[op.id] = op
        queue = self._queues.setdefault(key, deque())
        queue.append(op)
        return op.id

    def lease_read(self, key: Hashable, now: float) -> tuple[bool, Any]:
        """A local linearizable read under a lease: ``(True, value)``, else ``(False, None)``.

        The caller re-checks ``holder.holds(key, later)`` after using the value if time may
        have passed in between.
        """
        if not self.config.lease.enabled:
            return False, None
        hit, value = self.holder.read(key, now)
        if hit:
            self._lease_reads += 1
        return hit, value

    def bounded_read(self, key: Hashable, now: float, max_lag: float) -> tuple[bool, Any]:
        """A local read that reflects every write acknowledged more than ``max_lag`` seconds
        ago: ``(True, value)``, else ``(False, None)`` (then read through the quorum).

        Fresh under a lease; after the lease ends (or an invalidation), the cached value stays
        servable for ``max_lag`` seconds from the last moment it was known fresh.
        """
        if not max_lag >= 0:
            raise ConfigurationError(f"max_lag must be seconds >= 0, not {max_lag!r}")
        return self.holder.stale_read(key, now, max_lag)

    # ----------------------------------------------------------------------------- ticks

    def tick(self, now: float) -> list[QuorumOutput]:
        """Timers: pings, op starts, retries, resends, timeouts, lease waits and renewals."""
        out: list[QuorumOutput] = []
        if now >= self._next_ping:
            self._next_ping = now + self.config.heartbeat
            ping = encode(_PING)
            out.extend(Send(n, ping) for n in self.nodes if n != self.name)
        self._release(now, out)
        for op in list(self._ops.values()):
            if now >= op.deadline:
                self._finish_timeout(op, out)
            elif op.phase == 0:
                if now >= op.start_at and self._queues[op.key][0] is op:
                    self._prepare(op, now, out)
            elif now >= op.resend_at:
                op.resend_at = now + self.config.resend
                self._broadcast_phase(op, out)
        if self.config.lease.enabled and now >= self._next_renew:
            self._next_renew = now + self.config.heartbeat
            for key in self.holder.to_renew(now):
                self._ask_lease(key, now, out)
        return out

    def _release(self, now: float, out: list[QuorumOutput]) -> None:
        keep: list[_Pending] = []
        for p in self._pending:
            if now < self._safe_after:
                keep.append(p)
                continue
            if p.waiting and now >= p.until:
                # The leases waited on ran out. Nothing is revoked: a holder may have renewed
                # meanwhile, and its newer grant must keep protecting it.
                self._waited_out += 1
                p.waiting.clear()
            if not p.waiting:
                out.append(Send(p.proposer, encode(_ACCEPTED, p.key, list(p.ballot), p.req)))
                continue
            if now >= p.resend_at:
                p.resend_at = now + self.config.resend
                msg = encode(_INVALIDATE, p.key, list(p.ballot))
                out.extend(Send(h, msg) for h in p.waiting)
            keep.append(p)
        self._pending = keep

    # --------------------------------------------------------------------------- proposer

    def _prepare(self, op: _Op, now: float, out: list[QuorumOutput]) -> None:
        self._round += 1
        op.ballot = (self._round, self._proposer)
        op.phase = 1
        op.promises = {}
        op.accepted = set()
        op.resend_at = now + self.config.resend
        self._broadcast_phase(op, out)

    def _broadcast_phase(self, op: _Op, out: list[QuorumOutput]) -> None:
        ballot = list(op.ballot)
        if op.phase == 1:
            msg = encode(_PREPARE, op.key, ballot, op.id)
            targets = [n for n in self.nodes if n not in op.promises]
        else:
            msg = encode(_ACCEPT, op.key, ballot, op.id, op.new_value)
            targets = [n for n in self.nodes if n not in op.accepted]
        out.extend(Send(n, msg) for n in targets)

    def _on_promise(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, _key, ballot, op_id, acc, value = f
        op = self._ops.get(op_id)
        if op is None or op.phase != 1 or _b(ballot) != op.ballot:
            return
        op.promises[sender] = (_b(acc), value)
        if len(op.promises) < self.majority:
            return
        _, current = max(op.promises.values(), key=lambda item: item[0])
        try:
            op.new_value, op.result = op.fn(current)
        except MicroStateError as exc:
            self._done(op, out, error=exc)
            return
        op.phase = 2
        op.accept_sent = True
        op.resend_at = now + self.config.resend
        self._broadcast_phase(op, out)

    def _on_accepted(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, key, ballot, op_id = f
        op = self._ops.get(op_id)
        if op is None or op.phase != 2 or _b(ballot) != op.ballot:
            return
        op.accepted.add(sender)
        if len(op.accepted) < self.majority:
            return
        self._committed += 1
        self.holder.fill(key, op.ballot, op.new_value, op.deadline - self.config.timeout)
        if self.config.lease.enabled and not self.holder.holds(key, now):
            self._ask_lease(key, now, out)
        self._done(op, out, value=op.result)

    def _on_reject(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, _key, ballot, op_id, promised = f
        op = self._ops.get(op_id)
        if op is None or op.phase == 0 or _b(ballot) != op.ballot:
            return
        self._round = max(self._round, _b(promised)[0])
        if op.accept_sent and not op.read_only:
            # our value may already be accepted somewhere and chosen later: unknown outcome
            self._indeterminate += 1
            self._done(
                op,
                out,
                error=Indeterminate(
                    f"the change of {op.key!r} was outbid after its accept went out; it may or "
                    "may not have applied. Read the key before retrying"
                ),
            )
            return
        self._retries += 1
        op.phase = 0
        op.start_at = now + self.rng.uniform(0, 2 * self.config.backoff)

    def _finish_timeout(self, op: _Op, out: list[QuorumOutput]) -> None:
        error: MicroStateError
        if op.accept_sent and not op.read_only:
            self._indeterminate += 1
            error = Indeterminate(
                f"no majority acknowledged the change of {op.key!r} within "
                f"{self.config.timeout}s after its accept went out; it may or may not have "
                "applied. Read the key before retrying"
            )
        else:
            self._unavailable += 1
            error = Unavailable(
                f"no majority answered for {op.key!r} within {self.config.timeout}s; nothing "
                "was applied. Retry later"
            )
        self._done(op, out, error=error)

    def _done(
        self,
        op: _Op,
        out: list[QuorumOutput],
        *,
        value: Any = None,
        error: MicroStateError | None = None,
    ) -> None:
        del self._ops[op.id]
        queue = self._queues[op.key]
        queue.remove(op)
        if not queue:
            del self._queues[op.key]
        out.append(Done(op.id, value, error, op.ballot))

    def _ask_lease(self, key: Hashable, now: float, out: list[QuorumOutput]) -> None:
        req = self.holder.ask(key, now)
        msg = encode(_LEASE_ASK, key, req)
        out.extend(Send(n, msg) for n in self.nodes)

    # --------------------------------------------------------------------------- acceptor

    def _record(self, key: Hashable) -> tuple[Ballot, Ballot, Any]:
        return self._state.get(key, (ZERO, ZERO, None))

    def _on_prepare(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, key, raw, op_id = f
        ballot = _b(raw)
        promised, accepted, value = self._record(key)
        if ballot > promised:
            self._state[key] = (ballot, accepted, value)
            self.storage.save(key, ballot, accepted, value)
            out.append(Send(sender, encode(_PROMISE, key, raw, op_id, list(accepted), value)))
        elif ballot == promised:  # a resend of the prepare we promised
            out.append(Send(sender, encode(_PROMISE, key, raw, op_id, list(accepted), value)))
        else:
            out.append(Send(sender, encode(_REJECT, key, raw, op_id, list(promised))))

    def _on_accept(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, key, raw, op_id, new = f
        ballot = _b(raw)
        promised, accepted, _value = self._record(key)
        if ballot < promised:
            out.append(Send(sender, encode(_REJECT, key, raw, op_id, list(promised))))
            return
        if accepted != ballot:
            self._state[key] = (ballot, ballot, new)
            self.storage.save(key, ballot, ballot, new)
        for p in self._pending:
            if p.key == key and p.ballot == ballot and p.proposer == sender:
                return  # a resend: the acknowledgement is already on its way
        # The lease rule: a live lease holder learns of the write before we acknowledge it.
        holders = self.leases.live(key, now)
        if not holders and now >= self._safe_after:
            out.append(Send(sender, encode(_ACCEPTED, key, raw, op_id)))
            return
        until = max(holders.values(), default=now)
        self._pending.append(
            _Pending(sender, key, ballot, op_id, set(holders), until, now + self.config.resend)
        )
        if holders:
            self._invalidations += len(holders)
            msg = encode(_INVALIDATE, key, raw)
            out.extend(Send(h, msg) for h in holders)

    def _on_invalidated(self, sender: str, f: list[Any]) -> None:
        _kind, key, raw = f
        ballot = _b(raw)
        # The lease stays recorded: later writes invalidate the holder again until it expires.
        for p in self._pending:
            if p.key == key and p.ballot <= ballot:
                p.waiting.discard(sender)

    def _on_lease_ask(self, now: float, sender: str, f: list[Any], out: list[QuorumOutput]) -> None:
        _kind, key, req = f
        if now < self._safe_after:
            return  # not before our forgotten leases have run out
        self.leases.grant(key, sender, now)
        _promised, accepted, _value = self._record(key)
        # pending acknowledgements of this key carry ballots at most the accepted one
        out.append(Send(sender, encode(_LEASE_GRANT, key, req, list(accepted))))

    # ---------------------------------------------------------------------------- receive

    def receive(self, now: float, sender: str, payload: bytes) -> list[QuorumOutput]:
        """Handle one message from ``sender``; malformed ones raise ``CorruptData``."""
        if sender not in self._heard:
            raise CorruptData(f"quorum message from {sender!r}, which is not a member")
        f = decode(payload)
        if sender != self.name:
            self._heard[sender] = max(self._heard[sender], now)
        out: list[QuorumOutput] = []
        kind = f[0]
        try:
            if kind == _PING:
                pass
            elif kind == _PREPARE:
                self._on_prepare(now, sender, f, out)
            elif kind == _PROMISE:
                self._on_promise(now, sender, f, out)
            elif kind == _ACCEPT:
                self._on_accept(now, sender, f, out)
            elif kind == _ACCEPTED:
                self._on_accepted(now, sender, f, out)
            elif kind == _REJECT:
                self._on_reject(now, sender, f, out)
            elif kind == _LEASE_ASK:
                self._on_lease_ask(now, sender, f, out)
            elif kind == _LEASE_GRANT:
                _k, _key, req, raw = f
                self.holder.granted(req, sender, _b(raw))
            elif kind == _INVALIDATE:
                _k, key, raw = f
                self.holder.fence(key, _b(raw))
                out.append(Send(sender, encode(_INVALIDATED, key, raw)))
            else:
                self._on_invalidated(sender, f)
        except (ValueError, TypeError) as exc:
            raise CorruptData(f"malformed {KINDS[kind]} message: {exc}") from exc
        return out

    def stats(self) -> QuorumStats:
        """Counts so far."""
        return QuorumStats(
            committed=self._committed,
            lease_reads=self._lease_reads,
            refused=self._refused,
            indeterminate=self._indeterminate,
            unavailable=self._unavailable,
            retries=self._retries,
            invalidations=self._invalidations,
            waited_out=self._waited_out,
        )

    def value_of(self, key: Hashable) -> Any:
        """This acceptor's accepted value of ``key`` (an explicitly stale read)."""
        return self._record(key)[2]

    def accepted_ballot(self, key: Hashable) -> Ballot:
        """The ballot of this acceptor's accepted value of ``key``."""
        return self._record(key)[1]

    def __repr__(self) -> str:
        return f"<QuorumNode {self.name!r} of {len(self.nodes)}, {len(self._ops)} ops in flight>"
