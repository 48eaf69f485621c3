"""The anti-entropy messages and their msgpack form.

Every message is a msgpack array whose first item is its kind. Authentication is the
transport's job (``transport.Authenticator`` seals each message with the shared key); this
module only checks shape, so that a malformed message is refused with ``CorruptData`` before
the protocol looks at it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microstatedb.codec import packb, unpackb
from microstatedb.errors import CorruptData, DecodeError
from microstatedb.replica import BUCKETS, VVSummary

_SUMMARY, _SAME, _REQUEST, _DELTA, _PUSH = 1, 2, 3, 4, 5


@dataclass(frozen=True, slots=True)
class Summary:
    """Opens a round: the sender's Merkle summary of its version vector."""

    summary: VVSummary
    """Root and bucket hashes of the sender's version vector."""


@dataclass(frozen=True, slots=True)
class Same:
    """The answer to a ``Summary`` that matched: nothing to exchange."""


@dataclass(frozen=True, slots=True)
class Request:
    """ "Send me what I lack": the sender's entries in the buckets that differ."""

    buckets: tuple[int, ...]
    """The buckets whose hashes differed."""
    entries: dict[str, int]
    """The sender's non-zero version-vector entries in those buckets."""
    max_events: int
    """At most this many events in the answer (the receiver's back-pressure)."""
    both: bool
    """True when the receiver should also ask for what it lacks itself."""


@dataclass(frozen=True, slots=True)
class DeltaMessage:
    """An answer to a ``Request``: one bounded batch."""

    batch: bytes
    """A batch in the format ``Store.apply`` takes."""
    buckets: tuple[int, ...]
    """The buckets of the request, echoed so the receiver can ask for the next batch."""
    more: bool
    """True when the sender holds more that the receiver lacks."""


@dataclass(frozen=True, slots=True)
class Push:
    """Fresh events pushed to a few peers at once, without being asked."""

    batch: bytes
    """A batch in the format ``Store.apply`` takes."""


Message = Summary | Same | Request | DeltaMessage | Push


def encode_message(msg: Message) -> bytes:
    """The msgpack form of a message."""
    fields: list[Any]
    if isinstance(msg, Summary):
        fields = [_SUMMARY, *msg.summary.to_wire()]
    elif isinstance(msg, Same):
        fields = [_SAME]
    elif isinstance(msg, Request):
        fields = [_REQUEST, list(msg.buckets), msg.entries, msg.max_events, msg.both]
    elif isinstance(msg, DeltaMessage):
        fields = [_DELTA, msg.batch, list(msg.buckets), msg.more]
    else:
        fields = [_PUSH, msg.batch]
    return packb(fields)


def _buckets(raw: Any) -> tuple[int, ...]:
    if not isinstance(raw, list) or not all(isinstance(b, int) and 0 <= b < BUCKETS for b in raw):
        raise DecodeError(f"buckets must be ints in [0, {BUCKETS})")
    return tuple(raw)


def decode_message(data: bytes) -> Message:
    """Parse a message; anything malformed raises ``CorruptData``."""
    try:
        fields = unpackb(data)
        if not isinstance(fields, list) or not fields:
            raise DecodeError("a message must be a non-empty array")
        kind, rest = fields[0], fields[1:]
        if kind == _SUMMARY:
            return Summary(VVSummary.from_wire(rest))
        if kind == _SAME and not rest:
            return Same()
        if kind == _REQUEST and len(rest) == 4:
            buckets, entries, max_events, both = rest
            if not isinstance(entries, dict) or not all(
                isinstance(o, str) and isinstance(n, int) and n >= 0 for o, n in entries.items()
            ):
                raise DecodeError("request entries must map node ids to non-negative ints")
            if not isinstance(max_events, int) or max_events < 1 or not isinstance(both, bool):
                raise DecodeError("a request's window must be a positive int and both a bool")
            return Request(_buckets(buckets), entries, max_events, both)
        if kind == _DELTA and len(rest) == 3:
            batch, buckets, more = rest
            if not isinstance(batch, bytes) or not isinstance(more, bool):
                raise DecodeError("a delta carries batch bytes and a more flag")
            return DeltaMessage(batch, _buckets(buckets), more)
        if kind == _PUSH and len(rest) == 1 and isinstance(rest[0], bytes):
            return Push(rest[0])
        raise DecodeError(f"unknown message kind {kind!r} or wrong number of fields")
    except DecodeError as exc:
        raise CorruptData(f"malformed anti-entropy message: {exc}") from exc
