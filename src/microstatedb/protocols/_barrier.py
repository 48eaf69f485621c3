"""Transaction records in a store's own log, and the idempotency barrier of saga steps.

A :class:`Journal` keeps each transaction as a map ``txn/<id>`` in a ``Store``, one register
per record: every record is one event, so it is appended atomically, replicates with the
store and survives restarts like any other write.

Writes that a transaction applies are plain data (:data:`Write`), applied right after the
record that carries them. The record notes the sequence number it took in the store's own
origin, so after a crash :meth:`Journal.redo` knows how many of its writes reached the log
(they follow the record contiguously) and applies only the rest: no write runs twice and none
is lost, provided nothing else writes to the store before recovery runs.

The barrier (after DTM's sub-transaction barrier, without SQL) guards each saga step by one
record per (transaction, branch, operation): a repeated action runs once, a compensation whose
action never ran does nothing (null compensation) and an action that arrives after its
compensation is refused (no hanging).
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.replica import Store

PREFIX = "txn/"
"""Key prefix of transaction records in a store."""

Write = tuple[str, str, Any]
"""A write as data: ``(kind, key, argument)`` with kind ``counter`` (add the integer
argument), ``register`` (set the value), ``add`` or ``discard`` (an element of a set)."""

WRITE_KINDS = ("counter", "register", "add", "discard")
"""The kinds a :data:`Write` may have; each appends exactly one event."""

OK, FAILED, RETRY = "ok", "failed", "retry"
"""Step outcomes: done; business failure (compensate, never retry); try again later."""
NULL, REFUSED, DUPLICATE = "null", "refused", "duplicate"
"""Barrier outcomes: compensation of a step that never ran; action after its compensation;
an operation seen before (its first outcome is answered again)."""


def check_writes(writes: Any) -> list[Write]:
    """``writes`` as a list of valid :data:`Write` tuples, else ``ConfigurationError``."""
    if not isinstance(writes, list | tuple):
        raise ConfigurationError(f"writes must be a list of (kind, key, argument), got {writes!r}")
    out: list[Write] = []
    for w in writes:
        if not isinstance(w, list | tuple) or len(w) != 3:
            raise ConfigurationError(f"a write is (kind, key, argument), got {w!r}")
        kind, key, arg = w
        if kind not in WRITE_KINDS:
            raise ConfigurationError(
                f"write kind must be one of {', '.join(WRITE_KINDS)}, got {kind!r}"
            )
        if not isinstance(key, str) or not key or key.startswith(PREFIX):
            raise ConfigurationError(
                f"a write's key must be a non-empty string outside {PREFIX!r}, got {key!r}"
            )
        if kind == "counter" and (isinstance(arg, bool) or not isinstance(arg, int)):
            raise ConfigurationError(f"a counter write adds an integer, got {arg!r}")
        out.append((kind, key, arg))
    return out


def apply_write(store: Store, write: Write) -> None:
    """Apply one write to ``store`` (one event)."""
    kind, key, arg = write
    if kind == "counter":
        if arg >= 0:
            store.counter(key).increment(arg)
        else:
            store.counter(key).decrement(-arg)
    elif kind == "register":
        store.register(key).set(arg)
    elif kind == "add":
        store.set(key).add(arg)
    else:
        store.set(key).remove(arg)


class Journal:
    """Transaction records kept in ``store``: one map per transaction, one event per record."""

    def __init__(self, store: Store) -> None:
        self.store = store

    @property
    def node(self) -> str:
        """The store's node id."""
        return self.store.node_id

    def put(self, txn: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
        """Append record ``field`` of ``txn`` (one event); returns the stored value."""
        node = self.store.node_id
        # The record's own sequence number, known before the append (the store numbers its
        # events one by one), so that redo can count the writes that follow it.
        rec = dict(value)
        rec["seq"] = self.store.version_vector.get(node, 0) + 1
        rec["node"] = node
        self.store.map(PREFIX + txn).register(field).set(rec)
        return rec

    def put_and_apply(self, txn: str, field: str, value: dict[str, Any]) -> dict[str, Any]:
        """Append the record, then apply its ``writes`` right after it."""
        rec = self.put(txn, field, {**value, "apply": True})
        for w in rec.get("writes", ()):
            apply_write(self.store, w)
        return rec

    def get(self, txn: str) -> dict[str, Any]:
        """The records of ``txn`` as ``{field: value}`` (empty if none)."""
        key = PREFIX + txn
        if key not in self.store:
            return {}
        value = self.store.map(key).value
        return {k: v for k, v in value.items() if isinstance(v, dict)}

    def txns(self) -> list[str]:
        """The ids of the transactions this store holds records of, sorted."""
        n = len(PREFIX)
        keys = self.store.keys()
        return [k[n:] for k in keys if k.startswith(PREFIX) and self.get(k[n:])]

    def redo(self) -> int:
        """Apply the writes of records whose writes were cut short by a crash; returns how many.

        Call on recovery, before anything else writes to the store.
        """
        node = self.store.node_id
        top = self.store.version_vector.get(node, 0)
        redone = 0
        for txn in self.txns():
            for rec in self.get(txn).values():
                writes = rec.get("writes")
                seq = rec.get("seq")
                if (
                    not rec.get("apply")  # intents are not applied
                    or rec.get("node") != node  # a replicated record: its origin applies it
                    or not writes
                    or not isinstance(seq, int)
                    or seq > top
                ):
                    continue
                done = top - seq
                for w in as_writes(writes[done:]):
                    apply_write(self.store, w)
                    redone += 1
                top = self.store.version_vector.get(node, 0)
        return redone


@dataclass(frozen=True, slots=True)
class StepResult:
    """What a barrier-guarded operation did."""

    status: str
    """``ok``, ``failed``, ``retry``, ``null`` (compensation of a step that never ran) or
    ``refused`` (an action after its compensation)."""
    repeated: bool
    """The operation was seen before: this is its first outcome, answered again."""
    detail: Any = None
    """The body's detail (a business reason, or a value to answer with)."""


@dataclass(frozen=True, slots=True)
class Outcome:
    """What a step body decides: ``status`` ``ok`` with ``writes``, ``failed`` or ``retry``."""

    status: str
    """``ok`` (apply ``writes``), ``failed`` (business failure) or ``retry`` (try later)."""
    writes: tuple[Write, ...] = ()
    """The writes to apply when ``status`` is ``ok``."""
    detail: Any = None
    """A reason or a value to answer with."""

    def __post_init__(self) -> None:
        if self.status not in (OK, FAILED, RETRY):
            raise ConfigurationError(f"outcome status must be ok, failed or retry: {self.status!r}")
        if self.writes and self.status != OK:
            raise ConfigurationError("only an ok outcome carries writes")
        check_writes(list(self.writes))


def ok(*writes: Write, detail: Any = None) -> Outcome:
    """A successful step that applies ``writes``."""
    return Outcome(OK, tuple(writes), detail)


def failed(detail: Any = None) -> Outcome:
    """A business failure: the saga compensates, nothing is retried."""
    return Outcome(FAILED, (), detail)


def retry(detail: Any = None) -> Outcome:
    """A transient refusal: the orchestrator tries again later (with backoff, up to a limit)."""
    return Outcome(RETRY, (), detail)


Body = Callable[[Store, Any], Outcome]
"""A step body: reads the store and the step's payload, returns an :class:`Outcome`."""


class Barrier:
    """Runs saga operations at most once per (transaction, branch, operation)."""

    def __init__(self, journal: Journal) -> None:
        self.journal = journal

    def run(
        self,
        txn: str,
        branch: str,
        op: str,
        body: Body,
        payload: Any = None,
        *,
        now: float = 0.0,
    ) -> StepResult:
        """Run ``body`` for ``op`` (``action`` or ``compensate``) of ``branch`` once.

        ``now`` is the time written into the records (for the timeline).
        """
        if op not in ("action", "compensate"):
            raise ConfigurationError(f"a barrier op is 'action' or 'compensate', got {op!r}")
        if not txn or not branch or "/" in branch:
            raise ConfigurationError(
                f"txn and branch must be non-empty (branch without '/'): {txn!r}, {branch!r}"
            )
        records = self.journal.get(txn)
        mine = records.get(f"b/{branch}/{op}")
        if mine is not None:
            return StepResult(_status(mine), True, mine.get("detail"))
        if op == "compensate":
            action = records.get(f"b/{branch}/action")
            if action is None:
                # Block the action first, so that if it arrives later it is refused.
                self.journal.put(txn, f"b/{branch}/action", {"status": REFUSED, "at": now})
                action = {"status": REFUSED}
            if action.get("status") != OK:
                self.journal.put(txn, f"b/{branch}/compensate", {"status": NULL, "at": now})
                return StepResult(NULL, False)
        out = body(self.journal.store, payload)
        if not isinstance(out, Outcome):
            raise ConfigurationError(f"a step body must return an Outcome, got {out!r}")
        if out.status == RETRY:
            # Nothing recorded: the same operation may run again later.
            return StepResult(RETRY, False, out.detail)
        rec: dict[str, Any] = {"status": out.status, "detail": out.detail, "at": now}
        if out.writes:
            rec["writes"] = [list(w) for w in out.writes]
        self.journal.put_and_apply(txn, f"b/{branch}/{op}", rec)
        return StepResult(out.status, False, out.detail)


def _status(rec: dict[str, Any]) -> str:
    status = rec.get("status")
    if not isinstance(status, str):
        raise DecodeError(f"a barrier record has no status: {rec!r}")
    return status


def as_writes(data: Sequence[Any]) -> list[Write]:
    """Writes read back from a record (lists) as tuples."""
    return [(w[0], w[1], w[2]) for w in data]
