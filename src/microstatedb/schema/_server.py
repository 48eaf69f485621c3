"""The embedded registry served over HTTP with aiohttp (``microstatedb registry serve``)."""

from __future__ import annotations

import asyncio
import json
import threading
from collections.abc import Callable
from types import TracebackType

from aiohttp import web

from microstatedb.errors import ConfigurationError
from microstatedb.schema._registry import EmbeddedRegistry
from microstatedb.schema._rest import CONTENT_TYPE, handle


def make_app(registry: EmbeddedRegistry) -> web.Application:
    """An aiohttp application answering the Confluent REST API from ``registry``."""

    async def dispatch(request: web.Request) -> web.Response:
        body = await request.read()
        status, payload = handle(registry, request.method, request.path, request.query, body)
        return web.Response(
            status=status,
            body=json.dumps(payload).encode(),
            content_type=CONTENT_TYPE,
        )

    app = web.Application()
    app.router.add_route("*", "/{tail:.*}", dispatch)
    return app


def _bound_port(site: web.TCPSite) -> int:
    server = site._server  # aiohttp keeps the asyncio server private; port 0 needs it
    assert isinstance(server, asyncio.base_events.Server)
    return int(server.sockets[0].getsockname()[1])


class RegistryServer:
    """Serves a registry over HTTP from a background thread; a context manager.

    ``port=0`` picks a free port; :attr:`url` tells which one after :meth:`start`.
    """

    def __init__(self, registry: EmbeddedRegistry, host: str = "127.0.0.1", port: int = 0):
        self.registry = registry
        self.host = host
        self.port = port
        self._loop: asyncio.AbstractEventLoop | None = None
        self._runner: web.AppRunner | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """The base URL of the running server."""
        return f"http://{self.host}:{self.port}"

    def start(self) -> RegistryServer:
        """Start serving; returns once the socket listens."""
        if self._thread is not None:
            raise ConfigurationError("the registry server is already running")
        ready = threading.Event()
        failure: list[BaseException] = []
        loop = asyncio.new_event_loop()

        async def setup() -> None:
            runner = web.AppRunner(make_app(self.registry), access_log=None)
            await runner.setup()
            site = web.TCPSite(runner, self.host, self.port)
            await site.start()
            self.port = _bound_port(site)
            self._runner = runner

        def run() -> None:
            asyncio.set_event_loop(loop)
            try:
                loop.run_until_complete(setup())
            except BaseException as exc:  # reported to the starting thread
                failure.append(exc)
                ready.set()
                loop.close()
                return
            ready.set()
            loop.run_forever()
            loop.close()

        self._loop = loop
        self._thread = threading.Thread(target=run, name="schema-registry", daemon=True)
        self._thread.start()
        ready.wait()
        if failure:
            self._thread = None
            raise ConfigurationError(f"cannot serve on {self.url}: {failure[0]}") from failure[0]
        return self

    def stop(self) -> None:
        """Stop serving and join the thread."""
        if self._thread is None or self._loop is None:
            return
        loop, runner = self._loop, self._runner
        if runner is not None:
            asyncio.run_coroutine_threadsafe(runner.cleanup(), loop).result()
        loop.call_soon_threadsafe(loop.stop)
        self._thread.join()
        self._thread = None

    def __enter__(self) -> RegistryServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()


async def serve(
    registry: EmbeddedRegistry,
    host: str,
    port: int,
    stop: asyncio.Event,
    on_ready: Callable[[str], None] | None = None,
) -> None:
    """Serve ``registry`` until ``stop`` is set; ``on_ready`` gets the URL once it listens."""
    runner = web.AppRunner(make_app(registry), access_log=None)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        if on_ready is not None:
            on_ready(f"http://{host}:{_bound_port(site)}")
        await stop.wait()
    finally:
        await runner.cleanup()
