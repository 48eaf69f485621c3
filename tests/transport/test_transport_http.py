"""The HTTP transport and server routes over real loopback sockets, and MockTransport."""

from __future__ import annotations

import socket
from typing import Any

import pytest

from microstatedb.errors import ConfigurationError, Unavailable
from microstatedb.transport import (
    MESSAGE_PATH,
    STATUS_PATH,
    WRITE_PATH,
    HTTPTransport,
    MockTransport,
    Request,
    Response,
    make_app,
    serve,
)


async def test_mock_transport_calls_plain_and_async_handlers() -> None:
    seen: list[Request] = []

    def handler(req: Request) -> Response:
        seen.append(req)
        return Response(204)

    async def ahandler(req: Request) -> Response:
        return Response(200, req.body[::-1])

    assert (await MockTransport(handler).handle(Request("u", b"x"))).status == 204
    assert seen == [Request("u", b"x")]
    assert (await MockTransport(ahandler).handle(Request("u", b"ab"))).body == b"ba"


async def test_messages_status_and_dev_writes_over_loopback() -> None:
    got: list[bytes] = []

    def on_message(body: bytes) -> int:
        got.append(body)
        return 204 if body != b"bad" else 401

    async def write(op: dict[str, Any]) -> dict[str, Any]:
        return {"ok": True, "echo": op}

    runner, port = await serve(make_app(on_message, lambda: {"name": "a"}, write), "127.0.0.1", 0)
    transport = HTTPTransport(timeout=2.0)
    base = f"http://127.0.0.1:{port}"
    try:
        assert (await transport.handle(Request(base + MESSAGE_PATH, b"hi"))).status == 204
        assert (await transport.handle(Request(base + MESSAGE_PATH, b"bad"))).status == 401
        assert got == [b"hi", b"bad"]
        resp = await transport.handle(Request(base + WRITE_PATH, b'{"type": "counter"}'))
        assert resp.status == 200
        assert b"echo" in resp.body
        assert (await transport.handle(Request(base + WRITE_PATH, b"not json"))).status == 400
        assert (await transport.handle(Request(base + WRITE_PATH, b"[1]"))).status == 400
        import aiohttp

        async with aiohttp.ClientSession() as s, s.get(base + STATUS_PATH) as r:
            assert await r.json() == {"name": "a"}
    finally:
        await transport.aclose()
        await transport.aclose()
        await runner.cleanup()


async def test_without_dev_api_there_is_no_write_route() -> None:
    runner, port = await serve(make_app(lambda b: 204, dict), "127.0.0.1", 0)
    transport = HTTPTransport()
    try:
        resp = await transport.handle(Request(f"http://127.0.0.1:{port}{WRITE_PATH}", b"{}"))
        assert resp.status in (404, 405)
    finally:
        await transport.aclose()
        await runner.cleanup()


def _closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


async def test_unreachable_peer_raises_unavailable() -> None:
    transport = HTTPTransport(timeout=1.0)
    try:
        with pytest.raises(Unavailable):
            await transport.handle(Request(f"http://127.0.0.1:{_closed_port()}/x", b""))
    finally:
        await transport.aclose()


def test_timeout_is_checked() -> None:
    with pytest.raises(ConfigurationError):
        HTTPTransport(timeout=0)
