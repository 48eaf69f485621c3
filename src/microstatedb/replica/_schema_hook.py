"""Schemas on the store's data path: the protocol the store calls, and the bound handles.

``replica`` sits below ``schema`` in the layering, so the store knows a schema only through
:class:`ValueSchema` ("validate and frame a value / read a framed value back");
``microstatedb.schema.SchemaBinding`` satisfies it, and ``microstatedb.schema.StoreSchema``
adapts one for replicas running mixed versions.

A key under a bound prefix is handed out as a *bound handle* wrapping the key's CRDT. Its
mutators validate and frame the value **before** the CRDT's own mutator runs, so a refused
value changes nothing: no delta, no event, no version-vector entry. The CRDT stores the framed
bytes, so states, logs and batches carry them as they are and replicas converge on the bytes;
``.value`` decodes (and upcasts) when read, which covers local writes, remote events and
replay from the log alike. Unbound keys get the CRDT itself, with no wrapper.

A bound handle on a key that does not exist yet creates the key's CRDT at its first accepted
write, not when it is handed out: a refused first write leaves no empty key behind either.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any, Protocol, TypeVar, runtime_checkable

from microstatedb.crdt import AWSet, LWWRegister, MVRegister, ORMap, PNCounter
from microstatedb.errors import DecodeError, InvalidOperation, MicroStateError


@runtime_checkable
class ValueSchema(Protocol):
    """What the store needs from a schema: frame a valid value, read a framed one back."""

    def validate_and_frame(self, subject: str, value: Any) -> bytes:
        """The framed bytes of ``value``; raises SchemaViolation (nothing is written then)."""
        ...

    def read(self, subject: str, data: bytes) -> Any:
        """The value ``data`` frames, in the version this reader works with."""
        ...


Attach = Callable[[bool], Any]
"""Finds a handle's CRDT (None while it does not exist); ``True`` creates it."""


class _Bound:
    """What every bound handle shares: the CRDT (found lazily), its schema and its subject."""

    __slots__ = ("_attach", "_obj", "key", "replica", "schema", "subject")

    _cls: type[Any]

    def __init__(
        self,
        obj: Any,
        schema: ValueSchema,
        subject: str,
        key: str,
        attach: Attach | None = None,
        *,
        replica: str | None = None,
    ) -> None:
        self._obj = obj
        self._attach = attach
        self.replica: str = replica if replica is not None else obj.replica
        """The replica id (the store's node id)."""
        self.schema = schema
        """The schema that frames and reads this key's values."""
        self.subject = subject
        """The subject the key's prefix is bound to."""
        self.key = key
        """The store key (with the map fields inside it, ``key/field``, for nested handles)."""

    def _crdt(self, create: bool) -> Any:
        obj = self._obj
        if obj is None and self._attach is not None:
            obj = self._obj = self._attach(create)
        return obj

    def _reading(self) -> Any:
        obj = self._crdt(False)
        return self._cls(self.replica) if obj is None else obj

    def _frame(self, value: Any) -> bytes:
        return self.schema.validate_and_frame(self.subject, value)

    def _read(self, data: Any) -> Any:
        if type(data) is not bytes:
            raise DecodeError(
                f"{self.key!r} holds {type(data).__name__} where a framed value belongs (was "
                f"it written before its prefix was bound to {self.subject!r}?); rewrite it"
            )
        return self.schema.read(self.subject, data)

    @property
    def crdt(self) -> Any:
        """The CRDT underneath, holding the framed bytes (None before the first write)."""
        return self._crdt(False)

    @property
    def kind(self) -> str:
        """The CRDT kind (``"register"``, ``"set"``, ...)."""
        kind: str = self._cls.kind
        return kind

    def state(self) -> Any:
        """The CRDT's full state (framed values as bytes)."""
        return self._reading().state()

    def reset(self) -> Any:
        """Remove everything this replica has observed; returns the delta."""
        return self._crdt(True).reset()

    # The rest of the CRDT protocol, so that sessions treat bound handles as handles.

    @property
    def on_change(self) -> Callable[[Any], None] | None:
        """The store's write hook on the CRDT (None before the first write)."""
        obj = self._crdt(False)
        return None if obj is None else obj.on_change

    def apply(self, delta: Any) -> None:
        """Join a delta or a full state (framed values, as replicas exchange them)."""
        self._crdt(True).apply(delta)

    def merge(self, other: Any) -> None:
        """Join another replica's CRDT, or the CRDT under its bound handle."""
        self._crdt(True).merge(other.crdt if isinstance(other, _Bound) else other)

    @classmethod
    def from_state(cls, replica: str, state: Any, *, clock: Any = None) -> Any:
        """A detached CRDT of this handle's kind holding ``state`` (framed values)."""
        return cls._cls.from_state(replica, state, clock=clock)

    def __repr__(self) -> str:
        try:
            shown = repr(self.value)
        except MicroStateError as exc:  # a repr must not raise: say why the value is unread
            shown = f"unreadable: {type(exc).__name__}"
        return f"<{type(self).__name__} {self.key!r} ({self.subject}) value={shown}>"

    @property
    def value(self) -> Any:
        raise NotImplementedError


_B = TypeVar("_B", bound=_Bound)


class BoundRegister(_Bound):
    """A last-writer-wins register under a bound prefix: ``set`` validates, ``value`` decodes."""

    __slots__ = ()

    _cls = LWWRegister

    def set(self, v: Any) -> Any:
        """Validate and write ``v``; returns the delta. SchemaViolation writes nothing."""
        framed = self._frame(v)
        return self._crdt(True).set(framed)

    @property
    def value(self) -> Any:
        """The winning value decoded and upcast, or None when never set."""
        raw = self._reading().value
        return None if raw is None else self._read(raw)

    @property
    def stamp(self) -> tuple[int, str] | None:
        """The stamp of the visible write, or None."""
        stamp: tuple[int, str] | None = self._reading().stamp
        return stamp


class BoundMVRegister(_Bound):
    """A multi-value register under a bound prefix."""

    __slots__ = ()

    _cls = MVRegister

    def set(self, v: Any) -> Any:
        """Validate and write ``v``, replacing every value seen; returns the delta."""
        framed = self._frame(v)
        return self._crdt(True).set(framed)

    @property
    def value(self) -> tuple[Any, ...]:
        """The concurrent values decoded and upcast, in the CRDT's order."""
        return tuple(self._read(raw) for raw in self._reading().value)


class BoundSet(_Bound):
    """An add-wins set under a bound prefix; its elements are framed values.

    One value framed under two schema versions is two elements underneath; ``remove`` takes
    away every element that reads back as the value, ``in`` and ``value`` see one.
    """

    __slots__ = ()

    _cls = AWSet

    def add(self, x: Any) -> Any:
        """Validate and add ``x``; returns the delta."""
        framed = self._frame(x)
        return self._crdt(True).add(framed)

    def remove(self, x: Any) -> Any:
        """Validate ``x``, then remove every element that reads back as ``x``.

        Returns the delta of the last removal (one per stored encoding of ``x``).
        """
        framed = self._frame(x)
        hits = [raw for raw in self._reading().value if self._read(raw) == x] or [framed]
        obj = self._crdt(True)
        delta = None
        for raw in sorted(hits):
            delta = obj.remove(raw)
        return delta

    def elements(self) -> list[Any]:
        """The distinct elements decoded and upcast, ordered by their framed bytes (works for
        records, which a frozenset cannot hold)."""
        out: list[Any] = []
        for raw in sorted(self._reading().value):
            item = self._read(raw)
            if item not in out:
                out.append(item)
        return out

    @property
    def value(self) -> frozenset[Any]:
        """The elements decoded and upcast, as a frozenset (see ``elements`` for records)."""
        try:
            return frozenset([self._read(raw) for raw in self._reading().value])
        except TypeError:
            raise InvalidOperation(
                f"the elements of {self.key!r} ({self.subject}) decode to unhashable values; "
                "read them with .elements()"
            ) from None

    def __contains__(self, x: object) -> bool:
        return any(self._read(raw) == x for raw in self._reading().value)

    def __len__(self) -> int:
        return len(self.elements())

    def __iter__(self) -> Iterator[Any]:
        return iter(self.elements())


class BoundMap(_Bound):
    """A map under a bound prefix: registers, multi-value registers and sets inside it (at
    any depth) validate every value against the subject; counters stay plain counters."""

    __slots__ = ()

    _cls = ORMap

    def _child(self, bound: type[_B], field: str) -> _B:
        def attach(create: bool) -> Any:
            parent = self._crdt(create)
            if parent is None:
                return None
            return getattr(parent, bound._cls.kind)(field)

        key = f"{self.key}/{field}"
        return bound(None, self.schema, self.subject, key, attach, replica=self.replica)

    def counter(self, key: str) -> PNCounter:
        """The counter at ``key`` (numbers need no schema)."""
        counter: PNCounter = self._crdt(True).counter(key)
        return counter

    def register(self, key: str) -> BoundRegister:
        """The register at ``key``, validating its values."""
        return self._child(BoundRegister, key)

    def mvregister(self, key: str) -> BoundMVRegister:
        """The multi-value register at ``key``, validating its values."""
        return self._child(BoundMVRegister, key)

    def set(self, key: str) -> BoundSet:
        """The add-wins set at ``key``, validating its elements."""
        return self._child(BoundSet, key)

    def map(self, key: str) -> BoundMap:
        """The nested map at ``key``, bound to the same subject."""
        return self._child(BoundMap, key)

    def remove(self, key: str) -> Any:
        """Remove ``key`` as far as this replica has seen it; returns the delta."""
        return self._crdt(True).remove(key)

    def keys(self) -> list[str]:
        """The present keys, sorted."""
        keys: list[str] = self._reading().keys()
        return keys

    def kind_of(self, key: str) -> str | None:
        """The kind a present key shows, or None when the key is absent."""
        kind: str | None = self._reading().kind_of(key)
        return kind

    def __contains__(self, key: object) -> bool:
        return key in self._reading()

    def __len__(self) -> int:
        return len(self._reading())

    @property
    def value(self) -> dict[str, Any]:
        """``{key: child value}`` for the present keys, values decoded and upcast."""
        obj = self._reading()
        out: dict[str, Any] = {}
        for key in obj.keys():  # noqa: SIM118 (a map is not iterable)
            kind = obj.kind_of(key)
            if kind == "counter":
                out[key] = obj.counter(key).value
            else:
                out[key] = getattr(self, kind)(key).value
        return out


BOUND: dict[str, type[_Bound]] = {
    "register": BoundRegister,
    "mvregister": BoundMVRegister,
    "set": BoundSet,
    "map": BoundMap,
}
"""The bound handle of each CRDT kind that holds user values."""
