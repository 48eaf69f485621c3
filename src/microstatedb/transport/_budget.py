"""Deadline propagation across hops: read every budget header that arrives, pass the rest on.

Three headers may carry a request's remaining time: Envoy's router sets
``x-envoy-expected-rq-timeout-ms`` on what it forwards to the app, gRPC clients and meshes send
``grpc-timeout``, and MicroStateDB sends its own ``x-msdb-deadline-ms`` so the budget survives a
proxy that strips the others. The earliest wins. Each is a duration, never a wall-clock
instant, so the machines' clocks need not agree; the receiving hop rebuilds the deadline on its
own monotonic clock.
"""

from __future__ import annotations

from collections.abc import Mapping

from microstatedb.clock import Clock
from microstatedb.errors import DecodeError
from microstatedb.resilience import HEADER_NAME as GRPC_TIMEOUT
from microstatedb.resilience import Deadline

ENVOY_EXPECTED_TIMEOUT = "x-envoy-expected-rq-timeout-ms"
"""Set by Envoy's router on requests it forwards: the time the route will wait."""
ENVOY_UPSTREAM_TIMEOUT = "x-envoy-upstream-rq-timeout-ms"
"""Sent to our own egress sidecar: it then gives up on the upstream when our budget ends."""
DEADLINE_HEADER = "x-msdb-deadline-ms"
"""MicroStateDB's own budget header: whole milliseconds left."""

_MAX_MS = 99_999_999


def _millis(value: str, name: str) -> int:
    text = value.strip()
    if not text.isascii() or not text.isdigit() or len(text) > 8:
        raise DecodeError(f"{name} header {value!r} is not 1-8 decimal digits of milliseconds")
    return int(text)


def deadline_from_headers(
    headers: Mapping[str, str], clock: Clock | None = None
) -> Deadline | None:
    """The earliest deadline that the budget headers carry, on this side's ``clock``.

    None when no header carries one. A malformed value raises ``DecodeError``.
    """
    h = {k.lower(): v for k, v in headers.items()}
    found: list[Deadline] = []
    for name in (ENVOY_EXPECTED_TIMEOUT, DEADLINE_HEADER):
        if name in h:
            found.append(Deadline.after(_millis(h[name], name) / 1000, clock))
    if GRPC_TIMEOUT in h:
        found.append(Deadline.from_header(h[GRPC_TIMEOUT], clock))
    if not found:
        return None
    return min(found, key=lambda d: d.at)


def deadline_headers(deadline: Deadline, *, sidecar: bool = True) -> dict[str, str]:
    """The headers that pass ``deadline``'s remainder on to the next hop.

    With ``sidecar`` the egress Envoy is also told to stop waiting when the budget ends.
    """
    ms = min(int(deadline.remaining() * 1000), _MAX_MS)
    out = {DEADLINE_HEADER: str(ms), GRPC_TIMEOUT: f"{ms}m"}
    if sidecar:
        # Envoy reads 0 as "no timeout"; a spent budget is refused before sending anyway
        out[ENVOY_UPSTREAM_TIMEOUT] = str(max(ms, 1))
    return out
