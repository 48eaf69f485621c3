"""What every CRDT type shares: the protocol, the kind registry and the delta plumbing.

Every type is a delta-state CRDT (Almeida, Shoker, Baquero): a mutator applies a small delta
locally and returns it, ``apply`` joins a delta (or a whole state, which is also a delta) and
is therefore idempotent, commutative and associative.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, ClassVar, Protocol, Self, TypeVar, runtime_checkable

from microstatedb.codec import digest_of, packb
from microstatedb.errors import ConfigurationError, TypeMismatch

_T = TypeVar("_T", bound="_Base")

Clock = Callable[[], int]
"""A source of hybrid-logical-clock timestamps as ints (for example ``HLC().now``)."""


@runtime_checkable
class CRDT(Protocol):
    """The interface every CRDT type implements (the store relies on nothing else)."""

    kind: ClassVar[str]
    replica: str
    on_change: Callable[[Any], None] | None

    @property
    def value(self) -> Any:
        """The plain Python value a reader sees."""
        ...

    def apply(self, delta: Any) -> None:
        """Join a delta or a full state; raises ``DecodeError`` on bad shape, changing nothing."""
        ...

    def state(self) -> Any:
        """The full state as plain msgpack-able data in canonical (sorted) form."""
        ...

    @classmethod
    def from_state(cls, replica: str, state: Any, *, clock: Clock | None = None) -> Self:
        """A replica named ``replica`` holding ``state`` (as returned by ``state()``)."""
        ...

    def merge(self, other: Self) -> None:
        """Join another replica's full state into this one (``apply(other.state())``)."""
        ...

    def reset(self) -> Any:
        """Remove everything this replica has observed; returns the delta."""
        ...


KINDS: dict[str, type[_Base]] = {}
"""Every CRDT type by its ``kind`` name."""


def register_kind(cls: type[_T]) -> type[_T]:
    """Class decorator: list a type in ``KINDS`` under its ``kind``."""
    KINDS[cls.kind] = cls
    return cls


def new_crdt(kind: str, replica: str, clock: Clock | None = None) -> _Base:
    """A fresh, empty CRDT of the given kind (``"counter"``, ``"set"``, ...)."""
    try:
        cls = KINDS[kind]
    except (KeyError, TypeError):
        raise ConfigurationError(
            f"unknown CRDT kind {kind!r}; the kinds are {', '.join(sorted(KINDS))}"
        ) from None
    return cls(replica, clock=clock)


def state_digest(obj: CRDT) -> bytes:
    """The 32-byte blake3 digest of an object's canonical state: equal iff states are equal."""
    return digest_of(packb(obj.state()))


class _Base:
    """Shared plumbing: replica id, clock, the change hook and the link to a parent map."""

    __slots__ = ("_clock", "_parent", "_pkey", "on_change", "replica")

    kind: ClassVar[str] = ""

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        if not isinstance(replica, str) or not replica:
            raise ConfigurationError(f"replica must be a non-empty str, got {replica!r}")
        self.replica = replica
        self._clock = clock
        self.on_change: Callable[[Any], None] | None = None
        # A child of a map reports its deltas to the map, which wraps them (see ORMap).
        self._parent: Any = None
        self._pkey = ""

    def __repr__(self) -> str:
        return f"{type(self).__name__}(replica={self.replica!r}, value={self.value!r})"

    @property
    def value(self) -> Any:
        raise NotImplementedError

    def apply(self, delta: Any) -> None:
        """Join a delta (or a full state); a malformed one raises ``DecodeError``, changing
        nothing, because the whole delta is checked before any of it is joined."""
        self._join(self._decode(delta))

    @classmethod
    def _decode(cls, delta: Any) -> Any:
        """Check a delta's shape and turn it into the form ``_join`` takes (no side effects)."""
        raise NotImplementedError

    def _join(self, parsed: Any) -> None:
        raise NotImplementedError

    def state(self) -> Any:
        raise NotImplementedError

    def reset(self) -> Any:
        return self._emit(self._reset_delta())

    def _reset_delta(self) -> Any:
        """Build and apply the reset delta without reporting it (the map reports it)."""
        raise NotImplementedError

    def _is_empty(self) -> bool:
        """True when the state is the bottom element (nothing ever happened)."""
        raise NotImplementedError

    def _emit(self, delta: Any) -> Any:
        """Report a local delta; returns the delta of the root object (what replicas apply).

        A map child's delta is wrapped by its map (up to the root), so a child handle's
        mutator returns the root's delta, the one that ``on_change`` sees.
        """
        parent = self._parent
        if parent is not None:
            return parent._child_changed(self._pkey, self, delta)
        cb = self.on_change
        if cb is not None:
            cb(delta)
        return delta

    def merge(self, other: Any) -> None:
        if type(other) is not type(self):
            raise TypeMismatch(
                f"cannot merge a {type(other).__name__} into a {type(self).__name__}; "
                "merge replicas of the same type"
            )
        self.apply(other.state())

    @classmethod
    def from_state(cls: type[_T], replica: str, state: Any, *, clock: Clock | None = None) -> _T:
        """A replica named ``replica`` holding ``state`` (as returned by ``state()``)."""
        obj = cls(replica, clock=clock)
        obj.apply(state)
        return obj


def default_clock() -> Clock:
    """A private hybrid logical clock on the real wall clock."""
    from microstatedb.clock import HLC

    return HLC().now
