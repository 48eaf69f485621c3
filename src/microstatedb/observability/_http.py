"""The ``/metrics`` endpoint over aiohttp (imported only when an endpoint is made)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from microstatedb.errors import ConfigurationError
from microstatedb.observability import metrics

if TYPE_CHECKING:
    from aiohttp import web

CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"
"""The Prometheus text exposition format."""


async def metrics_handler(request: Any) -> web.Response:
    """An aiohttp handler answering with the current metrics (503 when disabled)."""
    from aiohttp import web

    if not metrics.metrics_enabled():
        return web.Response(status=503, text="metrics are not enabled\n")
    return web.Response(body=metrics.exposition(), headers={"Content-Type": CONTENT_TYPE})


def metrics_app(path: str = "/metrics") -> web.Application:
    """An aiohttp application serving the metrics at ``path`` (mount it or run it alone)."""
    from aiohttp import web

    if not isinstance(path, str) or not path.startswith("/"):
        raise ConfigurationError(f"path must start with '/', got {path!r}")
    app = web.Application()
    app.router.add_get(path, metrics_handler)
    return app


@dataclass
class MetricsServer:
    """A running ``/metrics`` endpoint; ``await close()`` stops it."""

    runner: Any
    """The aiohttp ``AppRunner``."""
    host: str
    """The address it listens on."""
    port: int
    """The port it listens on (the one the system chose when 0 was asked)."""

    @property
    def url(self) -> str:
        """The endpoint's URL."""
        return f"http://{self.host}:{self.port}/metrics"

    async def close(self) -> None:
        await self.runner.cleanup()


async def start_metrics_server(host: str = "127.0.0.1", port: int = 0) -> MetricsServer:
    """Serve ``/metrics`` on ``host:port`` from the running event loop (0: any free port)."""
    from aiohttp import web

    runner = web.AppRunner(metrics_app(), access_log=None)
    await runner.setup()
    site = web.TCPSite(runner, host, port)
    await site.start()
    bound = port
    server = getattr(site, "_server", None)
    if server is not None and server.sockets:  # pragma: no branch - aiohttp keeps the server
        bound = server.sockets[0].getsockname()[1]
    return MetricsServer(runner, host, bound)
