"""Trace context on the wire: W3C and B3 parsing, propagation laws, malformed headers."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.errors import DecodeError
from microstatedb.transport import TraceContext, extract_trace, new_request_id
from microstatedb.transport._trace import parse_b3, parse_b3_multi, parse_traceparent

hex32 = st.integers(1, 2**128 - 1).map(lambda v: f"{v:032x}")
hex16 = st.integers(1, 2**64 - 1).map(lambda v: f"{v:016x}")
formats = st.sets(st.sampled_from(["b3", "b3multi"])).map(lambda s: frozenset(s | {"w3c"}))
state = st.sampled_from(["", "congo=t61rcWkgMzE", "rojo=00f067aa0ba902b7,congo=t61"])


@st.composite
def contexts(draw: st.DrawFn) -> TraceContext:
    return TraceContext(
        trace_id=draw(hex32),
        span_id=draw(hex16),
        parent_id=draw(st.none() | hex16),
        sampled=draw(st.booleans()),
        tracestate=draw(state),
        request_id=draw(st.sampled_from(["", "r-1", "5b7e0d2c-aa"])),
        formats=draw(formats),
    )


@given(contexts(), st.integers(0, 2**32))
def test_the_next_hop_sees_the_same_trace_with_this_span_as_parent(
    ctx: TraceContext, seed: int
) -> None:
    rng = random.Random(seed)
    received = extract_trace(ctx.to_headers(), rng)
    assert received.trace_id == ctx.trace_id
    assert received.parent_id == ctx.span_id
    assert received.span_id != ctx.span_id  # a fresh span for this hop
    assert len(received.span_id) == 16
    assert received.sampled == ctx.sampled
    assert received.tracestate == ctx.tracestate
    assert received.formats == ctx.formats
    if ctx.request_id:
        assert received.request_id == ctx.request_id
    else:
        assert received.request_id  # one is made when none came


@given(contexts(), st.integers(0, 2**32))
def test_each_format_alone_carries_the_trace(ctx: TraceContext, seed: int) -> None:
    headers = ctx.to_headers()
    rng = random.Random(seed)
    if "b3" in headers:
        only = {"b3": headers["b3"]}
        assert extract_trace(only, rng).trace_id == ctx.trace_id
        assert extract_trace(only, rng).parent_id == ctx.span_id
    if "x-b3-traceid" in headers:
        multi = {k: v for k, v in headers.items() if k.startswith("x-b3-")}
        got = extract_trace(multi, rng)
        assert (got.trace_id, got.parent_id, got.sampled) == (
            ctx.trace_id,
            ctx.span_id,
            ctx.sampled,
        )


@given(contexts(), st.integers(0, 2**32))
def test_child_keeps_trace_and_request_id(ctx: TraceContext, seed: int) -> None:
    child = ctx.child(random.Random(seed))
    assert child.trace_id == ctx.trace_id
    assert child.parent_id == ctx.span_id
    assert child.request_id == ctx.request_id


def test_sixty_four_bit_b3_ids_are_padded_and_deny_has_no_ids() -> None:
    trace, span, sampled, parent = parse_b3("a3ce929d0e0e4736-00f067aa0ba902b7-d-05e3ac9a4f6e3b90")
    assert trace == "0000000000000000a3ce929d0e0e4736"
    assert (span, sampled, parent) == ("00f067aa0ba902b7", True, "05e3ac9a4f6e3b90")
    assert parse_b3("0") is None
    rng = random.Random(1)
    fresh = extract_trace({"b3": "0"}, rng)  # a bare decision starts a new trace
    assert fresh.parent_id is None
    assert "b3" in fresh.formats


def test_multi_b3_flags_and_sampled_words() -> None:
    base = {"X-B3-TraceId": "1" * 32, "X-B3-SpanId": "2" * 16}
    assert parse_b3_multi({**base, "X-B3-Flags": "1"})[2] is True
    assert parse_b3_multi({**base, "X-B3-Sampled": "false"})[2] is False
    assert parse_b3_multi({**base, "X-B3-ParentSpanId": "3" * 16})[3] == "3" * 16
    assert parse_b3_multi(base)[2] is None


@pytest.mark.parametrize(
    "value",
    [
        "00-" + "0" * 32 + "-" + "1" * 16 + "-01",  # all-zero trace id
        "00-" + "1" * 32 + "-" + "0" * 16 + "-01",  # all-zero span id
        "ff-" + "1" * 32 + "-" + "1" * 16 + "-01",  # forbidden version
        "00-" + "1" * 32 + "-" + "1" * 16 + "-01-extra",  # version 00 has no more fields
        "not a traceparent",
    ],
)
def test_malformed_traceparent_is_a_decode_error(value: str) -> None:
    with pytest.raises(DecodeError):
        parse_traceparent(value)
    with pytest.raises(DecodeError):
        extract_trace({"traceparent": value}, random.Random(0), strict=True)
    restarted = extract_trace({"traceparent": value}, random.Random(0))
    assert restarted.parent_id is None  # lenient: a new trace, as W3C recommends


def test_future_traceparent_versions_with_more_fields_are_read() -> None:
    trace, span, sampled = parse_traceparent("01-" + "a" * 32 + "-" + "b" * 16 + "-00-more")
    assert (trace, span, sampled) == ("a" * 32, "b" * 16, False)


@pytest.mark.parametrize(
    "headers",
    [
        {"b3": "xyz-1"},
        {"b3": "1-2-3-4-5"},
        {"b3": "1" * 32 + "-" + "2" * 16 + "-x"},
        {"x-b3-traceid": "1" * 32},
        {"x-b3-traceid": "1" * 32, "x-b3-spanid": "2" * 16, "x-b3-sampled": "maybe"},
    ],
)
def test_malformed_b3_is_a_decode_error_when_strict(headers: dict[str, str]) -> None:
    with pytest.raises(DecodeError):
        extract_trace(headers, random.Random(0), strict=True)
    assert extract_trace(headers, random.Random(0)).parent_id is None


def test_parse_b3_refuses_non_text() -> None:
    with pytest.raises(DecodeError):
        parse_b3(7)  # type: ignore[arg-type]


def test_new_ids_replay_from_a_seed() -> None:
    assert new_request_id(random.Random(3)) == new_request_id(random.Random(3))
    a = TraceContext.new(random.Random(4))
    assert a == TraceContext.new(random.Random(4))
    assert a.to_headers()["traceparent"].endswith("-01")
    unsampled = TraceContext(trace_id="1" * 32, span_id="2" * 16, sampled=None)
    assert unsampled.to_headers()["traceparent"].endswith("-00")
