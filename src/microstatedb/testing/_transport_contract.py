"""The contract suite for transports: one hook, ``peer(handler)``.

``peer`` is an async context manager that yields a transport and the URL at which ``handler``
(``body -> status``) answers. The tests are plain functions that run their own event loop, so
a project needs no asyncio plugin for pytest to run them::

    class TestMyTransport(TransportContract):
        @asynccontextmanager
        async def peer(self, handler):
            yield MyTransport(...), "my://peer"
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from contextlib import AbstractAsyncContextManager
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.testing._crdt_contract import _own_tests
from microstatedb.transport import Request, Transport

Handler = Callable[[bytes], int]
"""What answers at the peer: the body in, the HTTP status out."""


def _collector(got: list[bytes], status: int) -> Handler:
    def handler(body: bytes) -> int:
        got.append(body)
        return status

    return handler


class TransportContract:
    """What every transport must do: deliver bodies intact, return the status, run concurrently."""

    def peer(self, handler: Handler) -> AbstractAsyncContextManager[tuple[Transport, str]]:
        """Serve ``handler``; yield a transport and the URL that reaches it."""
        raise NotImplementedError

    def _run(self, handler: Handler, bodies: list[bytes]) -> list[int]:
        async def go() -> list[int]:
            async with self.peer(handler) as (transport, url):
                replies = [await transport.handle(Request(url, b)) for b in bodies]
            return [r.status for r in replies]

        return asyncio.run(go())

    def test_delivers_the_body_and_returns_the_status(self) -> None:
        got: list[bytes] = []

        def handler(body: bytes) -> int:
            got.append(body)
            return 204 if body == b"ok" else 401

        assert self._run(handler, [b"ok", b"forged"]) == [204, 401]
        assert got == [b"ok", b"forged"]

    def test_large_binary_bodies_arrive_intact(self) -> None:
        body = bytes(range(256)) * 4096  # 1 MiB, every byte value
        got: list[bytes] = []
        assert self._run(_collector(got, 204), [body]) == [204]
        assert got == [body]

    def __init_subclass__(cls, **kwargs: Any) -> None:
        super().__init_subclass__(**kwargs)
        bodies = st.lists(st.binary(max_size=2048), min_size=1, max_size=5)
        _own_tests(
            cls,
            ("test_any_bodies_arrive_intact_and_in_order",),
            lambda fn: settings(max_examples=20)(given(bodies=bodies)(fn)),
        )

    def _test_any_bodies_arrive_intact_and_in_order(self, bodies: list[bytes]) -> None:
        got: list[bytes] = []
        assert self._run(_collector(got, 200), bodies) == [200] * len(bodies)
        assert got == bodies

    def test_concurrent_requests_all_arrive(self) -> None:
        got: list[bytes] = []

        async def go() -> list[int]:
            async with self.peer(_collector(got, 204)) as (transport, url):
                replies = await asyncio.gather(
                    *(transport.handle(Request(url, str(i).encode())) for i in range(50))
                )
            return [r.status for r in replies]

        assert asyncio.run(go()) == [204] * 50
        assert sorted(got) == sorted(str(i).encode() for i in range(50))
