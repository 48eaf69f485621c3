"""HTTP between nodes and the authentication of peers; knows no protocol rules.

A transport has one method, ``async handle(Request) -> Response``: ``HTTPTransport`` over
aiohttp, or ``MockTransport(handler)`` around a plain function for tests. ``Authenticator``
seals every message with the shared key and refuses (and counts) unauthenticated, tampered,
replayed and misdirected ones.
"""

from microstatedb.transport._auth import MESSAGE_KIND, Authenticator, AuthStats
from microstatedb.transport._http import (
    MESSAGE_PATH,
    STATUS_PATH,
    WRITE_PATH,
    HTTPTransport,
    make_app,
    serve,
)
from microstatedb.transport._mock import MockTransport
from microstatedb.transport._types import Request, Response, Transport

__all__ = [
    "MESSAGE_KIND",
    "MESSAGE_PATH",
    "STATUS_PATH",
    "WRITE_PATH",
    "AuthStats",
    "Authenticator",
    "HTTPTransport",
    "MockTransport",
    "Request",
    "Response",
    "Transport",
    "make_app",
    "serve",
]
