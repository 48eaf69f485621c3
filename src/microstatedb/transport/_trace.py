"""Trace context on the wire: W3C ``traceparent``/``tracestate``, B3 single and multi, request id.

Meshes disagree on the header format (Istio and Envoy's Zipkin tracer speak B3, OpenTelemetry
speaks W3C, Linkerd forwards both), so a hop reads whichever arrives and passes the same trace
on in every format it saw, with a new span id of its own and the old one as parent. The
``x-request-id`` that Envoy uses to join access logs is kept unchanged from hop to hop.
Pure functions over plain header mappings; randomness comes from the caller's ``random.Random``.
"""

from __future__ import annotations

import random
import re
from collections.abc import Mapping
from dataclasses import dataclass, field, replace

from microstatedb.errors import DecodeError

TRACEPARENT = "traceparent"
TRACESTATE = "tracestate"
B3 = "b3"
B3_TRACE_ID = "x-b3-traceid"
B3_SPAN_ID = "x-b3-spanid"
B3_PARENT_ID = "x-b3-parentspanid"
B3_SAMPLED = "x-b3-sampled"
B3_FLAGS = "x-b3-flags"
REQUEST_ID = "x-request-id"

W3C = "w3c"
"""Format name: W3C trace context."""
B3_SINGLE = "b3"
"""Format name: the single ``b3`` header."""
B3_MULTI = "b3multi"
"""Format name: the ``x-b3-*`` headers."""

_HEX32 = re.compile(r"^[0-9a-f]{32}$")
_HEX16 = re.compile(r"^[0-9a-f]{16}$")
_TRACEPARENT = re.compile(r"^([0-9a-f]{2})-([0-9a-f]{32})-([0-9a-f]{16})-([0-9a-f]{2})(-.*)?$")
_ZERO32 = "0" * 32
_ZERO16 = "0" * 16


def _lower(headers: Mapping[str, str]) -> dict[str, str]:
    return {k.lower(): v for k, v in headers.items()}


def _trace_id(value: str, what: str) -> str:
    value = value.strip().lower()
    if _HEX16.match(value):
        value = "0" * 16 + value  # B3 allows 64-bit trace ids; W3C needs 128 bits
    if not _HEX32.match(value) or value == _ZERO32:
        raise DecodeError(f"{what}: trace id {value!r} is not 16 or 32 hex digits, not all zero")
    return value


def _span_id(value: str, what: str) -> str:
    value = value.strip().lower()
    if not _HEX16.match(value) or value == _ZERO16:
        raise DecodeError(f"{what}: span id {value!r} is not 16 hex digits, not all zero")
    return value


@dataclass(frozen=True, slots=True)
class TraceContext:
    """The trace a request belongs to, as this hop sees it."""

    trace_id: str
    """32 lower-case hex digits, the same on every hop."""
    span_id: str
    """16 hex digits: the span of this hop (the parent of the next one)."""
    parent_id: str | None = None
    """The span that called this hop, if known."""
    sampled: bool | None = None
    """The upstream sampling decision (None: defer to the tracer)."""
    tracestate: str = ""
    """The W3C vendor list, passed on unchanged."""
    request_id: str = ""
    """``x-request-id``, passed on unchanged."""
    formats: frozenset[str] = field(default_factory=lambda: frozenset({W3C}))
    """The header formats to write on the next hop (those that arrived, W3C always)."""

    @classmethod
    def new(cls, rng: random.Random, *, request_id: str | None = None) -> TraceContext:
        """A new root trace (for work that no request started, such as a gossip round)."""
        return cls(
            trace_id=_random_hex(rng, 32),
            span_id=_random_hex(rng, 16),
            sampled=True,
            request_id=request_id if request_id is not None else new_request_id(rng),
        )

    def child(self, rng: random.Random) -> TraceContext:
        """The context of the next hop: same trace, new span, this span as its parent."""
        return replace(self, span_id=_random_hex(rng, 16), parent_id=self.span_id)

    def to_headers(self) -> dict[str, str]:
        """The headers that carry this context to the next hop."""
        flags = "01" if self.sampled else "00"
        out = {TRACEPARENT: f"00-{self.trace_id}-{self.span_id}-{flags}"}
        if self.tracestate:
            out[TRACESTATE] = self.tracestate
        sampled = "" if self.sampled is None else ("1" if self.sampled else "0")
        if B3_SINGLE in self.formats:
            parts = [self.trace_id, self.span_id]
            if sampled:
                parts.append(sampled)
                if self.parent_id:
                    parts.append(self.parent_id)
            out[B3] = "-".join(parts)
        if B3_MULTI in self.formats:
            out[B3_TRACE_ID] = self.trace_id
            out[B3_SPAN_ID] = self.span_id
            if self.parent_id:
                out[B3_PARENT_ID] = self.parent_id
            if sampled:
                out[B3_SAMPLED] = sampled
        if self.request_id:
            out[REQUEST_ID] = self.request_id
        return out


def _random_hex(rng: random.Random, digits: int) -> str:
    value = 0
    while value == 0:  # all-zero ids are invalid in both formats
        value = rng.getrandbits(digits * 4)
    return f"{value:0{digits}x}"


def new_request_id(rng: random.Random) -> str:
    """A random ``x-request-id`` in the UUID form Envoy makes."""
    h = f"{rng.getrandbits(128):032x}"
    return f"{h[:8]}-{h[8:12]}-4{h[13:16]}-{h[16:20]}-{h[20:]}"


def parse_traceparent(value: str) -> tuple[str, str, bool]:
    """``(trace id, parent span id, sampled)`` from a W3C ``traceparent`` header."""
    match = _TRACEPARENT.match(value.strip().lower()) if isinstance(value, str) else None
    if match is None:
        raise DecodeError(f"traceparent {value!r} is not version-traceid-spanid-flags in hex")
    version, trace, span, flags, rest = match.groups()
    if version == "ff" or (version == "00" and rest):
        raise DecodeError(f"traceparent {value!r} has an invalid version or trailing fields")
    return (
        _trace_id(trace, "traceparent"),
        _span_id(span, "traceparent"),
        bool(int(flags, 16) & 1),
    )


def parse_b3(value: str) -> tuple[str, str, bool | None, str | None] | None:
    """``(trace, span, sampled, parent)`` from a single ``b3`` header.

    None for a bare sampling decision (``b3: 0``), which carries no ids.
    """
    if not isinstance(value, str):
        raise DecodeError(f"b3 header {value!r} is not text")
    parts = value.strip().lower().split("-")
    if len(parts) == 1 and parts[0] in ("0", "1", "d"):
        return None
    if not 2 <= len(parts) <= 4:
        raise DecodeError(f"b3 header {value!r} is not traceid-spanid[-sampled[-parent]]")
    trace = _trace_id(parts[0], "b3")
    span = _span_id(parts[1], "b3")
    sampled: bool | None = None
    if len(parts) >= 3:
        if parts[2] not in ("0", "1", "d"):
            raise DecodeError(f"b3 header {value!r}: sampling state must be 0, 1 or d")
        sampled = parts[2] != "0"
    parent = _span_id(parts[3], "b3") if len(parts) == 4 else None
    return trace, span, sampled, parent


def parse_b3_multi(headers: Mapping[str, str]) -> tuple[str, str, bool | None, str | None]:
    """``(trace, span, sampled, parent)`` from the ``x-b3-*`` headers."""
    h = _lower(headers)
    if B3_TRACE_ID not in h or B3_SPAN_ID not in h:
        raise DecodeError("x-b3-traceid and x-b3-spanid must both be present")
    trace = _trace_id(h[B3_TRACE_ID], "x-b3-traceid")
    span = _span_id(h[B3_SPAN_ID], "x-b3-spanid")
    parent = _span_id(h[B3_PARENT_ID], "x-b3-parentspanid") if B3_PARENT_ID in h else None
    sampled: bool | None = None
    if h.get(B3_FLAGS, "").strip() == "1":
        sampled = True  # debug implies sampled
    elif B3_SAMPLED in h:
        flag = h[B3_SAMPLED].strip().lower()
        if flag not in ("0", "1", "true", "false"):
            raise DecodeError(f"x-b3-sampled {flag!r} must be 0 or 1")
        sampled = flag in ("1", "true")
    return trace, span, sampled, parent


def extract_trace(
    headers: Mapping[str, str], rng: random.Random, *, strict: bool = False
) -> TraceContext:
    """The context of the hop that receives ``headers``: a child of the caller's span.

    W3C wins when present, then single B3, then multi B3. A malformed header restarts the trace
    (as the W3C recommendation says) unless ``strict``, where it raises ``DecodeError``.
    With no context at all a new root trace begins. The request id is kept, or made.
    """
    h = _lower(headers)
    formats = {W3C}
    if B3 in h:
        formats.add(B3_SINGLE)
    if B3_TRACE_ID in h:
        formats.add(B3_MULTI)
    request_id = h.get(REQUEST_ID, "").strip() or new_request_id(rng)
    found: tuple[str, str, bool | None] | None = None
    try:
        if TRACEPARENT in h:
            found = parse_traceparent(h[TRACEPARENT])
        elif B3 in h:
            single = parse_b3(h[B3])
            found = single[:3] if single is not None else None
        elif B3_TRACE_ID in h:
            found = parse_b3_multi(h)[:3]
    except DecodeError:
        if strict:
            raise
        found = None
    if found is None:
        root = TraceContext.new(rng, request_id=request_id)
        return replace(root, formats=frozenset(formats))
    trace, caller, sampled = found
    state = h.get(TRACESTATE, "").strip() if TRACEPARENT in h else ""
    return TraceContext(
        trace_id=trace,
        span_id=_random_hex(rng, 16),
        parent_id=caller,
        sampled=sampled,
        tracestate=state,
        request_id=request_id,
        formats=frozenset(formats),
    )
