"""HTTP between nodes and the authentication of peers; knows no protocol rules.

A transport has one method, ``async handle(Request) -> Response``: ``HTTPTransport`` over
aiohttp, or ``MockTransport(handler)`` around a plain function for tests. ``Authenticator``
seals every message with the shared key and refuses (and counts) unauthenticated, tampered,
replayed and misdirected ones.

Behind a service mesh (docs/mesh.md): ``MeshTransport`` adds trace context (W3C, B3,
``x-request-id``), the remaining deadline and the retry-owner rule to every message;
``MeshServer`` serves a node with health endpoints and the same headers read back;
``envoy_bootstrap`` writes the sidecar's static config; ``StaticPeers``, ``DnsPeers`` and
``PeersFile`` find peers.
"""

from microstatedb.transport._auth import MESSAGE_KIND, Authenticator, AuthStats
from microstatedb.transport._budget import (
    DEADLINE_HEADER,
    ENVOY_EXPECTED_TIMEOUT,
    ENVOY_UPSTREAM_TIMEOUT,
    deadline_from_headers,
    deadline_headers,
)
from microstatedb.transport._discovery import (
    Discovery,
    DnsPeers,
    PeersFile,
    StaticPeers,
    refresh,
    system_resolver,
)
from microstatedb.transport._envoy import (
    Endpoint,
    SidecarSpec,
    envoy_bootstrap,
    parse_upstreams,
    peer_urls,
)
from microstatedb.transport._health import (
    LIVE_PATH,
    READY_PATH,
    HealthInputs,
    HealthReport,
    ReadinessPolicy,
    liveness,
    readiness,
)
from microstatedb.transport._http import (
    MESSAGE_PATH,
    STATUS_PATH,
    WRITE_PATH,
    HTTPTransport,
    make_app,
    serve,
)
from microstatedb.transport._mesh import (
    HopRecord,
    MeshContext,
    MeshStats,
    MeshTransport,
    current_mesh_context,
    mesh_middleware,
)
from microstatedb.transport._meshnode import ECHO_PATH, HOPS_PATH, ROUND_PATH, MeshServer
from microstatedb.transport._mock import MockTransport
from microstatedb.transport._policy import (
    BUSINESS_STATUS,
    IDEMPOTENCY_HEADER,
    OUTCOME_HEADER,
    IdempotencyCache,
    IdempotencyStats,
    Outcome,
    RetryOwner,
    classify,
    new_idempotency_key,
    retry_after,
    should_retry,
)
from microstatedb.transport._trace import TraceContext, extract_trace, new_request_id
from microstatedb.transport._types import Request, Response, Transport

__all__ = [
    "BUSINESS_STATUS",
    "DEADLINE_HEADER",
    "ECHO_PATH",
    "ENVOY_EXPECTED_TIMEOUT",
    "ENVOY_UPSTREAM_TIMEOUT",
    "HOPS_PATH",
    "IDEMPOTENCY_HEADER",
    "LIVE_PATH",
    "MESSAGE_KIND",
    "MESSAGE_PATH",
    "OUTCOME_HEADER",
    "READY_PATH",
    "ROUND_PATH",
    "STATUS_PATH",
    "WRITE_PATH",
    "AuthStats",
    "Authenticator",
    "Discovery",
    "DnsPeers",
    "Endpoint",
    "HTTPTransport",
    "HealthInputs",
    "HealthReport",
    "HopRecord",
    "IdempotencyCache",
    "IdempotencyStats",
    "MeshContext",
    "MeshServer",
    "MeshStats",
    "MeshTransport",
    "MockTransport",
    "Outcome",
    "PeersFile",
    "ReadinessPolicy",
    "Request",
    "Response",
    "RetryOwner",
    "SidecarSpec",
    "StaticPeers",
    "TraceContext",
    "Transport",
    "classify",
    "current_mesh_context",
    "deadline_from_headers",
    "deadline_headers",
    "envoy_bootstrap",
    "extract_trace",
    "liveness",
    "make_app",
    "mesh_middleware",
    "new_idempotency_key",
    "new_request_id",
    "parse_upstreams",
    "peer_urls",
    "readiness",
    "refresh",
    "retry_after",
    "serve",
    "should_retry",
    "system_resolver",
]
