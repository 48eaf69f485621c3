"""A node's HTTP server as a mesh expects it: the node routes plus health, header handling,
idempotent writes and a few mesh routes, around an unchanged ``runtime.Node``.

The node is passed in as an object with the ``Node`` attributes used here, so this module
imports nothing above ``transport``.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import random
import time
from collections import deque
from dataclasses import asdict
from typing import Any

from aiohttp import web

from microstatedb.transport._discovery import Discovery, refresh
from microstatedb.transport._health import (
    LIVE_PATH,
    READY_PATH,
    HealthInputs,
    ReadinessPolicy,
    liveness,
    readiness,
)
from microstatedb.transport._http import WRITE_PATH, make_app, serve
from microstatedb.transport._mesh import (
    HopRecord,
    MeshTransport,
    business,
    current_mesh_context,
    lower_headers,
    mesh_middleware,
)
from microstatedb.transport._policy import IdempotencyCache

ROUND_PATH = "/msdb/v1/mesh/round"
"""POST: open an anti-entropy round now, inside the request's trace."""
HOPS_PATH = "/msdb/v1/mesh/hops"
"""GET: the trace context of the last requests this node received."""
ECHO_PATH = "/msdb/v1/mesh/echo"
"""GET: the headers of this request as the node received them (checks what a proxy passed)."""


class MeshServer:
    """Serves ``node`` over HTTP for a sidecar; ``await start()``, then ``await close()``.

    ``node`` is a ``runtime.Node`` (its store, protocol, peers, status, write and tick are
    used). ``dev_api`` enables the JSON write route, with idempotency keys honoured.
    ``discovery`` refreshes peer URLs every ``refresh_interval`` seconds.
    """

    def __init__(
        self,
        node: Any,
        *,
        policy: ReadinessPolicy | None = None,
        dev_api: bool = False,
        discovery: Discovery | None = None,
        refresh_interval: float = 5.0,
        rng: random.Random | None = None,
        history: int = 256,
    ) -> None:
        self.node = node
        self.policy = policy if policy is not None else ReadinessPolicy()
        self.dev_api = dev_api
        self.discovery = discovery
        self.refresh_interval = refresh_interval
        self.hops: deque[HopRecord] = deque(maxlen=history)
        self.idempotency = IdempotencyCache()
        self._rng = rng if rng is not None else random.Random()
        self._started = time.monotonic()
        self.last_heard = self._started
        self.loop_lag = 0.0
        self._tasks: list[asyncio.Task[None]] = []
        self._runner: web.AppRunner | None = None
        self.port: int | None = None

    # ------------------------------------------------------------------ app

    def app(self) -> web.Application:
        """The aiohttp application (routes and middleware)."""
        app = make_app(self._on_message, self.status, None)
        app.middlewares.append(
            mesh_middleware(
                rng=self._rng,
                record=self.hops,
                idempotency=self.idempotency,
                skip=frozenset({LIVE_PATH, READY_PATH}),
            )
        )
        app.router.add_get(LIVE_PATH, self._live)
        app.router.add_get(READY_PATH, self._ready)
        app.router.add_post(ROUND_PATH, self._round)
        app.router.add_get(HOPS_PATH, self._hops)
        app.router.add_get(ECHO_PATH, self._echo)
        if self.dev_api:
            app.router.add_post(WRITE_PATH, self._write)
        return app

    def _on_message(self, body: bytes) -> int:
        status: int = self.node.on_message(body)
        if status == 204:
            self.last_heard = time.monotonic()
        return status

    async def _live(self, request: web.Request) -> web.Response:
        report = liveness(self.loop_lag)
        return web.json_response(report.as_json(), status=report.status)

    def inputs(self) -> HealthInputs:
        """What readiness looks at, read from the node now."""
        node = self.node
        store = node.store
        members = len(node.peers) + 1
        suspected = node.protocol.membership.suspected(time.monotonic())
        closed = store.closed
        return HealthInputs(
            store_open=not closed,
            buffered=store.stats().buffered,
            members=members,
            reachable=members - len(suspected),
            silence=0.0 if members == 1 else time.monotonic() - self.last_heard,
        )

    async def _ready(self, request: web.Request) -> web.Response:
        report = readiness(self.inputs(), self.policy)
        return web.json_response(report.as_json(), status=report.status)

    async def _round(self, request: web.Request) -> web.Response:
        self.node.tick()  # its sends run in tasks made now, so they carry this request's trace
        ctx = current_mesh_context()
        trace = ctx.trace.trace_id if ctx is not None else ""
        return web.json_response({"trace_id": trace}, status=202)

    async def _hops(self, request: web.Request) -> web.Response:
        return web.json_response([asdict(h) for h in self.hops])

    async def _echo(self, request: web.Request) -> web.Response:
        return web.json_response(lower_headers(request.headers))

    async def _write(self, request: web.Request) -> web.Response:
        try:
            op = json.loads(await request.read())
        except ValueError:
            return web.json_response({"error": "body is not JSON"}, status=400)
        if not isinstance(op, dict):
            return web.json_response({"error": "body must be a JSON object"}, status=400)
        result = await self.node.write(op)
        if "error" in result:
            # a refusal on the merits (bad type, closed store): a business outcome, not a 5xx
            return business(str(result["error"]))
        return web.json_response(result)

    def status(self) -> dict[str, Any]:
        """The node's status plus the mesh's view (transport counts, breakers, idempotency)."""
        view: dict[str, Any] = dict(self.node.status())
        mesh: dict[str, Any] = {"idempotency": asdict(self.idempotency.stats())}
        transport = getattr(self.node, "_transport", None)
        if isinstance(transport, MeshTransport):
            mesh["transport"] = asdict(transport.stats())
            mesh["breakers"] = transport.breaker_states()
        view["mesh"] = mesh
        return view

    # ------------------------------------------------------------------ lifecycle

    async def start(self, host: str = "127.0.0.1", port: int = 0) -> None:
        """Start the node's ticks, the server and the background checks."""
        await self.node.start(port=None)
        self._runner, self.port = await serve(self.app(), host, port)
        self._tasks.append(asyncio.create_task(self._heartbeat()))
        if self.discovery is not None:
            self._tasks.append(asyncio.create_task(self._discover(self.discovery)))

    async def _heartbeat(self) -> None:
        # a stalled loop shows as lag between the asked and the actual wake-up
        while True:
            before = time.monotonic()
            await asyncio.sleep(0.25)
            self.loop_lag = max(time.monotonic() - before - 0.25, 0.0)

    async def _discover(self, source: Discovery) -> None:
        while True:
            with contextlib.suppress(Exception):  # a bad read keeps the last good peers
                await refresh(self.node.peers, source)
            await asyncio.sleep(self.refresh_interval)

    async def close(self) -> None:
        """Stop the background checks, the server and the node."""
        for task in self._tasks:
            task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await task
        self._tasks.clear()
        # the node first (no new sends), then its connections, then the server
        await self.node.stop()
        transport = getattr(self.node, "_transport", None)
        if isinstance(transport, MeshTransport):
            await transport.aclose()
        if self._runner is not None:
            await self._runner.cleanup()
            self._runner = None
