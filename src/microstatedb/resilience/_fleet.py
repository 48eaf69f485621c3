"""Failure knowledge shared by a fleet: what every instance of a service learns about a
downstream, merged without a network round trip on the call path.

The breaker never asks the network anything while deciding. Each instance adds its own call
counts to time buckets (a grow-only counter per instance, merged by max, as a CRDT), and every
``sync_interval`` it reads the merged view and decides locally:

* the fleet trips only when the merged failure rate reaches the threshold *and* at least
  ``quorum`` instances saw that rate themselves, so one instance with a bad network path
  cannot open the breaker for everyone (its own local breaker still protects it);
* a trip is a record (opened at, open until) that every instance reads, so a new instance
  starts in the fleet's current state;
* after the wait, one instance holds the half-open *probe lease* for the fleet; the lease
  expires unless its holder renews it, so a probe holder that dies is replaced;
* operators force a downstream open or closed fleet-wide, per zone or per instance, with an
  expiry (:class:`Override`).

Fleet records carry wall-clock times (``clock.now()``), because monotonic clocks of different
machines do not compare; each breaker turns them into its own monotonic deadlines.

:class:`FleetView` is the protocol a backend implements. :class:`InMemoryFleet` serves several
breakers in one process, and its :meth:`InMemoryFleet.merge` shows the merge rules that a
replicated store applies (counters by max, trips and leases as last-writer-wins registers,
the close time as a max register), so a store-backed view is a thin adapter over
``store.map(k).counter(...)`` and registers.
"""

from __future__ import annotations

import enum
import functools
import math
import threading
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Protocol

from microstatedb.errors import ConfigurationError
from microstatedb.resilience._state import State

if TYPE_CHECKING:
    from microstatedb.resilience._breaker import CircuitBreaker

_INF = float("inf")


@dataclass(frozen=True, slots=True)
class BucketCounts:
    """Counts of one instance in one time bucket (each field a grow-only counter)."""

    calls: int = 0
    """Calls whose outcome was recorded."""
    failures: int = 0
    """Of those, failures."""
    slow: int = 0
    """Of those, slow calls."""
    retries: int = 0
    """Retries made (for a retry budget shared by the fleet)."""

    def __add__(self, other: BucketCounts) -> BucketCounts:
        return BucketCounts(
            self.calls + other.calls,
            self.failures + other.failures,
            self.slow + other.slow,
            self.retries + other.retries,
        )

    def merge(self, other: BucketCounts) -> BucketCounts:
        """The join of two replicas of the same counters: field-wise max."""
        return BucketCounts(
            max(self.calls, other.calls),
            max(self.failures, other.failures),
            max(self.slow, other.slow),
            max(self.retries, other.retries),
        )


@dataclass(frozen=True, slots=True)
class Trip:
    """The fleet's breaker opened at ``opened_at`` (wall seconds) until ``open_until``."""

    opened_at: float
    """Wall time of the trip."""
    open_until: float
    """Wall time when the fleet may start probing."""
    by: str
    """The instance that wrote the trip."""


@dataclass(frozen=True, slots=True)
class Lease:
    """The half-open probe lease: ``holder`` probes for the fleet until ``expires_at``."""

    holder: str
    """The instance holding the lease (empty when released)."""
    expires_at: float
    """Wall time after which the lease is free unless renewed."""
    version: int
    """Lamport version: a write sets it one above what the writer saw; larger wins a merge."""

    def held_by(self, instance: str, now: float) -> bool:
        """True when ``instance`` holds the lease at wall time ``now``."""
        return self.holder == instance and now < self.expires_at


@dataclass(frozen=True, slots=True)
class FleetState:
    """The trip and close records of a downstream."""

    trip: Trip | None
    """The latest trip, or None if it never tripped."""
    closed_at: float
    """Wall time of the latest successful probe (0.0 if none)."""

    @property
    def is_open(self) -> bool:
        """True when the latest trip came after the latest close."""
        return self.trip is not None and self.trip.opened_at > self.closed_at


class Scope(enum.Enum):
    """How far an override reaches."""

    FLEET = "fleet"
    ZONE = "zone"
    INSTANCE = "instance"


_FORCEABLE = frozenset({State.FORCED_OPEN, State.METRICS_ONLY, State.DISABLED})


@dataclass(frozen=True, slots=True)
class Override:
    """An operator's decision for a downstream: hold the breakers in ``state`` until expiry.

    ``state`` is FORCED_OPEN (refuse all), METRICS_ONLY (forced closed: pass all, keep
    recording) or DISABLED. The most specific live override wins (instance, then zone, then
    fleet); for one scope and target the later ``set_at`` wins. To lift an override early, set
    one with the same scope and target that expires now.
    """

    state: State
    """The state to hold."""
    scope: Scope = Scope.FLEET
    """Fleet-wide, one zone, or one instance."""
    target: str = ""
    """The zone or instance name ("" for the fleet)."""
    expires_at: float = _INF
    """Wall time when the override lapses."""
    set_at: float = 0.0
    """Wall time when it was set (orders overrides of the same scope and target)."""

    def __post_init__(self) -> None:
        if self.state not in _FORCEABLE:
            raise ConfigurationError(
                f"an override holds FORCED_OPEN, METRICS_ONLY or DISABLED, not {self.state}"
            )
        if not isinstance(self.scope, Scope):
            raise ConfigurationError(f"scope must be a Scope, got {self.scope!r}")
        if (self.scope is Scope.FLEET) != (self.target == ""):
            raise ConfigurationError("a fleet override has no target; zone and instance do")
        if math.isnan(self.expires_at):
            raise ConfigurationError("expires_at must be a wall time, got nan")


class FleetView(Protocol):
    """What a breaker needs from the fleet's shared statistics (all times are wall seconds)."""

    def add(self, downstream: str, instance: str, bucket: int, counts: BucketCounts) -> None:
        """Add ``counts`` to ``instance``'s own counters in ``bucket`` (a local write)."""
        ...

    def counts(self, downstream: str, first_bucket: int) -> Mapping[str, BucketCounts]:
        """Per instance, the merged counts summed over buckets ``>= first_bucket``."""
        ...

    def state(self, downstream: str) -> FleetState:
        """The merged trip and close records."""
        ...

    def record_trip(self, downstream: str, trip: Trip) -> None:
        """Publish a trip (the later ``opened_at`` wins)."""
        ...

    def record_close(self, downstream: str, at: float) -> None:
        """Publish a successful probe at ``at`` (the largest wins)."""
        ...

    def hold_lease(self, downstream: str, holder: str, now: float, ttl: float) -> Lease:
        """Take the probe lease if free, or renew it if ``holder`` has it; return the lease."""
        ...

    def release_lease(self, downstream: str, holder: str, now: float) -> None:
        """Give the lease back early, if ``holder`` has it."""
        ...

    def overrides(self, downstream: str) -> Sequence[Override]:
        """The operator overrides for ``downstream`` (expired ones may be included)."""
        ...

    def set_override(self, downstream: str, override: Override) -> None:
        """Record an operator override."""
        ...


_NO_LEASE = Lease("", 0.0, 0)


@dataclass
class _Downstream:
    buckets: dict[int, dict[str, BucketCounts]] = field(default_factory=dict)
    trip: Trip | None = None
    closed_at: float = 0.0
    lease: Lease = _NO_LEASE
    overrides: dict[tuple[Scope, str], Override] = field(default_factory=dict)


def _trip_key(trip: Trip | None) -> tuple[float, str, float]:
    # The whole record is the key, so that two replicas always pick the same one.
    return (-_INF, "", -_INF) if trip is None else (trip.opened_at, trip.by, trip.open_until)


def _lease_key(lease: Lease) -> tuple[int, str, float]:
    return (lease.version, lease.holder, lease.expires_at)


def _override_key(o: Override) -> tuple[float, str, float]:
    return (o.set_at, o.state.value, o.expires_at)


class InMemoryFleet:
    """A :class:`FleetView` in one process, shared by breakers of several "instances".

    One object shared by several breakers models a fleet whose replicas are always in sync.
    Several objects joined with :meth:`merge` model replicas that exchange state now and then.
    ``retain_buckets`` bounds memory: buckets that many behind the newest are dropped.
    """

    def __init__(self, *, retain_buckets: int = 3600) -> None:
        if isinstance(retain_buckets, bool) or not isinstance(retain_buckets, int):
            raise ConfigurationError(f"retain_buckets must be an int, got {retain_buckets!r}")
        if retain_buckets < 1:
            raise ConfigurationError(f"retain_buckets must be >= 1, got {retain_buckets!r}")
        self._retain = retain_buckets
        self._lock = threading.Lock()
        self._data: dict[str, _Downstream] = {}

    def _get(self, downstream: str) -> _Downstream:
        entry = self._data.get(downstream)
        if entry is None:
            entry = self._data[downstream] = _Downstream()
        return entry

    def add(self, downstream: str, instance: str, bucket: int, counts: BucketCounts) -> None:
        with self._lock:
            buckets = self._get(downstream).buckets
            row = buckets.get(bucket)
            if row is None:
                row = buckets[bucket] = {}
                self._prune(buckets, bucket)
            row[instance] = row.get(instance, BucketCounts()) + counts

    def _prune(self, buckets: dict[int, dict[str, BucketCounts]], newest: int) -> None:
        if len(buckets) > self._retain:
            horizon = max(buckets) - self._retain
            for old in [b for b in buckets if b <= horizon]:
                del buckets[old]

    def counts(self, downstream: str, first_bucket: int) -> Mapping[str, BucketCounts]:
        with self._lock:
            totals: dict[str, BucketCounts] = {}
            entry = self._data.get(downstream)
            if entry is None:
                return totals
            for bucket, row in entry.buckets.items():
                if bucket >= first_bucket:
                    for instance, c in row.items():
                        totals[instance] = totals.get(instance, BucketCounts()) + c
            return totals

    def state(self, downstream: str) -> FleetState:
        with self._lock:
            entry = self._get(downstream)
            return FleetState(entry.trip, entry.closed_at)

    def record_trip(self, downstream: str, trip: Trip) -> None:
        with self._lock:
            entry = self._get(downstream)
            if _trip_key(trip) > _trip_key(entry.trip):
                entry.trip = trip

    def record_close(self, downstream: str, at: float) -> None:
        with self._lock:
            entry = self._get(downstream)
            entry.closed_at = max(entry.closed_at, at)

    def hold_lease(self, downstream: str, holder: str, now: float, ttl: float) -> Lease:
        with self._lock:
            entry = self._get(downstream)
            lease = entry.lease
            if lease.holder == holder or now >= lease.expires_at:
                lease = entry.lease = Lease(holder, now + ttl, lease.version + 1)
            return lease

    def release_lease(self, downstream: str, holder: str, now: float) -> None:
        with self._lock:
            entry = self._get(downstream)
            if entry.lease.held_by(holder, now):
                entry.lease = Lease("", now, entry.lease.version + 1)

    def lease(self, downstream: str) -> Lease:
        """The current lease record (for operators and tests)."""
        with self._lock:
            return self._get(downstream).lease

    def overrides(self, downstream: str) -> Sequence[Override]:
        with self._lock:
            return tuple(self._get(downstream).overrides.values())

    def set_override(self, downstream: str, override: Override) -> None:
        with self._lock:
            table = self._get(downstream).overrides
            key = (override.scope, override.target)
            old = table.get(key)
            if old is None or _override_key(override) >= _override_key(old):
                table[key] = override

    def merge(self, other: InMemoryFleet) -> None:
        """Fold ``other``'s state into this one (the CRDT join; commutative, idempotent)."""
        if other is self:
            return
        with other._lock:
            theirs = {
                name: replace(
                    entry,
                    buckets={b: dict(row) for b, row in entry.buckets.items()},
                    overrides=dict(entry.overrides),
                )
                for name, entry in other._data.items()
            }
        with self._lock:
            for name, src in theirs.items():
                dst = self._get(name)
                for bucket, row in src.buckets.items():
                    mine = dst.buckets.setdefault(bucket, {})
                    for instance, c in row.items():
                        mine[instance] = mine.get(instance, BucketCounts()).merge(c)
                if src.buckets:
                    self._prune(dst.buckets, max(src.buckets))
                if _trip_key(src.trip) > _trip_key(dst.trip):
                    dst.trip = src.trip
                dst.closed_at = max(dst.closed_at, src.closed_at)
                if _lease_key(src.lease) > _lease_key(dst.lease):
                    dst.lease = src.lease
                for key, o in src.overrides.items():
                    old = dst.overrides.get(key)
                    if old is None or _override_key(o) > _override_key(old):
                        dst.overrides[key] = o


if TYPE_CHECKING:
    _conforms: FleetView = InMemoryFleet()  # mypy checks the protocol here, at no run cost


class FleetMember:
    """How one breaker takes part in a fleet: pass it as ``CircuitBreaker(..., fleet=...)``.

    ``instance`` names this instance and ``zone`` its zone (for zone overrides). The fleet
    trips when the merged counts of the last ``window_buckets`` buckets of
    ``bucket_seconds`` reach the breaker's ``minimum_calls`` and failure (or slow-call)
    threshold and at least ``quorum`` instances reached the threshold in their own counts.
    Every ``sync_interval`` seconds (checked on the call path, with no waiting) the breaker
    flushes its counts and reads the view. The probe lease lasts ``lease_ttl`` seconds unless
    renewed. ``downstream`` defaults to the breaker's name.
    """

    def __init__(
        self,
        view: FleetView,
        instance: str,
        *,
        zone: str = "",
        downstream: str | None = None,
        quorum: int = 2,
        bucket_seconds: float = 1.0,
        window_buckets: int = 60,
        lease_ttl: float = 5.0,
        sync_interval: float = 1.0,
    ) -> None:
        if not isinstance(instance, str) or not instance:
            raise ConfigurationError(f"instance must be a non-empty name, got {instance!r}")
        for label, value in (("quorum", quorum), ("window_buckets", window_buckets)):
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigurationError(f"{label} must be an integer >= 1, got {value!r}")
        for label, seconds in (("bucket_seconds", bucket_seconds), ("lease_ttl", lease_ttl)):
            if not seconds > 0:
                raise ConfigurationError(f"{label} must be > 0 seconds, got {seconds!r}")
        if not sync_interval >= 0:
            raise ConfigurationError(f"sync_interval must be >= 0, got {sync_interval!r}")
        self.view = view
        self.instance = instance
        self.zone = zone
        self.downstream = downstream
        self.quorum = quorum
        self.bucket_seconds = float(bucket_seconds)
        self.window_buckets = window_buckets
        self.lease_ttl = float(lease_ttl)
        self.sync_interval = float(sync_interval)

    def attach(self, breaker: CircuitBreaker) -> None:
        """Wire ``breaker`` to the fleet and adopt the fleet's current state at once."""
        link = _FleetLink(self, breaker)
        breaker._link = link
        breaker._update_fast()
        link.sync()


class _FleetLink:
    """The per-breaker side of a fleet membership: pending counts and the sync decisions."""

    def __init__(self, member: FleetMember, breaker: CircuitBreaker) -> None:
        self.member = member
        self.breaker = breaker
        self.downstream = member.downstream or breaker.name
        self._wall = breaker.clock.now
        self._bucket = -1
        self._bucket_start = self._bucket_end = 0.0  # wall bounds of the pending bucket
        self._calls = self._failures = self._slow = 0

    def bucket_of(self, wall: float) -> int:
        return math.floor(wall / self.member.bucket_seconds)

    # Called with the breaker's lock held: plain counters only; view writes are deferred.
    def note(self, failed: bool, slow: bool) -> None:
        wall = self._wall()
        if not self._bucket_start <= wall < self._bucket_end:
            self._flush_locked()
            self._bucket = self.bucket_of(wall)
            self._bucket_start = self._bucket * self.member.bucket_seconds
            self._bucket_end = self._bucket_start + self.member.bucket_seconds
        self._calls += 1
        self._failures += failed
        self._slow += slow

    def _flush_locked(self) -> None:
        """Hand the pending bucket to the view once the breaker's lock is free."""
        if self._calls:
            counts = BucketCounts(self._calls, self._failures, self._slow)
            self.breaker._deferred.append(
                functools.partial(
                    self.member.view.add,
                    self.downstream,
                    self.member.instance,
                    self._bucket,
                    counts,
                )
            )
            self._calls = self._failures = self._slow = 0

    def probe_finished(self, *, closed: bool, open_for: float) -> None:
        """The fleet's probe ended in this instance (breaker lock held; writes deferred)."""
        b = self.breaker
        wall = self._wall()
        if not closed:
            b._fleet_open = True
        b._deferred.append(functools.partial(self._publish_probe, closed, wall, open_for))

    def _publish_probe(self, closed: bool, wall: float, open_for: float) -> None:
        view, ds, me = self.member.view, self.downstream, self.member.instance
        if closed:
            view.record_close(ds, wall)
        else:
            view.record_trip(ds, Trip(wall, wall + open_for, me))
        view.release_lease(ds, me, wall)

    def _override(self, wall: float) -> Override | None:
        member = self.member
        best: Override | None = None
        best_key = (-1, -_INF)
        for o in member.view.overrides(self.downstream):
            if o.expires_at <= wall:
                continue
            if o.scope is Scope.FLEET:
                rank = 0
            elif o.scope is Scope.ZONE and o.target == member.zone:
                rank = 1
            elif o.scope is Scope.INSTANCE and o.target == member.instance:
                rank = 2
            else:
                continue
            if (rank, o.set_at) > best_key:
                best, best_key = o, (rank, o.set_at)
        return best

    def sync(self) -> None:
        """Flush local counts, read the merged view and adopt what it says."""
        try:
            self._sync()
        finally:
            self.breaker._drain()

    def _sync(self) -> None:
        b, member = self.breaker, self.member
        view, ds = member.view, self.downstream
        mono, wall = b._mono(), self._wall()
        b._next_sync = mono + member.sync_interval
        with b._lock:
            self._flush_locked()
        b._drain()  # our own counts reach the view before we read it

        override = self._override(wall)
        if override is not None:
            until = mono + (override.expires_at - wall)
            with b._lock:
                if b._state is not override.state:
                    b._transition(override.state, mono, until=until)
                elif override.state is State.FORCED_OPEN:
                    b._forced_until = until
                b._fleet_forced = True
                b._fleet_open = False
            return
        if b._fleet_forced:
            with b._lock:
                b._fleet_forced = False
                b._transition(State.CLOSED, mono)

        fleet = view.state(ds)
        if fleet.is_open:
            assert fleet.trip is not None
            if wall < fleet.trip.open_until:
                self._impose_open(mono, mono + (fleet.trip.open_until - wall))
                return
            lease = view.hold_lease(ds, member.instance, wall, member.lease_ttl)
            if lease.holder == member.instance:
                with b._lock:
                    if not (b._state is State.HALF_OPEN and b._fleet_probe):
                        b._transition(State.HALF_OPEN, mono)
                        b._fleet_probe = True
                    b._fleet_open = True
                # Renew well before the lease runs out while probes are in flight.
                b._next_sync = mono + min(member.sync_interval, member.lease_ttl / 2)
                return
            self._impose_open(mono, mono + max(lease.expires_at - wall, 0.0))
            return

        if b._fleet_open:
            with b._lock:
                b._fleet_open = False
                if b._state is State.OPEN or b._state is State.HALF_OPEN:
                    b._transition(State.CLOSED, mono)

        if b._state is not State.CLOSED:
            return
        first = self.bucket_of(wall) - member.window_buckets + 1
        if fleet.closed_at:
            # Counts from before the fleet closed again belong to the old episode.
            first = max(first, self.bucket_of(fleet.closed_at) + 1)
        per_instance = view.counts(ds, first)
        total = BucketCounts()
        observers = 0
        for c in per_instance.values():
            total = total + c
            if (c.failures or c.slow) and b._exceeded(c.calls, c.failures, c.slow):
                observers += 1
        if (
            total.calls >= b.minimum_calls
            and observers >= member.quorum
            and b._exceeded(total.calls, total.failures, total.slow)
        ):
            wait = b._wait_in_open(b._openings + 1)
            view.record_trip(ds, Trip(wall, wall + wait, member.instance))
            self._impose_open(mono, mono + wait)

    def _impose_open(self, mono: float, until: float) -> None:
        b = self.breaker
        with b._lock:
            if b._state is State.OPEN:
                b._open_until = until
            else:
                b._transition(State.OPEN, mono, until=until)
            b._fleet_open = True
