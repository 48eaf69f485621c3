"""MeshTransport passes the transport contract over loopback, with no sidecar in between."""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

from microstatedb.resilience import CircuitBreaker
from microstatedb.testing import TransportContract
from microstatedb.transport import MESSAGE_PATH, MeshTransport, Transport, make_app, serve


def _breaker(peer: str) -> CircuitBreaker:
    return CircuitBreaker(peer, minimum_calls=1000)  # refusals (401) are answers, not trips


class TestMeshTransportContract(TransportContract):
    @asynccontextmanager
    async def peer(self, handler: Callable[[bytes], int]) -> AsyncIterator[tuple[Transport, str]]:
        runner, port = await serve(make_app(handler, dict), "127.0.0.1", 0)
        transport = MeshTransport(breaker=_breaker)
        try:
            yield transport, f"http://127.0.0.1:{port}{MESSAGE_PATH}"
        finally:
            await transport.aclose()
            await runner.cleanup()
