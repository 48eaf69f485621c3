"""The asyncio runtime: one node driving the protocol objects over a real transport.

The node owns no protocol rule. It feeds ``AntiEntropy.tick`` at its deadlines and
``receive`` with every authenticated message, and hands each ``Send`` to the transport as a
task of its own, so a slow or unreachable peer delays nobody: local writes go on in the same
event loop without waiting on the network.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import time
from collections import deque
from collections.abc import Mapping
from dataclasses import asdict
from typing import Any

from aiohttp import web

from microstatedb.errors import (
    AuthenticationError,
    ConfigurationError,
    MicroStateError,
    Unavailable,
    UnknownNode,
)
from microstatedb.protocols import AntiEntropy, AntiEntropyConfig, Output, PeerDown, PeerUp, Send
from microstatedb.replica import Store
from microstatedb.transport import (
    MESSAGE_PATH,
    Authenticator,
    HTTPTransport,
    Request,
    Transport,
    make_app,
    serve,
)

_log = logging.getLogger("microstatedb.runtime")


def plain(value: Any) -> Any:
    """A JSON-ready copy of a store value (sets become sorted lists)."""
    if isinstance(value, dict):
        return {str(k): plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted((plain(v) for v in value), key=repr)
    if isinstance(value, tuple | list):
        return [plain(v) for v in value]
    return value


async def close_serving(
    ticker: asyncio.Task[None] | None,
    tasks: set[asyncio.Task[None]],
    runner: web.AppRunner | None,
    transport: object,
    owns_transport: bool,
) -> None:
    """Stop a node's timer task, wait for its messages in flight, close its server and the
    HTTP transport it made itself (shared by every asyncio node kind)."""
    if ticker is not None:
        ticker.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await ticker
    if tasks:
        await asyncio.gather(*list(tasks), return_exceptions=True)
    if runner is not None:
        await runner.cleanup()
    if owns_transport and isinstance(transport, HTTPTransport):
        await transport.aclose()


class Node:
    """A store replicated with its peers over HTTP (or any ``Transport``).

    ``peers`` maps peer names to base URLs (``http://host:port``). ``key`` is the 32-byte
    shared key that authenticates every message.
    """

    def __init__(
        self,
        name: str,
        store: Store,
        peers: Mapping[str, str],
        *,
        key: bytes,
        transport: Transport | None = None,
        config: AntiEntropyConfig | None = None,
        rng: random.Random | None = None,
        boot: int | None = None,
    ) -> None:
        if name in peers:
            raise ConfigurationError(f"node {name!r} lists itself among its peers")
        self.name = name
        self.store = store
        self.peers = dict(peers)
        self._transport: Transport = transport if transport is not None else HTTPTransport()
        self._owns_transport = transport is None
        self.auth = Authenticator(name, key, boot=boot if boot is not None else time.time_ns())
        self._rng = rng if rng is not None else random.Random()
        self._loop_time = time.monotonic
        self.protocol = AntiEntropy(
            name, store, list(self.peers), rng=self._rng, config=config, now=self._loop_time()
        )
        self.effects: deque[tuple[float, PeerDown | PeerUp]] = deque(maxlen=1000)
        self.send_failures = 0
        self.refused = 0
        self._tasks: set[asyncio.Task[None]] = set()
        self._ticker: asyncio.Task[None] | None = None
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ lifecycle

    async def start(
        self, host: str = "127.0.0.1", port: int | None = 0, *, dev_api: bool = False
    ) -> None:
        """Start the tick loop and, unless ``port`` is None, the HTTP server."""
        if port is not None:
            app = make_app(self.on_message, self.status, self.write if dev_api else None)
            self._runner, self.port = await serve(app, host, port)
        self._ticker = asyncio.create_task(self._tick_loop())

    async def stop(self) -> None:
        """Stop ticking, wait for messages in flight, close the server and the transport."""
        ticker, self._ticker = self._ticker, None
        runner, self._runner = self._runner, None
        await close_serving(ticker, self._tasks, runner, self._transport, self._owns_transport)

    async def _tick_loop(self) -> None:
        while True:
            delay = self.protocol.next_deadline - self._loop_time()
            if delay > 0:
                await asyncio.sleep(delay)
            self.tick()

    def tick(self) -> None:
        """Run one protocol tick now (the loop does this on its own)."""
        self._dispatch(self.protocol.tick(self._loop_time()))

    # ------------------------------------------------------------------ messages

    def on_message(self, body: bytes) -> int:
        """Handle one message from the wire; returns the HTTP status to answer with."""
        try:
            sender, payload = self.auth.open(body)
        except AuthenticationError:
            self.refused += 1
            return 401
        try:
            out = self.protocol.receive(self._loop_time(), sender, payload)
        except UnknownNode as exc:
            self.refused += 1
            _log.warning("%s: %s", self.name, exc)
            return 403
        except MicroStateError as exc:
            self.refused += 1
            _log.warning("%s: message from %s refused: %s", self.name, sender, exc)
            return 400
        self._dispatch(out)
        return 204

    def _dispatch(self, out: list[Output]) -> None:
        for item in out:
            if isinstance(item, Send):
                task = asyncio.get_running_loop().create_task(self._deliver(item))
                self._tasks.add(task)
                task.add_done_callback(self._tasks.discard)
            else:
                self.effects.append((self._loop_time(), item))
                _log.info("%s: %s", self.name, item)

    async def _deliver(self, item: Send) -> None:
        url = self.peers[item.to].rstrip("/") + MESSAGE_PATH
        try:
            resp = await self._transport.handle(Request(url, self.auth.seal(item.to, item.payload)))
        except Unavailable as exc:
            self.send_failures += 1
            _log.debug("%s: %s", self.name, exc)
            return
        if resp.status >= 300:
            self.send_failures += 1
            _log.warning("%s: %s answered %d", self.name, item.to, resp.status)

    # ------------------------------------------------------------------ views

    def status(self) -> dict[str, Any]:
        """A JSON-ready view: version vector, digest, value and counters."""
        stats = self.store.stats()
        return {
            "name": self.name,
            "node_id": self.store.node_id,
            "vv": self.store.version_vector,
            "digest": self.store.digest().hex(),
            "events": stats.events_applied,
            "buffered": stats.buffered,
            "value": plain(self.store.value()),
            "auth": asdict(self.auth.stats()),
            "antientropy": asdict(self.protocol.stats()),
            "send_failures": self.send_failures,
            "refused": self.refused,
            "suspected": self.protocol.membership.suspected(self._loop_time()),
        }

    async def write(self, op: dict[str, Any]) -> dict[str, Any]:
        """A local write described as JSON (the development endpoint); durable on return.

        ``{"type": "counter", "key": k, "n": 1}``, ``{"type": "set", "key": k, "add": x}``
        (or ``"remove"``), ``{"type": "register", "key": k, "value": v}``.
        """
        kind, key = op.get("type"), op.get("key")
        if not isinstance(key, str) or not key:
            return {"error": "key must be a non-empty string"}
        try:
            if kind == "counter" and isinstance(op.get("n", 1), int):
                self.store.counter(key).increment(op.get("n", 1))
            elif kind == "set" and "add" in op:
                self.store.set(key).add(op["add"])
            elif kind == "set" and "remove" in op:
                self.store.set(key).remove(op["remove"])
            elif kind == "register" and "value" in op:
                self.store.register(key).set(op["value"])
            else:
                return {"error": f"unsupported write {op!r}"}
            self.store.flush()
        except MicroStateError as exc:
            return {"error": str(exc)}
        origin = self.store.node_id
        return {"ok": True, "dot": [origin, self.store.version_vector.get(origin, 0)]}
