"""Checking a batch before an external store sees it, so a bad one writes nothing."""

from __future__ import annotations

import re
from collections.abc import Sequence
from typing import Any

from microstatedb.codec import Event, decode_event, encode_event
from microstatedb.errors import ConfigurationError, DataError, DecodeError, IntegrityError

Dot = tuple[str, int]


def normalized(event: Any) -> tuple[Event, bytes]:
    """The event as it reads back from storage (tuples become lists) and its encoding.

    Anything that is not an event with well-typed fields and an encodable op is a
    ``DataError`` (``DecodeError`` for field types, as the codec reports them).
    """
    if not isinstance(event, Event):
        raise DataError(f"expected a codec.Event, got {type(event).__name__}")
    try:
        body = encode_event(event)
    except (TypeError, ValueError, OverflowError) as exc:
        raise DataError(f"event {event.dot} cannot be encoded: {exc}") from exc
    norm = decode_event(body)  # DecodeError (a DataError) on a bad field type or seq < 1
    if type(norm.seq) is not int or type(norm.hlc) is not int:
        raise DecodeError(f"event {event.dot}: seq and hlc must be plain ints")
    return norm, body


def check_batch(events: Sequence[Event]) -> list[tuple[Event, bytes]]:
    """Normalize a batch and drop repeats inside it; a dot with two contents is refused."""
    if isinstance(events, Event) or not isinstance(events, Sequence):
        raise ConfigurationError("append takes a sequence of events")
    seen: dict[Dot, Event] = {}
    out: list[tuple[Event, bytes]] = []
    for ev in events:
        norm, body = normalized(ev)
        before = seen.get(norm.dot)
        if before is None:
            seen[norm.dot] = norm
            out.append((norm, body))
        elif before != norm:
            raise IntegrityError(conflict_message(norm.dot))
    return out


def conflict_message(dot: Dot) -> str:
    return f"event {dot} is already stored with other content; a dot names one event only"


def check_read_args(start: int, limit: int | None) -> None:
    if type(start) is not int or start < 0:
        raise ConfigurationError(f"start must be an int >= 0, got {start!r}")
    if limit is not None and (type(limit) is not int or limit < 0):
        raise ConfigurationError(f"limit must be None or an int >= 0, got {limit!r}")


_NAME = re.compile(r"[A-Za-z][A-Za-z0-9_]{0,62}")


def check_name(what: str, name: Any) -> str:
    """A table or stream name: a letter, then letters, digits or underscores (63 at most)."""
    if not isinstance(name, str) or not _NAME.fullmatch(name):
        raise ConfigurationError(
            f"{what} must start with a letter and hold only letters, digits and underscores "
            f"(63 characters at most); got {name!r}"
        )
    return name
