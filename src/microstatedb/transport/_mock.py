"""``MockTransport``: a transport that calls a plain function, for tests without a network."""

from __future__ import annotations

import inspect
from collections.abc import Awaitable, Callable

from microstatedb.transport._types import Request, Response

Handler = Callable[[Request], Response | Awaitable[Response]]


class MockTransport:
    """Delivers every request to ``handler`` (a function or coroutine function)."""

    def __init__(self, handler: Handler) -> None:
        self._handler = handler

    async def handle(self, request: Request) -> Response:
        """Call the handler and return its response."""
        result = self._handler(request)
        if inspect.isawaitable(result):
            return await result
        return result
