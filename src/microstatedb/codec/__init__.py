"""Encoding: events and messages as msgpack, blake3 checksums, canonical form for digests."""

from microstatedb.codec._checksum import checksum, checksum_of_parts, digest_of, keyed_mac
from microstatedb.codec._envelope import (
    ENVELOPE_VERSION,
    open_envelope,
    seal_envelope,
)
from microstatedb.codec._event import (
    EVENT_FORMAT,
    Event,
    decode_event,
    decode_events,
    encode_event,
    encode_events,
    event_from_fields,
)
from microstatedb.codec._msgpack import canonical, pack_trusted, packb, unpackb

__all__ = [
    "ENVELOPE_VERSION",
    "EVENT_FORMAT",
    "Event",
    "canonical",
    "checksum",
    "checksum_of_parts",
    "decode_event",
    "decode_events",
    "digest_of",
    "encode_event",
    "encode_events",
    "event_from_fields",
    "keyed_mac",
    "open_envelope",
    "pack_trusted",
    "packb",
    "seal_envelope",
    "unpackb",
]
