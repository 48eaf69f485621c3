"""``microstatedb serve``: one node as a process, replicating with its peers over HTTP."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import signal
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "serve",
        help="run one replicating node over HTTP",
        description=(
            "Run one store as a node that replicates with its peers over HTTP. Every message "
            "is authenticated with a 32-byte shared key given as 64 hex digits in "
            "--key-file or the MICROSTATEDB_KEY environment variable."
        ),
    )
    parser.add_argument("--config", help="JSON file with name, listen, peers, path, key_file")
    parser.add_argument("--name", help="this node's name (also its store's node id)")
    parser.add_argument("--listen", help="HOST:PORT to listen on (port 0 picks one)")
    parser.add_argument(
        "--peer", action="append", default=[], metavar="NAME=URL", help="a peer (repeatable)"
    )
    parser.add_argument("--path", help="folder of a durable store (default: in memory)")
    parser.add_argument("--key-file", help="file holding the shared key as 64 hex digits")
    parser.add_argument("--interval", type=float, help="seconds between gossip rounds")
    parser.add_argument(
        "--dev-api", action="store_true", help="enable the JSON write endpoint (tests, demos)"
    )
    parser.set_defaults(run=run)


def _settings(args: argparse.Namespace) -> dict[str, Any]:
    from microstatedb.errors import ConfigurationError

    conf: dict[str, Any] = {}
    if args.config:
        try:
            conf = json.loads(Path(args.config).read_text())
        except (OSError, ValueError) as exc:
            raise ConfigurationError(f"cannot read config {args.config}: {exc}") from exc
        if not isinstance(conf, dict):
            raise ConfigurationError("the config file must hold a JSON object")
    peers = dict(conf.get("peers", {}))
    for item in args.peer:
        name, sep, url = item.partition("=")
        if not sep or not name or not url.startswith(("http://", "https://")):
            raise ConfigurationError(f"--peer takes NAME=http://HOST:PORT, got {item!r}")
        peers[name] = url
    settings = {
        "name": args.name or conf.get("name"),
        "listen": args.listen or conf.get("listen", "127.0.0.1:7400"),
        "peers": peers,
        "path": args.path or conf.get("path"),
        "key_file": args.key_file or conf.get("key_file"),
        "interval": args.interval or conf.get("interval", 1.0),
        "dev_api": args.dev_api or bool(conf.get("dev_api", False)),
    }
    if not settings["name"]:
        raise ConfigurationError("serve needs --name (or name in the config file)")
    return settings


def _key(key_file: str | None) -> bytes:
    from microstatedb.errors import ConfigurationError

    text = Path(key_file).read_text().strip() if key_file else os.environ.get("MICROSTATEDB_KEY")
    if not text:
        raise ConfigurationError("a shared key is required: --key-file or MICROSTATEDB_KEY")
    try:
        key = bytes.fromhex(text)
    except ValueError as exc:
        raise ConfigurationError("the shared key must be 64 hex digits") from exc
    if len(key) != 32:
        raise ConfigurationError("the shared key must be 64 hex digits (32 bytes)")
    return key


def run(args: argparse.Namespace) -> int:
    from microstatedb.errors import ConfigurationError

    settings = _settings(args)
    key = _key(settings["key_file"])
    host, _, port = str(settings["listen"]).rpartition(":")
    if not host or not port.isdigit():
        raise ConfigurationError(f"--listen takes HOST:PORT, got {settings['listen']!r}")
    asyncio.run(_serve(settings, key, host, int(port)))
    return 0


async def _serve(settings: dict[str, Any], key: bytes, host: str, port: int) -> None:
    from microstatedb.protocols import AntiEntropyConfig
    from microstatedb.replica import Store
    from microstatedb.runtime import Node

    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for sig in (signal.SIGINT, signal.SIGTERM):
        loop.add_signal_handler(sig, stop.set)
    store = Store(settings["name"], path=settings["path"], key=key)
    node = Node(
        settings["name"],
        store,
        settings["peers"],
        key=key,
        config=AntiEntropyConfig(interval=float(settings["interval"])),
    )
    try:
        await node.start(host, port, dev_api=settings["dev_api"])
        print(f"microstatedb serve: {node.name} listening on http://{host}:{node.port}", flush=True)
        await stop.wait()
    finally:
        await node.stop()
        store.close()
