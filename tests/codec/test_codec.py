from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.codec import (
    EVENT_FORMAT,
    Event,
    canonical,
    checksum,
    decode_event,
    decode_events,
    digest_of,
    encode_event,
    encode_events,
    keyed_mac,
    open_envelope,
    pack_trusted,
    packb,
    seal_envelope,
    unpackb,
)
from microstatedb.errors import AuthenticationError, CorruptData, DecodeError

events = st.builds(
    Event,
    origin=st.text(min_size=1, max_size=8),
    seq=st.integers(1, 2**40),
    hlc=st.integers(0, 2**63),
    deps=st.dictionaries(st.text(max_size=4), st.integers(0, 2**31), max_size=3),
    key=st.text(max_size=10),
    kind=st.sampled_from(["counter", "set", "map"]),
    op=st.recursive(
        st.none() | st.integers(-(2**31), 2**31) | st.text(max_size=5) | st.binary(max_size=5),
        lambda inner: st.lists(inner, max_size=3),
        max_leaves=8,
    ),
)


@given(events)
def test_event_round_trip(ev: Event) -> None:
    assert decode_event(encode_event(ev)) == ev


@given(st.lists(events, max_size=5))
def test_events_round_trip(evs: list[Event]) -> None:
    assert decode_events(encode_events(evs)) == evs


def test_event_dot() -> None:
    assert Event("a", 3, 0, {}, "k", "counter", None).dot == ("a", 3)


@pytest.mark.parametrize(
    "data",
    [
        b"\xc1",  # never-used msgpack byte
        packb([1, "a"]),
        packb([99, "a", 1, 0, {}, "k", "counter", None]),  # unknown format
        packb([1, "a", 0, 0, {}, "k", "counter", None]),  # seq must be >= 1
        packb([1, "a", 1, 0, {"b": "x"}, "k", "counter", None]),
        packb("not an event"),
    ],
)
def test_malformed_event_is_a_decode_error(data: bytes) -> None:
    with pytest.raises(DecodeError):
        decode_event(data)


def test_malformed_batch_of_events() -> None:
    with pytest.raises(DecodeError):
        decode_events(packb({"a": 1}))
    with pytest.raises(DecodeError):
        decode_events(b"\xc1")


def test_checksums_and_digests() -> None:
    assert len(checksum(b"x")) == 8
    assert checksum(b"x") != checksum(b"y")
    assert len(digest_of(b"x")) == 32
    key = bytes(32)
    assert keyed_mac(key, b"x") != keyed_mac(bytes([1]) * 32, b"x")


def test_canonical_orders_maps_and_sets() -> None:
    assert packb(canonical({"b": 1, "a": {2, 1}})) == packb(canonical({"a": {1, 2}, "b": 1}))
    assert canonical((1, [2])) == [1, [2]]


def test_unpackb_errors() -> None:
    with pytest.raises(DecodeError):
        unpackb(b"\x92\x01")  # truncated array


def test_envelope_round_trip_plain_and_keyed() -> None:
    assert open_envelope(seal_envelope(3, b"body"), 3) == b"body"
    key = bytes(range(32))
    assert open_envelope(seal_envelope(3, b"body", key), 3, key) == b"body"


@given(st.binary(min_size=1, max_size=40), st.data())
def test_any_flipped_byte_is_refused(body: bytes, data: st.DataObject) -> None:
    sealed = bytearray(seal_envelope(1, body))
    i = data.draw(st.integers(0, len(sealed) - 1))
    sealed[i] ^= data.draw(st.integers(1, 255))
    with pytest.raises((CorruptData, AuthenticationError)):
        open_envelope(bytes(sealed), 1)


def test_envelope_refusals() -> None:
    key = bytes(32)
    sealed = seal_envelope(1, b"x")
    with pytest.raises(CorruptData, match="magic"):
        open_envelope(b"nope" + sealed[4:], 1)
    with pytest.raises(CorruptData, match="kind"):
        open_envelope(sealed, 2)
    with pytest.raises(CorruptData, match="version"):
        open_envelope(sealed[:4] + b"\x09" + sealed[5:], 1)
    with pytest.raises(AuthenticationError):
        open_envelope(sealed, 1, key)  # unkeyed where a key is expected
    with pytest.raises(AuthenticationError):
        open_envelope(seal_envelope(1, b"x", key), 1)  # keyed where none is configured
    with pytest.raises(AuthenticationError):
        open_envelope(seal_envelope(1, b"x", key), 1, bytes([7]) * 32)
    with pytest.raises(DecodeError):
        open_envelope("text", 1)  # type: ignore[arg-type]


msgpack_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**63), 2**64 - 1)
    | st.floats(allow_nan=False)
    | st.text(max_size=300)
    | st.binary(max_size=300),
    lambda inner: (
        st.lists(inner, max_size=20)
        | st.tuples(inner, inner)
        | st.dictionaries(st.text(max_size=8) | st.integers(-5, 5), inner, max_size=20)
    ),
    max_leaves=40,
)


@given(msgpack_values)
def test_the_trusted_encoder_writes_the_bytes_packb_writes(value: object) -> None:
    # Events encoded on the write path must read back, and digest, like any other.
    assert pack_trusted(value) == packb(value)


@given(events)
def test_a_trusted_encoding_decodes_as_the_event(ev: Event) -> None:
    assert decode_event(pack_trusted((EVENT_FORMAT, *ev))) == decode_event(encode_event(ev))
