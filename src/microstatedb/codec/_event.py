"""The event: one state change, identified by its dot.

Wire and log form is a msgpack array
``[format, origin, seq, hlc, deps, key, kind, op]`` where ``deps`` is the compact causal
context: only the version-vector entries of other origins that grew since the origin's previous
event. Together with "seq - 1 of the same origin first", that is enough to decide causal
readiness, and it does not grow with the size of the fleet.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import msgpack

from microstatedb.codec._msgpack import packb
from microstatedb.errors import DecodeError

EVENT_FORMAT = 1
"""Format version written in every encoded event."""


class Event(NamedTuple):
    """One state change.

    ``kind`` names the CRDT type (``"counter"``, ``"register"``, ...), ``op`` is that type's
    delta, opaque to every layer below ``replica``.
    """

    origin: str
    seq: int
    hlc: int
    deps: dict[str, int]
    key: str
    kind: str
    op: Any

    @property
    def dot(self) -> tuple[str, int]:
        return (self.origin, self.seq)


def encode_event(ev: Event) -> bytes:
    """Encode one event as msgpack bytes."""
    return packb((EVENT_FORMAT, *ev))


def encode_events(events: list[Event]) -> bytes:
    """Encode a list of events as one msgpack array."""
    return packb([(EVENT_FORMAT, *ev) for ev in events])


def event_from_fields(fields: Any) -> Event:
    """Build an event from its decoded field array; raises ``DecodeError`` if malformed."""
    if not isinstance(fields, list) or len(fields) != 8:
        raise DecodeError("an event must be an array of 8 fields")
    fmt, origin, seq, hlc, deps, key, kind, op = fields
    if fmt != EVENT_FORMAT:
        raise DecodeError(f"unknown event format {fmt!r}; this version reads {EVENT_FORMAT}")
    if (
        not isinstance(origin, str)
        or not isinstance(seq, int)
        or seq < 1
        or not isinstance(hlc, int)
        or not isinstance(deps, dict)
        or not isinstance(key, str)
        or not isinstance(kind, str)
    ):
        raise DecodeError("an event field has the wrong type")
    for node, n in deps.items():
        if not isinstance(node, str) or not isinstance(n, int):
            raise DecodeError("an event's causal context must map node ids to ints")
    return Event(origin, seq, hlc, deps, key, kind, op)


def decode_event(data: bytes) -> Event:
    """Decode bytes made by ``encode_event``; raises ``DecodeError`` on anything else."""
    try:
        fields = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise DecodeError(f"event is not valid msgpack ({exc})") from exc
    return event_from_fields(fields)


def decode_events(data: bytes) -> list[Event]:
    """Decode bytes made by ``encode_events``."""
    try:
        items = msgpack.unpackb(data, raw=False, strict_map_key=False)
    except (ValueError, msgpack.UnpackException, TypeError) as exc:
        raise DecodeError(f"event batch is not valid msgpack ({exc})") from exc
    if not isinstance(items, list):
        raise DecodeError("an event batch must be an array")
    return [event_from_fields(f) for f in items]
