"""The replication batch: what ``events_since`` gives and ``apply`` takes.

One envelope (``codec.seal_envelope``: magic, version, kind, checksum or keyed MAC) around a
msgpack array ``[sender, sender_vv, events, states]``:

- ``events``: event field arrays, the same arrays ``codec.encode_event`` writes, in causal
  order;
- ``states``: ``[key, kind, state]`` full CRDT states, sent instead of events when the events a
  peer lacks have left the sender's log (covered by a snapshot) or were never kept
  (``log=False``). States join like any delta, so both parts may arrive together.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from microstatedb.codec import (
    EVENT_FORMAT,
    Event,
    event_from_fields,
    open_envelope,
    packb,
    seal_envelope,
    unpackb,
)
from microstatedb.errors import CorruptData, DecodeError

BATCH_KIND = 1


@dataclass(frozen=True, slots=True)
class Batch:
    """A decoded replication batch."""

    sender: str
    """Node id of the store that made the batch."""
    vv: dict[str, int]
    """The sender's version vector when it made the batch."""
    events: list[Event]
    """Events the receiver lacked, in causal order."""
    states: list[tuple[str, str, Any]]
    """Full states ``(key, kind, state)`` standing in for events no longer in a log."""


def encode_batch(
    sender: str,
    vv: dict[str, int],
    events: list[Event],
    states: list[tuple[str, str, Any]],
    key: bytes | None = None,
) -> bytes:
    body = packb([sender, vv, [(EVENT_FORMAT, *ev) for ev in events], [list(s) for s in states]])
    return seal_envelope(BATCH_KIND, body, key)


def decode_batch(data: bytes, key: bytes | None = None) -> Batch:
    """Verify and decode a batch; anything malformed raises ``CorruptData``."""
    body = open_envelope(data, BATCH_KIND, key)
    try:
        fields = unpackb(body)
        if not isinstance(fields, list) or len(fields) != 4:
            raise DecodeError("a batch must be an array of 4 fields")
        sender, vv, raw_events, raw_states = fields
        if not isinstance(sender, str) or not isinstance(vv, dict):
            raise DecodeError("a batch's sender and version vector have the wrong type")
        if not all(isinstance(k, str) and isinstance(n, int) and n >= 0 for k, n in vv.items()):
            raise DecodeError("a version vector must map node ids to non-negative ints")
        if not isinstance(raw_events, list) or not isinstance(raw_states, list):
            raise DecodeError("a batch's events and states must be arrays")
        events = [event_from_fields(f) for f in raw_events]
        states: list[tuple[str, str, Any]] = []
        for item in raw_states:
            if (
                not isinstance(item, list)
                or len(item) != 3
                or not isinstance(item[0], str)
                or not isinstance(item[1], str)
            ):
                raise DecodeError("a batch state must be [key, kind, state]")
            states.append((item[0], item[1], item[2]))
    except DecodeError as exc:
        raise CorruptData(f"malformed replication batch: {exc}") from exc
    return Batch(sender, vv, events, states)
