"""One node's store: the event log, the CRDT state folded from it, and the version vector.

A local write is: the CRDT handle applies its delta, the store wraps the delta in an event
(dot, HLC timestamp, compact causal context) and appends it to the log. Nothing waits on the
network. Remote events arrive in batches; each is applied once its causal context is
satisfied, else it waits in a bounded buffer.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import TracebackType
from typing import Any, TypeVar

from microstatedb import observability as _obs
from microstatedb.clock import HLC, Clock
from microstatedb.codec import EVENT_FORMAT, Event, digest_of, pack_trusted, packb, unpackb
from microstatedb.crdt import (
    CRDT,
    KINDS,
    AWSet,
    Document,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    new_crdt,
)
from microstatedb.errors import (
    ConfigurationError,
    CorruptData,
    DecodeError,
    InvalidOperation,
    MicroStateError,
    StoreClosed,
    TypeMismatch,
)
from microstatedb.log import EventLog, EventStore, RecoveryReport
from microstatedb.replica._batch import decode_batch, encode_batch
from microstatedb.replica._consistency import Consistency, KeyModes
from microstatedb.replica._schema_hook import (
    BOUND,
    BoundMap,
    BoundMVRegister,
    BoundRegister,
    BoundSet,
    ValueSchema,
)
from microstatedb.replica._session import Session

try:  # the compiled write path (see _writer); the Python one below writes the same bytes
    from microstatedb import _speedups
    from microstatedb._speedups import WriteState as _WriteState
except ImportError:  # pragma: no cover - a build without the C extension
    _speedups = None  # type: ignore[assignment]

    class _WriteState:  # type: ignore[no-redef]
        """The fields a store's write path reads and updates."""

        _blocked: str | None
        _deps: dict[str, int]
        _touched: dict[str, dict[str, int]]
        _since_snapshot: int
        _snapshot_every: int


T = TypeVar("T")

_DURABILITY = ("none", "batch", "always")
_UNSEEN: Any = object()
_SNAPSHOT_FORMAT = 1


@dataclass(frozen=True, slots=True)
class StoreStats:
    """A point-in-time view of a store's bookkeeping."""

    keys: int
    """Number of keys holding a CRDT."""
    events_applied: int
    """Events reflected in the state (the sum of the version vector)."""
    events_in_log: int
    """Events still held by the local log (memory or disk)."""
    buffered: int
    """Remote events waiting for their causal context."""
    snapshots_taken: int
    """Snapshots written since the store opened."""
    dropped_from_buffer: int
    """Remote events dropped because the causal buffer was full (they are fetched again)."""


class Store(_WriteState):
    """An embedded replica: local CRDT state derived from an append-only event log.

    ``path=None`` keeps everything in memory; with a path, the log and snapshots live in that
    folder and survive restarts. ``log=False`` keeps state only (no history): it replicates by
    shipping state and, when durable, persists by snapshots alone.

    Like a dict, a store is used by one thread at a time: an asyncio loop, or threads that
    share one lock. Its write path takes no lock of its own.
    """

    # Whether new key writers use the compiled write path (tests switch it off to hold the
    # Python path to the same bytes).
    _native: bool = _speedups is not None

    # Key prefix -> (schema, subject). None until a prefix is bound, so a store without
    # schemas pays one attribute test per handle lookup and nothing on its write path.
    _schemas: dict[str, tuple[ValueSchema, str]] | None = None
    # The binding of each existing key (None: unbound), so looking up a key's handle again
    # is one dict probe; bounded by the keys the store holds.
    _key_schemas: dict[str, tuple[ValueSchema, str] | None]

    def __init__(
        self,
        node_id: str,
        path: str | os.PathLike[str] | None = None,
        *,
        durability: str = "batch",
        log: bool = True,
        clock: Clock | None = None,
        max_drift: float = 60.0,
        snapshot_every: int = 50_000,
        archive: EventStore | None = None,
        repair: bool = False,
        buffer_limit: int = 100_000,
        segment_bytes: int = 16 * 2**20,
        key: bytes | None = None,
        consistency: Mapping[str, Consistency | str] | KeyModes | None = None,
    ) -> None:
        if not isinstance(node_id, str) or not node_id or len(node_id) > 255:
            raise ConfigurationError(
                f"node_id must be a non-empty string of at most 255 characters, got {node_id!r}"
            )
        if durability not in _DURABILITY:
            raise ConfigurationError(
                f"durability must be one of {', '.join(_DURABILITY)}; got {durability!r}"
            )
        if type(snapshot_every) is not int or not 1 <= snapshot_every <= sys.maxsize:
            raise ConfigurationError(
                f"snapshot_every must be a whole number of events from 1 to {sys.maxsize}, "
                f"got {snapshot_every!r}"
            )
        if key is not None and len(key) != 32:
            raise ConfigurationError("key must be 32 bytes (a blake3 MAC key) or None")
        self.node_id = node_id
        self.path = os.fspath(path) if path is not None else None
        self.modes = consistency if isinstance(consistency, KeyModes) else KeyModes(consistency)
        """The default consistency per key prefix (a key lives in one mode)."""
        self.durability = durability
        self.keeps_log = log
        self._hlc = HLC(clock, max_drift=max_drift)
        self._clock_now = self._hlc.now
        self._snapshot_every = snapshot_every
        self._last_snapshot: tuple[int, dict[str, int]] | None = None
        self._archive = archive
        self._buffer_limit = buffer_limit
        self._key = key
        self._objs: dict[str, CRDT] = {}
        self._vv: dict[str, int] = {}
        # Entries of other origins that grew since our last local event: the next event's deps.
        self._deps: dict[str, int] = {}
        # Per origin, the highest seq whose event is not in the local log (released or
        # received as state); a peer below it gets state instead of events.
        self._floor: dict[str, int] = {}
        # log=False: the dots each key was last touched by, to ship only changed keys.
        self._touched: dict[str, dict[str, int]] = {}
        self._buffer: dict[str, dict[int, Event]] = {}
        self._buffered = 0
        self._dropped = 0
        self._since_snapshot = 0
        self._snapshots = 0
        self._closed = False
        # Why local writes are refused (closed, or own events lost to corruption), else None:
        # one attribute test on the write path covers both.
        self._blocked: str | None = None
        self.lost: dict[str, tuple[int, int]] = {}
        """Events lost to repaired corruption and not covered by a snapshot, per origin:
        ``(first seq, last seq)``. Anti-entropy brings them back from peers that have them."""
        self._log = EventLog(
            self.path,
            durability=durability,
            segment_bytes=segment_bytes,
            repair=repair,
        )
        # Where the write path puts an encoded event (see _writer): in memory the log's own
        # list; durable, the log's lock-free single writer, or under 'always' the append that
        # waits for its fsync.
        self._events = self._log.encoded_events() if self.path is None else None
        self._put: Callable[[bytes, str, int], object] = self._log.append_encoded
        if self.path is not None and durability != "always" and self.keeps_log:
            self._put = self._log.single_writer()
        self._open()

    # ----------------------------------------------------------------- opening and closing

    @_obs.traced(_obs.names.SPAN_RECOVERY)
    def _open(self) -> None:
        snap = self._log.latest_snapshot()
        start = self._log.first_position
        if snap is not None:
            self._restore(snap.state)
            start = snap.info.position
        for ev in self._log.read(max(start, self._log.first_position)):
            if ev.seq <= self._vv.get(ev.origin, 0):
                continue
            self._apply_event(ev, replay=True)
        self._since_snapshot = self._log.next_position - start
        self._note_lost()
        if _obs.active() or not self._log.recovery.clean:
            _obs.record_open(self.node_id, self._log.recovery.clean, self._lost_count())
            self._report()

    def _note_lost(self) -> None:
        # Each origin's events are contiguous, so everything between what replay reached and
        # the highest dot found in the moved-aside bytes is lost, undecodable frames included.
        for origin, seq in self._log.recovery.lost_dots:
            have = self._vv.get(origin, 0)
            if seq > have:
                _first, last = self.lost.get(origin, (have + 1, seq))
                self.lost[origin] = (have + 1, max(last, seq))
        if self.node_id in self.lost:
            first, last = self.lost[self.node_id]
            self._blocked = (
                f"store {self.node_id!r} lost its own events {first}..{last} to corruption; "
                "sync with a peer that has them before writing (or call accept_loss() if no "
                "peer ever received them)"
            )

    def _recovered(self) -> None:
        # Called after remote events arrive: drop the loss entries peers have filled.
        for origin, (_first, last) in list(self.lost.items()):
            if self._vv.get(origin, 0) >= last:
                del self.lost[origin]
        if self.node_id not in self.lost and not self._closed:
            self._blocked = None

    def accept_loss(self) -> None:
        """Allow local writes again although own events were lost and not recovered.

        New events reuse the lost sequence numbers: safe only when no peer ever received the
        lost events (a peer that did would ignore the new ones as duplicates).
        """
        self._check_open()
        self.lost.pop(self.node_id, None)
        self._blocked = None

    def _restore(self, blob: bytes) -> None:
        try:
            data = unpackb(blob)
            if not isinstance(data, dict) or data.get("format") != _SNAPSHOT_FORMAT:
                raise DecodeError("unknown snapshot format")
            for key, kind, state in data["objs"]:
                self._objs[key] = self._adopt(key, KINDS[kind].from_state(self.node_id, state))
            self._vv.clear()  # the same dict: write closures hold it
            self._vv.update(data["vv"])
            self._deps = dict(data["deps"])
            self._floor = dict(data["floor"])
            self._touched = {k: dict(v) for k, v in data["touched"].items()}
            self._hlc.observe(data["hlc"])
        except (KeyError, TypeError, ValueError, DecodeError) as exc:
            raise CorruptData(f"snapshot content is not a valid store state ({exc})") from exc

    @property
    def recovery(self) -> RecoveryReport:
        """What opening the store found and did (torn tail cut, parts moved aside, lost dots)."""
        return self._log.recovery

    def close(self) -> None:
        """Flush and close. A durable ``log=False`` store writes a final snapshot."""
        if self._closed:
            return
        if not self.keeps_log and self.path is not None:
            self.snapshot()
        self._closed = True
        self._blocked = f"store {self.node_id!r} is closed; open it again to continue"
        self._log.close()

    @property
    def closed(self) -> bool:
        """True once ``close()`` has run."""
        return self._closed

    def __enter__(self) -> Store:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.close()

    def flush(self) -> None:
        """Return when every event written so far is durable (a no-op in memory)."""
        self._check_open()
        self._log.flush()

    def _refuse(self) -> None:
        if self._closed:
            raise StoreClosed(f"store {self.node_id!r} is closed; open it again to continue")
        raise InvalidOperation(self._blocked)

    def _check_open(self) -> None:
        if self._closed:
            raise StoreClosed(f"store {self.node_id!r} is closed; open it again to continue")

    # ------------------------------------------------------------------------ the handles

    def counter(self, key: str) -> PNCounter:
        """The PN-counter at ``key`` (created empty on first use)."""
        return self._get(key, PNCounter)

    def register(self, key: str) -> LWWRegister | BoundRegister:
        """The last-writer-wins register at ``key`` (bound handle under a bound prefix)."""
        if self._schemas is not None:
            return self._bound(key, LWWRegister)  # type: ignore[no-any-return]
        return self._get(key, LWWRegister)

    def mvregister(self, key: str) -> MVRegister | BoundMVRegister:
        """The multi-value register at ``key`` (keeps concurrent writes side by side)."""
        if self._schemas is not None:
            return self._bound(key, MVRegister)  # type: ignore[no-any-return]
        return self._get(key, MVRegister)

    def set(self, key: str) -> AWSet | BoundSet:
        """The add-wins set at ``key`` (bound handle under a bound prefix)."""
        if self._schemas is not None:
            return self._bound(key, AWSet)  # type: ignore[no-any-return]
        return self._get(key, AWSet)

    def map(self, key: str) -> ORMap | BoundMap:
        """The map of nested CRDTs at ``key`` (update-wins on concurrent remove)."""
        if self._schemas is not None:
            return self._bound(key, ORMap)  # type: ignore[no-any-return]
        return self._get(key, ORMap)

    def document(self, key: str) -> Document:
        """The pycrdt-backed document at ``key``."""
        if self._schemas is not None and self.subject_of(key) is not None:
            raise InvalidOperation(
                f"{key!r} is under a prefix bound to a schema, and documents hold no schema "
                "values; keep documents under an unbound prefix"
            )
        return self._get(key, Document)

    # ------------------------------------------------------------------------- schemas

    def bind_schema(self, prefix: str, schema: ValueSchema, subject: str) -> None:
        """Values written under keys starting with ``prefix`` must follow ``subject``.

        ``schema`` validates and frames each value before the CRDT changes (a
        ``SchemaViolation`` writes nothing) and reads framed values back, upcast; a
        ``microstatedb.schema.SchemaBinding`` or ``StoreSchema`` is one. The longest bound
        prefix of a key wins. Handles handed out before the call keep their old binding.
        """
        self._check_open()
        if not isinstance(prefix, str) or not isinstance(subject, str) or not subject:
            raise ConfigurationError(
                f"bind_schema takes a str prefix and a non-empty subject, got {prefix!r} and "
                f"{subject!r}"
            )
        if not isinstance(schema, ValueSchema):
            raise ConfigurationError(
                f"{type(schema).__name__} cannot validate values: a schema needs "
                "validate_and_frame(subject, value) and read(subject, data)"
            )
        schemas = dict(self._schemas or {})
        schemas[prefix] = (schema, subject)
        self._key_schemas = {}
        self._schemas = schemas

    def subject_of(self, key: str) -> str | None:
        """The subject bound to the longest prefix of ``key``, or None if none is."""
        found = self._schema_of(key)
        return None if found is None else found[1]

    def _schema_of(self, key: str) -> tuple[ValueSchema, str] | None:
        # A scan of the few bound prefixes: no per-key cache to grow with the key space.
        schemas = self._schemas
        if schemas is None:
            return None
        best: str | None = None
        for prefix in schemas:
            if key.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return None if best is None else schemas[best]

    def _bound(self, key: str, cls: type[T]) -> Any:
        found = self._key_schemas.get(key, _UNSEEN)
        if found is _UNSEEN:
            found = self._schema_of(key) if isinstance(key, str) else None
            if key in self._objs:
                self._key_schemas[key] = found
        if found is None:
            obj = self._objs.get(key)
            if obj is not None and type(obj) is cls:
                return obj
            return self._get(key, cls)
        held: Any = None
        if key in self._objs:
            held = self._get(key, cls)
        else:
            self._admit(key, True)  # created at the first accepted write, not now

        def attach(create: bool) -> Any:
            have = self._objs.get(key)
            if have is None and not create:
                return None
            return self._get(key, cls)

        kind: str = cls.kind  # type: ignore[attr-defined]
        return BOUND[kind](held, found[0], found[1], key, attach, replica=self.node_id)

    def _get(self, key: str, cls: type[T]) -> T:
        obj = self._objs.get(key)
        if obj is not None and type(obj) is cls:
            return obj
        self._admit(key, obj is None)
        kind: str = cls.kind  # type: ignore[attr-defined]
        if obj is not None:
            raise TypeMismatch(
                f"key {key!r} holds a {obj.kind}, not a {kind}; use store.{obj.kind}({key!r})"
                " or another key"
            )
        obj = self._adopt(key, new_crdt(kind, self.node_id, clock=self._clock_now))
        self._objs[key] = obj
        return obj  # type: ignore[return-value]

    def _admit(self, key: str, new: bool) -> None:
        # The checks before a key is handed out (and created on first use).
        self._check_open()
        if not isinstance(key, str) or not key:
            raise ConfigurationError(f"keys are non-empty strings, got {key!r}")
        if new and self.modes.configured:
            self.modes.check(key, strong=False)  # strongly consistent keys have no CRDT

    def _adopt(self, key: str, obj: CRDT) -> CRDT:
        obj.on_change = self._writer(key, obj.kind)
        return obj

    def _writer(self, key: str, kind: str) -> Callable[[Any], None]:
        # The local write path, one closure per key: everything it needs is bound once.
        node = self.node_id
        vv = self._vv
        if not self.keeps_log:
            if self._native:
                return _speedups.state_writer(self, key, node, vv)

            def touch(op: Any) -> None:
                if self._blocked:
                    self._refuse()
                seq = vv.get(node, 0) + 1
                vv[node] = seq
                self._touch(key, node, seq)
                self._since_snapshot += 1
                if self._since_snapshot >= self._snapshot_every:
                    self._snapshot_due()

            return touch
        # With the log: the compiled writer (microstatedb._speedups) does all of the below in
        # one C call. Here, the same in Python: the HLC step is inlined (HLC.now's rule: after
        # every timestamp issued or seen), the trusted encoder is a builtin, and the sinks
        # chosen at open take no lock (the store is used from one thread); durable, the log
        # frames and checksums many events at once.
        hlc = self._hlc
        wall = hlc.wall
        events, put = self._events, self._put
        encode = pack_trusted
        fmt = EVENT_FORMAT
        if self._native:
            sink = None if events is not None else put
            return _speedups.key_writer(
                self, key, kind, node, vv, hlc, wall, events, sink, encode, fmt
            )
        add = events.append if events is not None else None

        def emit(op: Any) -> None:
            if self._blocked:
                self._refuse()
            seq = vv.get(node, 0) + 1
            deps = self._deps
            w = wall() * 1000.0
            if w < hlc.edge:  # HLC.now inlined: its path for all but one write per ms
                ts = hlc.last = hlc.last + 1
            else:
                ts = hlc.tick(w)
            # Encoded before anything moves: the deps dict may change afterwards, and a
            # failed encoding leaves the state as it was (only the HLC moved on, harmlessly).
            body = encode((fmt, node, seq, ts, deps, key, kind, op))
            if add is not None:
                add(body)
            else:
                put(body, node, seq)
            vv[node] = seq
            if deps:
                self._deps = {}
            self._since_snapshot += 1
            if self._since_snapshot >= self._snapshot_every:
                self._snapshot_due()

        return emit

    def session(self, token: str | None = None, timeout: float = 0.5, **options: Any) -> Session:
        """A causal session on this store; ``token=None`` starts a new one.

        Reads and writes through it wait up to ``timeout`` seconds until this store has
        applied all that the token covers, else raise ``Unavailable``; ``s.token`` is the text
        to pass on. ``options`` go to ``Session`` (``clock``, ``sleep``, ``poll``).
        """
        self._check_open()
        return Session(self, token, timeout, **options)

    def consistency_of(self, key: str) -> Consistency:
        """The configured default consistency of ``key`` (by its longest matching prefix)."""
        return self.modes.level_of(key)

    def keys(self) -> list[str]:
        """The keys that hold a CRDT, sorted."""
        return sorted(self._objs)

    def __contains__(self, key: object) -> bool:
        return key in self._objs

    # ----------------------------------------------------------------- local write path

    def _touch(self, key: str, origin: str, seq: int) -> None:
        touched = self._touched.get(key)
        if touched is None:
            self._touched[key] = {origin: seq}
        else:
            touched[origin] = seq

    # ---------------------------------------------------------------------- snapshots

    def snapshot(self) -> None:
        """Write a snapshot of the state now; events it covers may then leave memory.

        Returns once the snapshot is durable (and, first, the log up to it).
        """
        self._snapshot(wait=True)

    def _snapshot_due(self) -> None:
        # Every snapshot_every events, from the write path: a batch log writes the snapshot in
        # its commit thread, so the writer only captures the state and does not wait on disk.
        self._snapshot(wait=False)

    @_obs.traced(_obs.names.SPAN_SNAPSHOT, _obs.metrics.SNAPSHOT_SECONDS)
    def _snapshot(self, wait: bool) -> None:
        self._check_open()
        objs = [[key, obj.kind, obj.state()] for key, obj in sorted(self._objs.items())]
        blob = packb(
            {
                "format": _SNAPSHOT_FORMAT,
                "objs": objs,
                "vv": self._vv,
                "deps": self._deps,
                "floor": self._floor,
                "touched": self._touched,
                "hlc": self._hlc.last,
            }
        )
        position = self._log.next_position
        self._log.write_snapshot(blob, dict(self._vv), position, wait=wait)
        self._snapshots += 1
        self._since_snapshot = 0
        # Events covered by the PREVIOUS snapshot leave memory (or go to the archive), so the
        # log keeps between one and two snapshot intervals of history for cheap catch-up.
        previous, self._last_snapshot = self._last_snapshot, (position, dict(self._vv))
        released = 0
        archive = self._archive
        if previous is not None and self.keeps_log and (self.path is None or archive is not None):
            upto, covered = previous
            if upto > self._log.first_position:
                for origin, n in covered.items():
                    if n > self._floor.get(origin, 0):
                        self._floor[origin] = n
                released = self._log.release(upto, archive)
        if _obs.active():
            _obs.record_snapshot(self.node_id, released if archive is not None else 0)
            self._report()

    # --------------------------------------------------------------------- replication

    @property
    def version_vector(self) -> Mapping[str, int]:
        """Events applied per origin (a copy)."""
        return dict(self._vv)

    def events_since(self, vv: Mapping[str, int] | None = None) -> bytes:
        """The batch of everything this store has that a replica at ``vv`` lacks.

        Events come from the log; where they have left it (or the store keeps no log), the
        full states of the keys involved are sent instead.
        """
        self._check_open()
        vv = dict(vv or {})
        events: list[Event] = []
        states: list[tuple[str, str, Any]] = []
        behind_floor = any(vv.get(o, 0) < n for o, n in self._floor.items())
        if not self.keeps_log:
            states = [
                (key, self._objs[key].kind, self._objs[key].state())
                for key, touched in sorted(self._touched.items())
                if any(vv.get(o, 0) < n for o, n in touched.items())
            ]
        elif behind_floor:
            states = [(k, o.kind, o.state()) for k, o in sorted(self._objs.items())]
        else:
            events = [
                ev
                for ev in self._log.read(self._log.first_position)
                if ev.seq > vv.get(ev.origin, 0)
            ]
        return encode_batch(self.node_id, dict(self._vv), events, states, self._key)

    @_obs.traced(_obs.names.SPAN_APPLY, _obs.metrics.APPLY_SECONDS, _obs.metrics.REFUSED_MESSAGES)
    def apply(self, batch: bytes) -> int:
        """Apply a batch from ``events_since``; returns how many events became visible.

        Idempotent. Events whose causal context is not yet here wait in a bounded buffer.
        A malformed, tampered or unauthenticated batch is refused (``CorruptData`` or
        ``AuthenticationError``) and changes nothing.
        """
        self._check_open()
        decoded = decode_batch(batch, self._key)
        self._validate(decoded.events, decoded.states)
        applied = 0
        if decoded.states:
            self._apply_states(decoded.states, decoded.vv)
        for ev in decoded.events:
            applied += self._receive(ev)
        if self.lost:
            self._recovered()
        if _obs.active():
            _obs.record_apply(self.node_id, applied)
            self._report()
        return applied

    def _validate(self, events: list[Event], states: list[tuple[str, str, Any]]) -> None:
        # Every check happens before any change, so a bad batch leaves the store untouched.
        kinds: dict[str, str] = {}
        try:
            for ev in events:
                self._check_kind(ev.key, ev.kind, kinds)
                self._hlc.check(ev.hlc, f"event {ev.origin}:{ev.seq}")
                new_crdt(ev.kind, self.node_id).apply(ev.op)
            for key, kind, state in states:
                self._check_kind(key, kind, kinds)
                KINDS[kind].from_state(self.node_id, state)
        except (DecodeError, TypeMismatch) as exc:
            raise CorruptData(f"batch refused, nothing applied: {exc}") from exc
        except MicroStateError:
            raise
        except Exception as exc:  # a malformed op deep in a CRDT: refuse, never half-apply
            raise CorruptData(f"batch refused, nothing applied: {exc!r}") from exc

    def _check_kind(self, key: str, kind: str, kinds: dict[str, str]) -> None:
        if kind not in KINDS:
            raise DecodeError(f"unknown CRDT kind {kind!r} for key {key!r}")
        obj = self._objs.get(key)
        have = obj.kind if obj is not None else kinds.setdefault(key, kind)
        if have != kind:
            raise TypeMismatch(f"key {key!r} is a {have} here but a {kind} in the batch")

    def _apply_states(self, states: list[tuple[str, str, Any]], vv: Mapping[str, int]) -> None:
        for key, kind, state in states:
            obj = self._objs.get(key)
            if obj is None:
                obj = self._objs[key] = self._adopt(
                    key, new_crdt(kind, self.node_id, clock=self._clock_now)
                )
            obj.apply(state)
            for origin, n in vv.items():
                if not self.keeps_log:
                    self._touch(key, origin, n)
        for origin, n in vv.items():
            if n > self._vv.get(origin, 0):
                self._vv[origin] = n
                self._note_dep(origin, n)
                if self.keeps_log:
                    # These events never entered our log: peers below them get state.
                    self._floor[origin] = n
        self._drain()

    def _receive(self, ev: Event) -> int:
        have = self._vv.get(ev.origin, 0)
        if ev.seq <= have:
            return 0
        if ev.seq == have + 1 and self._ready(ev):
            self._apply_event(ev, replay=False)
            return 1 + self._drain()
        pending = self._buffer.setdefault(ev.origin, {})
        if ev.seq not in pending:
            if self._buffered >= self._buffer_limit:
                self._dropped += 1  # anti-entropy brings it again once its gap is filled
                return 0
            pending[ev.seq] = ev
            self._buffered += 1
        return 0

    def _ready(self, ev: Event) -> bool:
        vv = self._vv
        return all(vv.get(o, 0) >= n for o, n in ev.deps.items())

    def _drain(self) -> int:
        applied = 0
        progress = True
        while progress and self._buffered:
            progress = False
            for origin in list(self._buffer):
                pending = self._buffer[origin]
                while True:
                    ev = pending.get(self._vv.get(origin, 0) + 1)
                    if ev is None or not self._ready(ev):
                        break
                    del pending[ev.seq]
                    self._buffered -= 1
                    self._apply_event(ev, replay=False)
                    applied += 1
                    progress = True
                # drop what became stale (applied through a state batch meanwhile)
                for seq in [s for s in pending if s <= self._vv.get(origin, 0)]:
                    del pending[seq]
                    self._buffered -= 1
                if not pending:
                    del self._buffer[origin]
        return applied

    def _apply_event(self, ev: Event, *, replay: bool) -> None:
        obj = self._objs.get(ev.key)
        if obj is None:
            obj = self._objs[ev.key] = self._adopt(
                ev.key, new_crdt(ev.kind, self.node_id, clock=self._clock_now)
            )
        obj.apply(ev.op)
        origin = ev.origin
        self._vv[origin] = ev.seq
        self._hlc.observe(ev.hlc)
        if origin == self.node_id:
            if replay:
                self._deps = {}
        else:
            self._note_dep(origin, ev.seq)
        if replay:
            return
        if self.keeps_log:
            self._log.append(ev)
        else:
            self._touch(ev.key, origin, ev.seq)
        self._since_snapshot += 1
        if self._since_snapshot >= self._snapshot_every:
            self._snapshot_due()

    def _note_dep(self, origin: str, seq: int) -> None:
        # The write path hands its (possibly empty) context dict to the event it logs and
        # replaces it only when non-empty, so an empty one may be a logged event's deps:
        # growing it in place would rewrite that event's causal context.
        if not self._deps:
            self._deps = {}
        self._deps[origin] = seq

    def _lost_count(self) -> int:
        return sum(last - first + 1 for first, last in self.lost.values())

    def _report(self) -> None:
        # Sizes for the metrics, on cold paths only (open, snapshot, remote batches).
        _obs.record_store(self.node_id, self._log.stats(), self._buffered, self._lost_count())

    def missing(self) -> dict[str, tuple[int, int]]:
        """Gaps the causal buffer waits on: ``{origin: (first missing seq, last buffered)}``."""
        out: dict[str, tuple[int, int]] = {}
        for origin, pending in self._buffer.items():
            if pending:
                out[origin] = (self._vv.get(origin, 0) + 1, max(pending))
        return out

    # -------------------------------------------------------------------------- reading

    def digest(self) -> bytes:
        """A blake3 digest of the state: equal digests iff equal state."""
        parts = [[key, obj.kind, obj.state()] for key, obj in sorted(self._objs.items())]
        return digest_of(packb(parts))

    def value(self) -> dict[str, Any]:
        """Every key's plain value (decoded and upcast under bound prefixes)."""
        if self._schemas is not None:
            return {key: self._read_value(key, obj) for key, obj in sorted(self._objs.items())}
        return {key: obj.value for key, obj in sorted(self._objs.items())}

    def _read_value(self, key: str, obj: CRDT) -> Any:
        found = self._schema_of(key)
        bound = BOUND.get(obj.kind)
        if found is None or bound is None:
            return obj.value
        return bound(obj, found[0], found[1], key).value

    def stats(self) -> StoreStats:
        """Counts for monitoring and tests."""
        return StoreStats(
            keys=len(self._objs),
            events_applied=sum(self._vv.values()),
            events_in_log=self._log.next_position - self._log.first_position,
            buffered=self._buffered,
            snapshots_taken=self._snapshots,
            dropped_from_buffer=self._dropped,
        )

    def __repr__(self) -> str:
        where = self.path or "memory"
        return f"<Store {self.node_id!r} at {where}, {len(self._objs)} keys, vv={self._vv}>"


def sync(a: Store, b: Store) -> None:
    """Two-way anti-entropy between two in-process stores."""
    b.apply(a.events_since(b.version_vector))
    a.apply(b.events_since(a.version_vector))
