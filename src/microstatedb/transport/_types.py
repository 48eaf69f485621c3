"""What a transport is: one method that delivers a request and returns the response."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol


@dataclass(frozen=True, slots=True)
class Request:
    """An HTTP POST to a peer."""

    url: str
    """The peer's endpoint, e.g. ``http://10.0.0.7:7400/msdb/v1/message``."""
    body: bytes
    """The sealed message."""


@dataclass(frozen=True, slots=True)
class Response:
    """The peer's answer."""

    status: int
    """HTTP status: 204 accepted, 401 refused (authentication), 400 malformed."""
    body: bytes = b""
    """Response body (empty for messages; replies travel as messages of their own)."""


class Transport(Protocol):
    """Delivers requests to peers. Raises ``Unavailable`` when the peer cannot be reached."""

    async def handle(self, request: Request) -> Response:
        """Send ``request`` and return the peer's response."""
        ...
