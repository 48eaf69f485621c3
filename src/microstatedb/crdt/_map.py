"""The map of nested CRDTs, with add-wins key presence and update-wins removal."""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, cast

from microstatedb.clock import Dot
from microstatedb.crdt._base import KINDS, Clock, _Base, register_kind
from microstatedb.crdt._context import DotContext
from microstatedb.crdt._dotmap import decode_entries, encode_entries, join_dots
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch

if TYPE_CHECKING:
    from microstatedb.crdt._counter import PNCounter
    from microstatedb.crdt._register import LWWRegister, MVRegister
    from microstatedb.crdt._set import AWSet

CHILD_KINDS = ("counter", "map", "mvregister", "register", "set")
"""The kinds a map can hold, in the order that decides which one a key shows when two kinds
were created concurrently under one key (the later in this tuple)."""

_RANK = {k: i for i, k in enumerate(CHILD_KINDS)}

Field = tuple[str, str]
"""A map field: (key, kind). A key created concurrently as two kinds holds both fields."""


def _decode_field(data: Any) -> Field:
    if type(data) in (list, tuple) and len(data) == 2 and type(data[0]) is str and data[1] in _RANK:
        return (data[0], data[1])
    raise DecodeError(
        f"a map field must be [key: str, kind], kind one of {', '.join(CHILD_KINDS)}; got {data!r}"
    )


def _field_order(w: list[str]) -> tuple[str, str]:
    return (w[0], w[1])


@register_kind
class ORMap(_Base):
    """A map from str keys to nested CRDTs (counter, register, mvregister, set, map).

    A key is present while it holds a presence dot. Every update inside a child adds a fresh
    presence dot (replacing those it saw); ``remove(k)`` removes the presence dots it saw and
    resets the child. So an update concurrent with a remove keeps the key (update-wins) and
    shows only that update, and a removed key's nested state restarts from empty.

    Delta and state: ``[presence, context, children]`` with presence
    ``[[[key, kind], [dot, ...]], ...]`` and children ``[[key, kind, child_delta], ...]``.
    """

    __slots__ = ("_children", "_ctx", "_pres", "_where")

    kind = "map"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._pres: dict[Field, tuple[Dot, ...]] = {}
        self._where: dict[Dot, Field] = {}
        self._ctx = DotContext()
        # Children of removed keys stay, holding their reset floors (tombstones).
        self._children: dict[Field, _Base] = {}

    # -- reading ---------------------------------------------------------------------------

    def _live_kind(self, key: str) -> str | None:
        pres = self._pres
        best = None
        for kind in CHILD_KINDS:
            if (key, kind) in pres:
                best = kind
        return best

    @property
    def value(self) -> dict[str, Any]:
        """``{key: child value}`` for the present keys."""
        out: dict[str, Any] = {}
        kinds: dict[str, str] = {}
        children = self._children
        for key, kind in sorted(self._pres):
            if key not in kinds or _RANK[kind] > _RANK[kinds[key]]:
                kinds[key] = kind
                child = children.get((key, kind))
                if child is None:  # present, but its child state was empty when shipped
                    child = self._new_child((key, kind))
                out[key] = child.value
        return out

    def __contains__(self, key: object) -> bool:
        return isinstance(key, str) and self._live_kind(key) is not None

    def keys(self) -> list[str]:
        """The present keys, sorted."""
        return sorted({key for key, _ in self._pres})

    def __len__(self) -> int:
        return len(self.keys())

    def kind_of(self, key: str) -> str | None:
        """The kind a present key shows, or None when the key is absent."""
        return self._live_kind(key)

    # -- child handles ---------------------------------------------------------------------

    def _child(self, key: str, kind: str) -> _Base:
        if type(key) is not str:
            raise InvalidOperation(f"map keys must be str, got {type(key).__name__}")
        field = (key, kind)
        if field not in self._pres:
            live = self._live_kind(key)
            if live is not None:
                raise TypeMismatch(
                    f"map key {key!r} holds a {live}, not a {kind}; "
                    "remove the key first or use another key"
                )
        child = self._children.get(field)
        if child is None:
            child = self._new_child(field)
        return child

    def _new_child(self, field: Field) -> _Base:
        child = KINDS[field[1]](self.replica, clock=self._clock)
        child._parent = self
        child._pkey = field  # type: ignore[assignment]
        self._children[field] = child
        return child

    def counter(self, key: str) -> PNCounter:
        """The counter at ``key`` (created empty on first update)."""
        return cast("PNCounter", self._child(key, "counter"))

    def register(self, key: str) -> LWWRegister:
        """The last-writer-wins register at ``key``."""
        return cast("LWWRegister", self._child(key, "register"))

    def mvregister(self, key: str) -> MVRegister:
        """The multi-value register at ``key``."""
        return cast("MVRegister", self._child(key, "mvregister"))

    def set(self, key: str) -> AWSet:
        """The add-wins set at ``key``."""
        return cast("AWSet", self._child(key, "set"))

    def map(self, key: str) -> ORMap:
        """The nested map at ``key``."""
        return cast("ORMap", self._child(key, "map"))

    # -- mutation --------------------------------------------------------------------------

    def _child_changed(self, field: Field, child: _Base, child_delta: Any) -> Any:
        """A child applied a local delta: add a presence dot and report ONE map delta."""
        d = self._ctx.next_dot(self.replica)
        pres, where = self._pres, self._where
        old = pres.get(field)
        pres[field] = (d,)
        where[d] = field
        seen = [list(d)]
        if old:
            for o in old:
                del where[o]
                seen.append(list(o))
        key, kind = field
        return self._emit([[[[key, kind], [list(d)]]], [{}, seen], [[key, kind, child_delta]]])

    def remove(self, key: str) -> Any:
        """Remove ``key`` as far as this replica has seen it; returns the delta."""
        if type(key) is not str:
            raise InvalidOperation(f"map keys must be str, got {type(key).__name__}")
        seen: list[Dot] = []
        kids: list[Any] = []
        pres, where, children = self._pres, self._where, self._children
        for kind in CHILD_KINDS:
            field = (key, kind)
            dots = pres.pop(field, None)
            if dots:
                for d in dots:
                    del where[d]
                seen.extend(dots)
            child = children.get(field)
            if child is not None and not child._is_empty():
                kids.append([key, kind, child._reset_delta()])
        delta = [[], [{}, [list(d) for d in sorted(seen)]], kids]
        return self._emit(delta)

    def _reset_delta(self) -> list[Any]:
        seen = sorted(self._where)
        kids = [
            [key, kind, child._reset_delta()]
            for (key, kind), child in sorted(self._children.items())
            if not child._is_empty()
        ]
        self._pres = {}
        self._where = {}
        return [[], [{}, [list(d) for d in seen]], kids]

    # -- joining ---------------------------------------------------------------------------

    @classmethod
    def _decode(cls, delta: Any) -> tuple[dict[Field, tuple[Dot, ...]], DotContext, list[Any]]:
        if type(delta) not in (list, tuple) or len(delta) != 3:
            raise DecodeError(f"a map delta must be [presence, context, children], got {delta!r}")
        pres = decode_entries(delta[0], _decode_field)
        ctx = DotContext.decode(delta[1])
        raw = delta[2]
        if type(raw) not in (list, tuple):
            raise DecodeError(f"map children must be a list of [key, kind, delta], got {raw!r}")
        kids: list[Any] = []
        fields: set[Field] = set()
        for item in raw:
            if type(item) not in (list, tuple) or len(item) != 3:
                raise DecodeError(f"a map child must be [key, kind, delta], got {item!r}")
            field = _decode_field(item[:2])
            if field in fields:
                raise DecodeError(f"map field {list(field)!r} appears twice in one delta")
            fields.add(field)
            kids.append((field, KINDS[field[1]]._decode(item[2])))
        return pres, ctx, kids

    def _join(self, parsed: tuple[dict[Field, tuple[Dot, ...]], DotContext, list[Any]]) -> None:
        pres, ctx, kids = parsed
        children = self._children
        for field, child_parsed in kids:
            child = children.get(field)
            if child is None:
                child = self._new_child(field)
            child._join(child_parsed)
        join_dots(self._pres, self._where, self._ctx, pres, ctx)

    def state(self) -> list[Any]:
        children = self._children
        return [
            encode_entries(self._pres, list, _field_order),
            self._ctx.encode(),
            [
                [key, kind, children[(key, kind)].state()]
                for key, kind in sorted(children)
                if not children[(key, kind)]._is_empty()
            ],
        ]

    def _is_empty(self) -> bool:
        return (
            not self._pres
            and self._ctx.is_empty()
            and all(c._is_empty() for c in self._children.values())
        )
