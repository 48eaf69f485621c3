"""Fleet-wide breaker knowledge kept in a store: the ``resilience.FleetView`` a fleet shares.

Each instance of a service writes only its own counters, into its own store, and reads the
merged view locally; anti-entropy carries the counts between instances. Layout, per
downstream ``d``, in the map ``<prefix>d``:

- ``buckets`` → one nested map per time bucket → one PN-counter per ``instance/field``;
  every instance increments only its own counters, so the counters' per-replica max merge is
  exactly the grow-only counters the fleet protocol asks for;
- ``trip``, ``closed``, ``lease``: multi-value registers; a reader takes the largest of the
  concurrent values by the same order ``InMemoryFleet`` merges by, so two replicas that saw
  the same writes agree whatever the order;
- ``overrides`` → one multi-value register per ``scope/target``.

The lease is a best-effort exclusion: in a partition each side may grant it once, so at most
one probe per side runs; it is a safety valve for probing, never a lock for data.
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any, Concatenate, ParamSpec, TypeVar

from microstatedb.crdt import MVRegister, ORMap
from microstatedb.errors import ConfigurationError
from microstatedb.resilience import BucketCounts, FleetState, Lease, Override, Scope, State, Trip

if TYPE_CHECKING:
    from microstatedb.replica._store import Store
    from microstatedb.resilience import FleetView

P = ParamSpec("P")
R = TypeVar("R")

_FIELDS = ("calls", "failures", "slow", "retries")
_SEP = "/"
_INF = float("inf")


def _best(register: MVRegister, order: Any) -> Any:
    values = register.value
    return max(values, key=order) if values else None


def _trip_order(v: list[Any]) -> tuple[float, str, float]:
    return (v[0], v[2], v[1])


def _lease_order(v: list[Any]) -> tuple[int, str, float]:
    return (v[2], v[0], v[1])


def _override_order(v: list[Any]) -> tuple[float, str, float]:
    return (v[4], v[0], v[3])


def _locked(
    method: Callable[Concatenate[StoreFleet, P], R],
) -> Callable[Concatenate[StoreFleet, P], R]:
    def run(fleet: StoreFleet, /, *args: P.args, **kwargs: P.kwargs) -> R:
        with fleet.lock:
            return method(fleet, *args, **kwargs)

    return functools.update_wrapper(run, method)


class StoreFleet:
    """A :class:`~microstatedb.resilience.FleetView` backed by a replicated :class:`Store`.

    Pass it to every instance's breaker through ``FleetMember(StoreFleet(store), instance)``;
    keep syncing the stores as usual. ``retain_buckets`` bounds the buckets kept per downstream.

    Breakers report from whichever thread made the call, and a store is used by one thread at
    a time, so every method holds ``lock``: code that uses the same store from another thread
    (a sync with peers, say) holds it too.
    """

    def __init__(self, store: Store, *, prefix: str = "fleet:", retain_buckets: int = 3600):
        if isinstance(retain_buckets, bool) or not isinstance(retain_buckets, int):
            raise ConfigurationError(f"retain_buckets must be an int, got {retain_buckets!r}")
        if retain_buckets < 1:
            raise ConfigurationError(f"retain_buckets must be >= 1, got {retain_buckets!r}")
        self._store = store
        self._prefix = prefix
        self._retain = retain_buckets
        self.lock = threading.RLock()

    def _root(self, downstream: str) -> ORMap:
        # Fleet keys are never bound to a schema, so the handle is the plain map.
        root = self._store.map(self._prefix + downstream)
        assert isinstance(root, ORMap)
        return root

    # ------------------------------------------------------------------------ counts

    @_locked
    def add(self, downstream: str, instance: str, bucket: int, counts: BucketCounts) -> None:
        buckets = self._root(downstream).map("buckets")
        row = buckets.map(str(bucket))
        for name in _FIELDS:
            n = getattr(counts, name)
            if n:
                row.counter(instance + _SEP + name).increment(n)
        keys = buckets.keys()
        if len(keys) > self._retain:
            horizon = max(int(k) for k in keys) - self._retain
            for old in keys:
                if int(old) <= horizon:
                    buckets.remove(old)

    @_locked
    def counts(self, downstream: str, first_bucket: int) -> Mapping[str, BucketCounts]:
        key = self._prefix + downstream
        if key not in self._store:
            return {}
        totals: dict[str, dict[str, int]] = {}
        for bucket, row in self._root(downstream).map("buckets").value.items():
            if int(bucket) < first_bucket:
                continue
            for name, n in row.items():
                instance, _, field = name.rpartition(_SEP)
                per = totals.setdefault(instance, dict.fromkeys(_FIELDS, 0))
                per[field] += n
        return {instance: BucketCounts(**f) for instance, f in totals.items()}

    # ------------------------------------------------------------------- trip and close

    @_locked
    def state(self, downstream: str) -> FleetState:
        if self._prefix + downstream not in self._store:
            return FleetState(None, 0.0)
        root = self._root(downstream)
        trip = _best(root.mvregister("trip"), _trip_order)
        closed = _best(root.mvregister("closed"), float)
        return FleetState(
            Trip(trip[0], trip[1], trip[2]) if trip is not None else None,
            float(closed) if closed is not None else 0.0,
        )

    @_locked
    def record_trip(self, downstream: str, trip: Trip) -> None:
        register = self._root(downstream).mvregister("trip")
        new = [trip.opened_at, trip.open_until, trip.by]
        current = _best(register, _trip_order)
        if current is None or _trip_order(new) > _trip_order(current):
            register.set(new)

    @_locked
    def record_close(self, downstream: str, at: float) -> None:
        register = self._root(downstream).mvregister("closed")
        current = _best(register, float)
        if current is None or at > current:
            register.set(at)

    # ------------------------------------------------------------------------- lease

    def _lease(self, downstream: str) -> tuple[MVRegister, Lease]:
        register = self._root(downstream).mvregister("lease")
        v = _best(register, _lease_order)
        return register, (Lease(v[0], v[1], v[2]) if v is not None else Lease("", 0.0, 0))

    @_locked
    def hold_lease(self, downstream: str, holder: str, now: float, ttl: float) -> Lease:
        register, lease = self._lease(downstream)
        if lease.holder == holder or now >= lease.expires_at:
            lease = Lease(holder, now + ttl, lease.version + 1)
            register.set([lease.holder, lease.expires_at, lease.version])
        return lease

    @_locked
    def release_lease(self, downstream: str, holder: str, now: float) -> None:
        register, lease = self._lease(downstream)
        if lease.held_by(holder, now):
            register.set(["", now, lease.version + 1])

    @_locked
    def lease(self, downstream: str) -> Lease:
        """The current lease record (for operators and tests)."""
        return self._lease(downstream)[1]

    # --------------------------------------------------------------------- overrides

    @_locked
    def overrides(self, downstream: str) -> Sequence[Override]:
        if self._prefix + downstream not in self._store:
            return ()
        table = self._root(downstream).map("overrides")
        out = []
        for key in table.keys():  # noqa: SIM118 (a map handle, not a dict)
            v = _best(table.mvregister(key), _override_order)
            if v is not None:
                out.append(Override(State(v[0]), Scope(v[1]), v[2], v[3], v[4]))
        return tuple(out)

    @_locked
    def set_override(self, downstream: str, override: Override) -> None:
        table = self._root(downstream).map("overrides")
        register = table.mvregister(override.scope.value + _SEP + override.target)
        new = [
            override.state.value,
            override.scope.value,
            override.target,
            override.expires_at,
            override.set_at,
        ]
        current = _best(register, _override_order)
        if current is None or _override_order(new) >= _override_order(current):
            register.set(new)


if TYPE_CHECKING:

    def _conforms(store: Store) -> FleetView:
        return StoreFleet(store)  # mypy checks the protocol here, at no run cost
