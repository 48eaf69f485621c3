"""``microstatedb schema compat`` and ``microstatedb registry serve``.

``schema compat`` exits 0 when NEW is compatible with the OLD versions (oldest first) at the
level, 1 when it is not (printing each incompatibility), 2 on an invalid schema or file.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import signal
import sys
from pathlib import Path
from typing import Any

from microstatedb.errors import ConfigurationError, InvalidSchema
from microstatedb.replica import Store
from microstatedb.schema import EmbeddedRegistry, Level, StoreStorage, check_compatibility
from microstatedb.schema._server import serve


def register(subparsers: Any) -> None:
    schema = subparsers.add_parser("schema", help="schema tools")
    schema_sub = schema.add_subparsers(dest="schema_command", metavar="SCHEMA_COMMAND")
    compat = schema_sub.add_parser(
        "compat", help="check that a new schema may follow the old versions of a subject"
    )
    compat.add_argument("--type", choices=["avro", "json"], default="avro", dest="schema_type")
    compat.add_argument(
        "--level", default="BACKWARD", help="BACKWARD, FORWARD, FULL, their _TRANSITIVE, NONE"
    )
    compat.add_argument("new", help="the new schema: a file, or inline JSON")
    compat.add_argument("olds", nargs="+", metavar="old", help="the old versions, oldest first")
    compat.set_defaults(run=run_compat)

    registry = subparsers.add_parser("registry", help="the embedded schema registry")
    registry_sub = registry.add_subparsers(dest="registry_command", metavar="REGISTRY_COMMAND")
    serve_cmd = registry_sub.add_parser("serve", help="serve the Confluent REST API over HTTP")
    serve_cmd.add_argument("--host", default="127.0.0.1")
    serve_cmd.add_argument("--port", type=int, default=8081)
    serve_cmd.add_argument("--level", default="BACKWARD", help="the global compatibility level")
    serve_cmd.add_argument(
        "--data", default=None, help="folder of a durable store for the schemas (default: memory)"
    )
    serve_cmd.set_defaults(run=run_serve)


def _load(arg: str) -> Any:
    path = Path(arg)
    if path.is_file():
        text = path.read_text()
    elif arg.lstrip().startswith(("{", "[", '"')):
        text = arg
    else:
        raise InvalidSchema(f"{arg!r} is neither a file nor inline JSON")
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise InvalidSchema(f"{arg}: not valid JSON: {exc}") from None


def run_compat(args: argparse.Namespace) -> int:
    try:
        level = Level.of(args.level)
        new = _load(args.new)
        olds = [_load(old) for old in args.olds]
        result = check_compatibility(new, olds, level, args.schema_type)
    except (InvalidSchema, ConfigurationError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    if result.is_compatible:
        print(f"compatible ({level})")
        return 0
    for message in result.messages:
        print(message)
    return 1


def _announce(url: str) -> None:
    print(f"schema registry serving on {url}", flush=True)


def run_serve(args: argparse.Namespace) -> int:
    store = None
    if args.data is not None:
        store = Store("schema-registry", path=args.data, durability="always")
        registry = EmbeddedRegistry(StoreStorage(store), default_level=args.level)
    else:
        registry = EmbeddedRegistry(default_level=args.level)

    async def main() -> None:
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for sig in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(sig, stop.set)
        await serve(registry, args.host, args.port, stop, _announce)

    try:
        asyncio.run(main())
    finally:
        if store is not None:
            store.close()
    return 0
