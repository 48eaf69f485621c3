"""``microstatedb mesh``: a node's Envoy sidecar bootstrap, and a node that serves behind one.

``mesh envoy-config`` prints (or writes) a static Envoy bootstrap; ``mesh serve`` runs a node
with health endpoints, trace and deadline propagation and its peers reached through the
sidecar's egress (or found by DNS, or in a peers file).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from microstatedb.cli._output import describe

    parser = sub.add_parser(
        "mesh",
        help="run behind a service-mesh sidecar",
        description=describe(__doc__.split("\n\n")[1]),
    )
    mesh = parser.add_subparsers(dest="mesh_command", metavar="MESH_COMMAND")
    config = mesh.add_parser("envoy-config", help="print a static Envoy bootstrap for one node")
    config.add_argument("--node", required=True, help="this node's name")
    config.add_argument("--app", required=True, metavar="HOST:PORT", help="the node's server")
    config.add_argument("--ingress", required=True, metavar="HOST:PORT", help="peers come here")
    config.add_argument("--egress", required=True, metavar="HOST:PORT", help="the app goes here")
    config.add_argument(
        "--upstream",
        action="append",
        default=[],
        metavar="NAME=HOST:PORT",
        help="a peer's ingress sidecar (repeatable)",
    )
    config.add_argument("--admin", metavar="HOST:PORT", help="Envoy's admin interface")
    config.add_argument("--timeout", type=float, default=5.0, help="route timeout, seconds")
    config.add_argument("--retries", type=int, default=1, help="connect-failure retries (0-10)")
    config.add_argument("--output", help="write to this file instead of standard output")
    config.set_defaults(run=run_config)

    serve = mesh.add_parser("serve", help="run one node behind a sidecar")
    serve.add_argument("--name", required=True, help="this node's name")
    serve.add_argument("--listen", default="127.0.0.1:7400", help="HOST:PORT of the app")
    serve.add_argument(
        "--peer", action="append", default=[], metavar="NAME=URL", help="a peer (repeatable)"
    )
    serve.add_argument("--peers-file", help="JSON file of peers that a controller maintains")
    serve.add_argument("--dns", metavar="TEMPLATE", help="DNS name per peer, with {name}")
    serve.add_argument("--dns-port", type=int, default=7400, help="port for --dns peers")
    serve.add_argument("--dns-peer", action="append", default=[], help="peer name for --dns")
    serve.add_argument("--path", help="folder of a durable store (default: in memory)")
    serve.add_argument("--key-file", help="file holding the shared key as 64 hex digits")
    serve.add_argument("--interval", type=float, default=1.0, help="seconds between rounds")
    serve.add_argument("--timeout", type=float, default=2.0, help="budget of one message")
    serve.add_argument(
        "--retry-owner", choices=("sidecar", "library"), default="sidecar", help="who retries"
    )
    serve.add_argument("--linearizable", action="store_true", help="readiness needs a quorum")
    serve.add_argument("--dev-api", action="store_true", help="enable the JSON write endpoint")
    serve.set_defaults(run=run_serve)
    parser.set_defaults(run=lambda args: (parser.print_help(), 2)[1])


def run_config(args: argparse.Namespace) -> int:
    from microstatedb.transport import Endpoint, SidecarSpec, envoy_bootstrap, parse_upstreams

    spec = SidecarSpec(
        node=args.node,
        app=Endpoint.parse(args.app),
        ingress=Endpoint.parse(args.ingress),
        egress=Endpoint.parse(args.egress),
        upstreams=parse_upstreams(args.upstream),
        admin=Endpoint.parse(args.admin) if args.admin else None,
        timeout=args.timeout,
        retries=args.retries,
    )
    text = json.dumps(envoy_bootstrap(spec), indent=2, sort_keys=True) + "\n"
    if args.output:
        Path(args.output).write_text(text)
    else:
        print(text, end="")
    return 0


def _sources(args: argparse.Namespace) -> tuple[dict[str, str], Any]:
    from microstatedb.errors import ConfigurationError
    from microstatedb.transport import DnsPeers, PeersFile

    peers: dict[str, str] = {}
    for item in args.peer:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--peer takes NAME=http://HOST:PORT, got {item!r}")
        peers[name] = url
    source: Any = None
    if args.peers_file:
        source = PeersFile(args.peers_file)
        peers.update(PeersFile.load(Path(args.peers_file).read_text()))
    elif args.dns:
        source = DnsPeers(args.dns_peer, args.dns, args.dns_port)
        for name in args.dns_peer:  # filled in by the first refresh
            peers.setdefault(name, f"http://{args.dns.format(name=name)}:{args.dns_port}")
    return peers, source


def run_serve(args: argparse.Namespace) -> int:
    from microstatedb.cli._serve import _key
    from microstatedb.errors import ConfigurationError

    host, _, port = args.listen.rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"--listen takes HOST:PORT, got {args.listen!r}")
    peers, source = _sources(args)
    asyncio.run(_serve(args, _key(args.key_file), peers, source, host, int(port)))
    return 0


async def _serve(
    args: argparse.Namespace,
    key: bytes,
    peers: dict[str, str],
    source: Any,
    host: str,
    port: int,
) -> None:
    from microstatedb.protocols import AntiEntropyConfig
    from microstatedb.replica import Store
    from microstatedb.runtime import Node
    from microstatedb.transport import MeshServer, MeshTransport, ReadinessPolicy, RetryOwner

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = Store(args.name, path=args.path, key=key)
    transport = MeshTransport(timeout=args.timeout, owner=RetryOwner(args.retry_owner))
    node = Node(
        args.name,
        store,
        peers,
        key=key,
        transport=transport,
        config=AntiEntropyConfig(interval=args.interval),
    )
    server = MeshServer(
        node,
        policy=ReadinessPolicy(linearizable=args.linearizable),
        dev_api=args.dev_api,
        discovery=source,
    )
    try:
        await server.start(host, port)
        print(f"microstatedb mesh serve: {args.name} on http://{host}:{server.port}", flush=True)
        await stop.wait()
    finally:
        await server.close()
        store.close()
