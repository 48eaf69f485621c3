"""One contract for every transport: each backend's test is a subclass with one hook.

The hook, ``peer(handler)``, returns a transport and the URL at which ``handler`` answers.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager

import pytest

from microstatedb.transport import (
    MESSAGE_PATH,
    HTTPTransport,
    MockTransport,
    Request,
    Response,
    Transport,
    make_app,
    serve,
)

Handler = Callable[[bytes], int]


class TransportContract:
    @asynccontextmanager
    async def peer(self, handler: Handler) -> AsyncIterator[tuple[Transport, str]]:
        raise NotImplementedError
        yield  # pragma: no cover

    async def test_delivers_the_body_and_returns_the_status(self) -> None:
        got: list[bytes] = []

        def handler(body: bytes) -> int:
            got.append(body)
            return 204 if body == b"ok" else 401

        async with self.peer(handler) as (transport, url):
            assert (await transport.handle(Request(url, b"ok"))).status == 204
            assert (await transport.handle(Request(url, b"forged"))).status == 401
        assert got == [b"ok", b"forged"]

    async def test_large_binary_bodies_arrive_intact(self) -> None:
        body = bytes(range(256)) * 4096  # 1 MiB, every byte value
        got: list[bytes] = []
        async with self.peer(lambda b: got.append(b) or 204) as (transport, url):
            assert (await transport.handle(Request(url, body))).status == 204
        assert got == [body]

    async def test_concurrent_requests_all_arrive(self) -> None:
        got: list[bytes] = []
        async with self.peer(lambda b: got.append(b) or 204) as (transport, url):
            replies = await asyncio.gather(
                *(transport.handle(Request(url, str(i).encode())) for i in range(50))
            )
        assert all(r.status == 204 for r in replies)
        assert sorted(got) == sorted(str(i).encode() for i in range(50))


class TestMockTransport(TransportContract):
    @asynccontextmanager
    async def peer(self, handler: Handler) -> AsyncIterator[tuple[Transport, str]]:
        yield MockTransport(lambda req: Response(handler(req.body))), "mock://peer"


class TestHTTPTransport(TransportContract):
    @asynccontextmanager
    async def peer(self, handler: Handler) -> AsyncIterator[tuple[Transport, str]]:
        runner, port = await serve(make_app(handler, dict), "127.0.0.1", 0)
        transport = HTTPTransport(timeout=5.0)
        try:
            yield transport, f"http://127.0.0.1:{port}{MESSAGE_PATH}"
        finally:
            await transport.aclose()
            await runner.cleanup()


def test_the_contract_needs_its_hook() -> None:
    with pytest.raises(NotImplementedError):
        asyncio.run(TransportContract().test_concurrent_requests_all_arrive())
