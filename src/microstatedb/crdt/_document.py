"""Documents: rich collaborative data (text, arrays, maps) backed by pycrdt (Yjs)."""

from __future__ import annotations

from typing import Any

from blake3 import blake3
from pycrdt import Array, Doc, Map, Text, Transaction, TransactionEvent, merge_updates

from microstatedb.crdt._base import Clock, _Base, register_kind
from microstatedb.errors import DecodeError, InvalidOperation, TypeMismatch

_ROOT_TYPES: dict[str, type[Any]] = {"text": Text, "array": Array, "map": Map}
_EMPTY_UPDATE = b"\x00\x00"
_CLIENT_ID_BITS = 53  # the most pycrdt accepts


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

    __slots__ = ("_capture", "_doc", "_remote", "_roots", "_sub")

    kind = "document"

    def __init__(self, replica: str, *, clock: Clock | None = None) -> None:
        super().__init__(replica, clock=clock)
        self._doc: Doc[Any] = Doc(client_id=client_id_for(replica))
        self._roots: dict[str, tuple[str, Any]] = {}
        self._remote = False
        self._capture: list[bytes] | None = None
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
            self._doc.apply_update(update)
        except ValueError as exc:
            raise DecodeError(f"not a valid pycrdt update ({exc})") from None
        finally:
            self._remote = False

    def state(self) -> bytes:
        update: bytes = self._doc.get_update()
        return update

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
        if len(captured) == 1:
            return captured[0]
        merged: bytes = merge_updates(*captured)
        return merged

    def _is_empty(self) -> bool:
        return self.state() == _EMPTY_UPDATE
