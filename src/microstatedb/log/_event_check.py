"""Checking events before they enter a log or a store, so a bad one never lands on disk."""

from __future__ import annotations

from typing import Any

from microstatedb.codec import Event, decode_event, encode_event
from microstatedb.errors import DataError, DecodeError


def check_event(event: Any) -> Event:
    """Return ``event`` if its fields have the types ``decode_event`` accepts, else DataError."""
    if not isinstance(event, Event):
        raise DataError(f"expected a codec.Event, got {type(event).__name__}")
    origin, seq, hlc, deps, key, kind, _op = event
    if (
        type(origin) is not str
        or type(seq) is not int
        or seq < 1
        or type(hlc) is not int
        or type(deps) is not dict
        or type(key) is not str
        or type(kind) is not str
    ):
        raise DataError(
            "event fields must be origin: str, seq: int >= 1, hlc: int, deps: dict, "
            f"key: str, kind: str; got {event!r}"
        )
    for node, n in deps.items():
        if type(node) is not str or type(n) is not int:
            raise DataError(f"event deps must map node ids (str) to ints; got {deps!r}")
    return event


def encode_checked(event: Any) -> bytes:
    """Check and encode one event; an operation msgpack cannot encode is a DataError."""
    check_event(event)
    try:
        return encode_event(event)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"event {event.dot} cannot be encoded: {exc}") from exc


def normalized(event: Any) -> tuple[Event, bytes]:
    """The event as it reads back from storage (tuples become lists), and its encoding."""
    body = encode_checked(event)
    try:
        return decode_event(body), body
    except DecodeError as exc:  # pragma: no cover - check_event rules this out
        raise DataError(f"event {event.dot} does not round-trip: {exc}") from exc
