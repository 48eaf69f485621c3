"""Documents: rich collaborative data (text, arrays, maps) backed by pycrdt (Yjs)."""

from __future__ import annotations

from typing import Any

from blake3 import blake3
from pycrdt import (
    Array,
    Doc,
    Map,
    Text,
    Transaction,
    TransactionEvent,
    get_update,
    merge_updates,
)

from microstatedb.crdt._base import Clock, _Base, register_kind
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch

_ROOT_TYPES: dict[str, type[Any]] = {"text": Text, "array": Array, "map": Map}
_EMPTY_UPDATE = b"\x00\x00"
_CLIENT_ID_BITS = 53  # the most pycrdt accepts


def _varint(data: bytes, pos: int) -> tuple[int, int]:
    """One lib0 variable-length unsigned int: (value, next position)."""
    value = shift = 0
    while True:
        byte = data[pos]
        pos += 1
        value |= (byte & 0x7F) << shift
        if byte < 0x80:
            return value, pos
        shift += 7


def _state_vector(sv: bytes) -> dict[int, int]:
    """A Yjs state vector: client id -> number of structs integrated."""
    n, pos = _varint(sv, 0)
    out: dict[int, int] = {}
    for _ in range(n):
        client, pos = _varint(sv, pos)
        clock, pos = _varint(sv, pos)
        out[client] = clock
    return out


def _integrated(update: bytes, sv_bytes: bytes) -> bool:
    """True when every struct of ``update`` is in the document with state vector ``sv_bytes``
    and every item its delete set names is there too (so the deletes took effect)."""
    try:
        rest = get_update(update, sv_bytes)
        if rest[0] != 0:  # some structs are not integrated yet
            return False
        sv = _state_vector(sv_bytes)
        n, pos = _varint(rest, 1)
        for _ in range(n):
            client, pos = _varint(rest, pos)
            ranges, pos = _varint(rest, pos)
            for _ in range(ranges):
                clock, pos = _varint(rest, pos)
                length, pos = _varint(rest, pos)
                if clock + length > sv.get(client, 0):
                    return False
    except (ValueError, IndexError):
        # Bytes pycrdt accepted but cannot diff (trailing junk): nothing to wait for.
        return True
    return True


def client_id_for(replica: str) -> int:
    """The pycrdt client id of a replica: derived from its id, so it is the same on restart."""
    digest = blake3(replica.encode()).digest(8)
    return int.from_bytes(digest, "big") & ((1 << _CLIENT_ID_BITS) - 1)


@register_kind
class Document(_Base):
    """A pycrdt document: ``text(name)``, ``array(name)`` and ``map(name)`` give its roots.

    Local edits are captured from pycrdt's update observer; each update (bytes) is the delta
    passed to ``on_change``. ``apply(update)`` applies a remote update (idempotent, any order,
    as Yjs guarantees); ``state()`` is the full-state update; ``value`` is
    ``{root name: plain value}`` for the roots asked for so far on this replica.
    """

    __slots__ = ("_capture", "_doc", "_pending", "_remote", "_roots", "_sub")

    kind = "document"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._doc: Doc[Any] = Doc(client_id=client_id_for(replica))
        self._roots: dict[str, tuple[str, Any]] = {}
        self._remote = False
        self._capture: list[bytes] | None = None
        # Updates whose predecessors have not arrived yet. pycrdt keeps such updates itself,
        # but can drop one when several wait at once; so they are kept here and re-applied
        # until they are in (re-applying an update is a no-op in Yjs).
        self._pending: list[bytes] = []
        self._sub = self._doc.observe(self._on_update)

    @property
    def doc(self) -> Doc[Any]:
        """The underlying ``pycrdt.Doc`` (edit through it and the deltas are still captured)."""
        return self._doc

    def _root(self, name: str, kind: str) -> Any:
        if type(name) is not str:
            raise InvalidOperation(f"document root names must be str, got {type(name).__name__}")
        held = self._roots.get(name)
        if held is not None:
            if held[0] != kind:
                raise TypeMismatch(
                    f"document root {name!r} is a {held[0]}, not a {kind}; use another name"
                )
            return held[1]
        root = self._doc.get(name, type=_ROOT_TYPES[kind])
        self._roots[name] = (kind, root)
        return root

    def text(self, name: str) -> Text:
        """The shared text root ``name``."""
        return self._root(name, "text")  # type: ignore[no-any-return]

    def array(self, name: str) -> Array[Any]:
        """The shared array root ``name``."""
        return self._root(name, "array")  # type: ignore[no-any-return]

    def map(self, name: str) -> Map[Any]:
        """The shared map root ``name``."""
        return self._root(name, "map")  # type: ignore[no-any-return]

    def transaction(self) -> Transaction:
        """A pycrdt transaction: edits inside one ``with`` block become ONE delta."""
        return self._doc.transaction()

    @property
    def value(self) -> dict[str, Any]:
        return {name: self._roots[name][1].to_py() for name in sorted(self._roots)}

    def _on_update(self, event: TransactionEvent) -> None:
        if self._remote:
            return
        update: bytes = event.update
        if update == _EMPTY_UPDATE:
            return
        if self._capture is not None:
            self._capture.append(update)
            return
        self._emit(update)

    @classmethod
    def _decode(cls, delta: Any) -> bytes:
        if type(delta) is bytes:
            return delta
        if isinstance(delta, bytearray | memoryview):
            return bytes(delta)
        raise DecodeError(
            f"a document delta must be pycrdt update bytes, got {type(delta).__name__}"
        )

    def _join(self, update: bytes) -> None:
        self._remote = True
        try:
            # pycrdt decodes the whole update before integrating any of it, so a malformed
            # one leaves the document as it was.
            try:
                self._doc.apply_update(update)
            except ValueError as exc:
                raise DecodeError(f"not a valid pycrdt update ({exc})") from None
            sv = self._doc.get_state()
            if self._pending or not _integrated(update, sv):
                self._settle(update, sv)
        finally:
            self._remote = False

    def _settle(self, update: bytes, sv: bytes) -> None:
        """Re-apply the waiting updates until no more of them can go in."""
        waiting = [*self._pending, update]
        while True:
            for u in waiting:
                self._doc.apply_update(u)
            after = self._doc.get_state()
            waiting = [u for u in waiting if not _integrated(u, after)]
            if after == sv or not waiting:
                break
            sv = after
        self._pending = waiting

    @property
    def pending(self) -> int:
        """Remote updates waiting for missing predecessors (their edits are not visible yet)."""
        return len(self._pending)

    def state(self) -> bytes:
        """The full-state update in canonical form.

        Yjs squashes neighbouring blocks of one client only when they are integrated in one
        transaction, so two documents with equal content can encode it split differently;
        re-encoding through a scratch document (all blocks integrated at once) gives one form.
        """
        update: bytes = self._doc.get_update()
        if update == _EMPTY_UPDATE:
            return update
        scratch: Doc[Any] = Doc(client_id=0)
        scratch.apply_update(update)
        canonical: bytes = scratch.get_update()
        return canonical

    def _reset_delta(self) -> bytes:
        """Clear every root asked for on this replica (Yjs deletes are observed-removes)."""
        captured: list[bytes] = []
        self._capture = captured
        try:
            with self._doc.transaction():
                for _, root in self._roots.values():
                    root.clear()
        finally:
            self._capture = None
        if not captured:
            return _EMPTY_UPDATE
        merged: bytes = merge_updates(*captured)  # one transaction, so normally one update
        return merged

    def _is_empty(self) -> bool:
        return bool(self._doc.get_update() == _EMPTY_UPDATE)
