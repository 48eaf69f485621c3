"""A static Envoy bootstrap for one node's sidecar, with the retry and timeout rules built in.

The sidecar has two listeners. *Ingress* takes peers' requests and hands them to the local
app, with an HTTP fault-injection filter (inert until the admin runtime turns it on, so tests
and game days can add delays and aborts without a restart). *Egress* takes the app's requests
to ``/{peer}/...`` and sends them to that peer's ingress; each route retries only failures
where the request never reached the peer (``connect-failure``, ``refused-stream``), at most
``retries`` times, so a retry can never apply a message or a write twice, and never retries a
status code (business outcomes included). Outlier detection ejects a peer after consecutive
gateway errors. The route timeout is an upper bound: the app's ``x-envoy-upstream-rq-timeout-ms``
shortens it to the caller's remaining budget.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

from microstatedb.errors import ConfigurationError

_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,62}$")


@dataclass(frozen=True, slots=True)
class Endpoint:
    """A host and port."""

    host: str
    """IP address or DNS name."""
    port: int
    """TCP port."""

    @classmethod
    def parse(cls, text: str) -> Endpoint:
        """``HOST:PORT`` (``[v6]:PORT`` for IPv6)."""
        host, sep, port = text.rpartition(":")
        host = host.strip("[]")
        if not sep or not host or not port.isdigit() or not 0 < int(port) < 65536:
            raise ConfigurationError(f"expected HOST:PORT with a port in 1..65535, got {text!r}")
        return cls(host, int(port))

    def address(self) -> dict[str, Any]:
        """Envoy's ``socket_address`` form."""
        return {"socket_address": {"address": self.host, "port_value": self.port}}


@dataclass(frozen=True, slots=True)
class SidecarSpec:
    """Everything the bootstrap of one node's sidecar depends on."""

    node: str
    """The node's name (also Envoy's node id)."""
    app: Endpoint
    """Where the node's HTTP server listens."""
    ingress: Endpoint
    """Where this sidecar takes peers' requests."""
    egress: Endpoint
    """Where this sidecar takes the app's requests to peers (``/{peer}/...``)."""
    upstreams: Mapping[str, Endpoint] = field(default_factory=dict)
    """Each peer's ingress sidecar."""
    admin: Endpoint | None = None
    """Envoy's admin interface (needed to switch faults on at run time)."""
    timeout: float = 5.0
    """Most seconds a route waits for an answer."""
    retries: int = 1
    """Retries of connect failures on egress (0 when the library owns retries)."""
    connect_timeout: float = 0.5
    """Seconds to open a connection to an upstream."""

    def __post_init__(self) -> None:
        if not _NAME.match(self.node):
            raise ConfigurationError(f"node name {self.node!r} must be 1-63 of [A-Za-z0-9_.-]")
        for name in self.upstreams:
            if not _NAME.match(name) or name == self.node:
                raise ConfigurationError(f"upstream name {name!r} is invalid or the node itself")
        if not self.timeout > 0 or not self.connect_timeout > 0:
            raise ConfigurationError("timeout and connect_timeout must be > 0 seconds")
        if isinstance(self.retries, bool) or not 0 <= self.retries <= 10:
            raise ConfigurationError(f"retries must be 0..10, got {self.retries!r}")


def _duration(seconds: float) -> str:
    return f"{seconds:.3f}s"


def _hcm(stat: str, routes: list[dict[str, Any]], filters: list[dict[str, Any]]) -> dict[str, Any]:
    return {
        "name": "envoy.filters.network.http_connection_manager",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.network."
            "http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": stat,
            "codec_type": "AUTO",
            # keep the caller's x-request-id: it joins the access logs of every hop
            "preserve_external_request_id": True,
            "generate_request_id": True,
            "route_config": {
                "name": stat,
                "virtual_hosts": [{"name": stat, "domains": ["*"], "routes": routes}],
            },
            "http_filters": [
                *filters,
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http."
                        "router.v3.Router"
                    },
                },
            ],
        },
    }


def _fault() -> dict[str, Any]:
    # 0% by default; `fault.http.delay.fixed_delay_percent`, `fault.http.abort.abort_percent`
    # and `fault.http.abort.http_status` in the admin runtime switch it on. The headers
    # x-envoy-fault-delay-request / x-envoy-fault-abort-request work per request.
    return {
        "name": "envoy.filters.http.fault",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.fault.v3.HTTPFault",
            "delay": {
                "fixed_delay": "0.001s",
                "percentage": {"numerator": 0, "denominator": "HUNDRED"},
            },
            "abort": {
                "http_status": 503,
                "percentage": {"numerator": 0, "denominator": "HUNDRED"},
            },
            "max_active_faults": 10000,
        },
    }


def _cluster(name: str, target: Endpoint, connect: float, outlier: bool) -> dict[str, Any]:
    cluster: dict[str, Any] = {
        "name": name,
        "type": "STRICT_DNS" if not _is_ip(target.host) else "STATIC",
        "connect_timeout": _duration(connect),
        "lb_policy": "ROUND_ROBIN",
        "load_assignment": {
            "cluster_name": name,
            "endpoints": [{"lb_endpoints": [{"endpoint": {"address": target.address()}}]}],
        },
        "circuit_breakers": {
            "thresholds": [
                {"max_connections": 1024, "max_pending_requests": 1024, "max_retries": 3}
            ]
        },
    }
    if outlier:
        cluster["outlier_detection"] = {
            "consecutive_gateway_failure": 5,
            "interval": "1s",
            "base_ejection_time": "1s",
            "max_ejection_percent": 100,
        }
    return cluster


def _is_ip(host: str) -> bool:
    return bool(re.match(r"^[0-9.]+$", host)) or ":" in host


def envoy_bootstrap(spec: SidecarSpec) -> dict[str, Any]:
    """The static bootstrap (as a JSON-ready dict) of ``spec``'s sidecar."""
    timeout = _duration(spec.timeout)
    ingress_routes = [
        {"match": {"prefix": "/"}, "route": {"cluster": "local_app", "timeout": timeout}}
    ]
    egress_routes = []
    for name in sorted(spec.upstreams):
        route: dict[str, Any] = {
            "cluster": f"peer_{name}",
            "timeout": timeout,
            "prefix_rewrite": "/",
        }
        if spec.retries:
            route["retry_policy"] = {
                # never a status code: a 409 or a 503 from the app may have applied
                "retry_on": "connect-failure,refused-stream",
                "num_retries": spec.retries,
                "retry_back_off": {"base_interval": "0.025s", "max_interval": "0.25s"},
            }
        egress_routes.append({"match": {"prefix": f"/{name}/"}, "route": route})
    clusters = [_cluster("local_app", spec.app, spec.connect_timeout, outlier=False)]
    clusters += [
        _cluster(f"peer_{n}", spec.upstreams[n], spec.connect_timeout, outlier=True)
        for n in sorted(spec.upstreams)
    ]
    bootstrap: dict[str, Any] = {
        "node": {"id": spec.node, "cluster": "microstatedb"},
        "static_resources": {
            "listeners": [
                {
                    "name": "ingress",
                    "address": spec.ingress.address(),
                    "filter_chains": [{"filters": [_hcm("ingress", ingress_routes, [_fault()])]}],
                },
                {
                    "name": "egress",
                    "address": spec.egress.address(),
                    "filter_chains": [{"filters": [_hcm("egress", egress_routes, [])]}],
                },
            ],
            "clusters": clusters,
        },
        "layered_runtime": {
            "layers": [
                {"name": "static", "static_layer": {}},
                {"name": "admin", "admin_layer": {}},
            ]
        },
    }
    if spec.admin is not None:
        bootstrap["admin"] = {"address": spec.admin.address()}
    return bootstrap


def peer_urls(spec: SidecarSpec) -> dict[str, str]:
    """The peer URLs the node uses so that its traffic goes through this sidecar's egress."""
    base = f"http://{spec.egress.host}:{spec.egress.port}"
    return {name: f"{base}/{name}" for name in sorted(spec.upstreams)}


def parse_upstreams(items: list[str]) -> dict[str, Endpoint]:
    """``NAME=HOST:PORT`` items as a mapping; ``ConfigurationError`` for a bad or repeated one."""
    out: dict[str, Endpoint] = {}
    for item in items:
        name, sep, target = item.partition("=")
        if not sep or not name:
            raise ConfigurationError(f"--upstream takes NAME=HOST:PORT, got {item!r}")
        if name in out:
            raise ConfigurationError(f"upstream {name!r} given twice")
        out[name] = Endpoint.parse(target)
    return out
