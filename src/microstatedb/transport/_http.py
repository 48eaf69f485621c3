"""HTTP between nodes with aiohttp: a client transport and the node's server routes.

Messages are POSTed to ``/msdb/v1/message`` and answered ``204`` at once; replies travel as
messages of their own, so both directions are plain, short requests that an Envoy sidecar can
carry. A refused message gets ``401`` (authentication) or ``400`` (malformed).
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import aiohttp
from aiohttp import web

from microstatedb.errors import ConfigurationError, Unavailable
from microstatedb.transport._types import Request, Response

MESSAGE_PATH = "/msdb/v1/message"
"""Where nodes POST messages to each other."""
STATUS_PATH = "/msdb/v1/status"
"""A JSON view of the node (version vector, digest, counters)."""
WRITE_PATH = "/msdb/v1/dev/write"
"""Development and test endpoint for local writes (enabled only on request)."""


class HTTPTransport:
    """POSTs messages to peers over HTTP with one pooled aiohttp session."""

    def __init__(self, *, timeout: float = 2.0) -> None:
        if timeout <= 0:
            raise ConfigurationError("timeout must be positive seconds")
        self._timeout = aiohttp.ClientTimeout(total=timeout)
        self._session: aiohttp.ClientSession | None = None

    async def handle(self, request: Request) -> Response:
        """POST the request; raises ``Unavailable`` when the peer cannot be reached."""
        if self._session is None:
            self._session = aiohttp.ClientSession(timeout=self._timeout)
        try:
            async with self._session.post(
                request.url,
                data=request.body,
                headers={"Content-Type": "application/octet-stream"},
            ) as resp:
                return Response(resp.status, await resp.read())
        except (TimeoutError, aiohttp.ClientError, OSError) as exc:
            raise Unavailable(
                f"peer at {request.url} unreachable ({exc!r}); retried next round"
            ) from exc

    async def aclose(self) -> None:
        """Close pooled connections."""
        if self._session is not None:
            await self._session.close()
            self._session = None


OnMessage = Callable[[bytes], int]
Status = Callable[[], dict[str, Any]]
Write = Callable[[dict[str, Any]], Awaitable[dict[str, Any]]]


def make_app(on_message: OnMessage, status: Status, write: Write | None = None) -> web.Application:
    """The node's routes: messages in, status out, and optionally development writes."""

    async def message(request: web.Request) -> web.Response:
        body = await request.read()
        return web.Response(status=on_message(body))

    async def get_status(request: web.Request) -> web.Response:
        return web.json_response(status())

    app = web.Application(client_max_size=64 * 2**20)
    app.router.add_post(MESSAGE_PATH, message)
    app.router.add_get(STATUS_PATH, get_status)
    if write is not None:
        dev_write = write

        async def do_write(request: web.Request) -> web.Response:
            try:
                op = json.loads(await request.read())
            except ValueError:
                return web.json_response({"error": "body is not JSON"}, status=400)
            if not isinstance(op, dict):
                return web.json_response({"error": "body must be a JSON object"}, status=400)
            return web.json_response(await dev_write(op))

        app.router.add_post(WRITE_PATH, do_write)
    return app


async def serve(app: web.Application, host: str, port: int) -> tuple[web.AppRunner, int]:
    """Start ``app`` on ``host:port`` (0 picks a free port); returns the runner and the port."""
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    server = site._server
    sockets = getattr(server, "sockets", None) or []
    bound = sockets[0].getsockname()[1] if sockets else port
    return runner, int(bound)
