"""Causal sessions: a token that records what a session read and wrote, across stores.

The token is a version vector (events per origin) that the session depends on. A store serves
a session's read or write only once it has applied everything the token covers: it waits up to
the session's timeout, then raises ``Unavailable`` (the caller may retry elsewhere). After a
write the token gains the write's dot; after a read it gains everything the store had applied,
since the read may reflect any of it. Because a store applies remote events in causal order
and its own writes causally follow everything it applied, waiting for the token gives
read-your-writes, monotonic reads, monotonic writes and writes-follow-reads across every store
the session touches.

The token's text form is ``"1." + base64url(msgpack(vector) + checksum)``: compact, versioned,
opaque to users, and safe in an HTTP header.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import time
from collections.abc import Callable, Iterator, Mapping
from types import TracebackType
from typing import TYPE_CHECKING, Any

from microstatedb.clock import Clock, RealClock
from microstatedb.codec import checksum, packb, unpackb
from microstatedb.crdt import KINDS
from microstatedb.errors import ConfigurationError, DecodeError, Unavailable
from microstatedb.replica._schema_hook import BoundMap, BoundMVRegister, BoundRegister, BoundSet

if TYPE_CHECKING:
    from microstatedb.replica._store import Store

TOKEN_VERSION = 1
"""The version written at the front of every token."""
_SUM = 4  # checksum bytes: catches a truncated or mangled header, not an adversary


def encode_token(vector: Mapping[str, int]) -> str:
    """The text form of a session's version vector (entries of 0 are left out)."""
    body = packb({o: n for o, n in sorted(vector.items()) if n > 0})
    raw = body + checksum(body, _SUM)
    return f"{TOKEN_VERSION}." + base64.urlsafe_b64encode(raw).rstrip(b"=").decode("ascii")


def decode_token(token: str) -> dict[str, int]:
    """The version vector of a token; a malformed one raises ``DecodeError``."""
    if not isinstance(token, str):
        raise DecodeError(f"a session token is a string, got {type(token).__name__}")
    version, dot, text = token.partition(".")
    if not dot or not version.isdigit():
        raise DecodeError("not a session token: expected '<version>.<data>'")
    if int(version) != TOKEN_VERSION:
        raise DecodeError(
            f"session token version {version} is not supported (this library reads version "
            f"{TOKEN_VERSION}); upgrade the library or start a new session"
        )
    try:
        raw = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    except (binascii.Error, ValueError) as exc:
        raise DecodeError(f"session token is not base64url ({exc})") from exc
    body, tail = raw[:-_SUM], raw[-_SUM:]
    if len(raw) <= _SUM or checksum(body, _SUM) != tail:
        raise DecodeError("session token is truncated or altered (checksum mismatch)")
    vector = unpackb(body)
    if not isinstance(vector, dict) or not all(
        isinstance(o, str) and isinstance(n, int) and not isinstance(n, bool) and n > 0
        for o, n in vector.items()
    ):
        raise DecodeError("session token must hold a map of node ids to positive counts")
    return dict(vector)


class Session:
    """A causal session over one store; see the module docstring.

    ``store.session(token=incoming, timeout=0.5)`` makes one. The handles it returns are the
    store's own, wrapped so that each read or write first waits for the store to cover the
    token and then records what it did. ``token`` is the text to pass on to the next service.
    ``clock`` and ``sleep`` drive the wait (injectable, so tests wait in virtual time).
    """

    def __init__(
        self,
        store: Store,
        token: str | None = None,
        timeout: float = 0.5,
        *,
        clock: Clock | None = None,
        sleep: Callable[[float], object] | None = None,
        poll: float = 0.001,
    ) -> None:
        if not timeout >= 0 or timeout == float("inf"):
            raise ConfigurationError(f"timeout must be finite seconds >= 0, got {timeout!r}")
        if not poll > 0:
            raise ConfigurationError(f"poll must be positive seconds, got {poll!r}")
        self.store = store
        self.timeout = timeout
        self._clock: Clock = clock if clock is not None else RealClock()
        self._sleep: Callable[[float], object] = sleep if sleep is not None else time.sleep
        self._poll = poll
        self._vector: dict[str, int] = decode_token(token) if token is not None else {}
        self.waits = 0
        """Operations that had to wait for the store to catch up."""

    # ------------------------------------------------------------------------- the token

    @property
    def token(self) -> str:
        """The session's token as text, to send on (a header)."""
        return encode_token(self._vector)

    @property
    def vector(self) -> dict[str, int]:
        """The version vector the token stands for (a copy)."""
        return dict(self._vector)

    def merge(self, token: str) -> None:
        """Add what another token covers (for example a reply's token) to this session."""
        for origin, n in decode_token(token).items():
            if n > self._vector.get(origin, 0):
                self._vector[origin] = n

    def missing(self) -> dict[str, tuple[int, int]]:
        """What the store lacks of the token: ``{origin: (have, needed)}``."""
        have = self.store.version_vector
        return {o: (have.get(o, 0), n) for o, n in self._vector.items() if have.get(o, 0) < n}

    def ready(self) -> bool:
        """True when the store has applied everything the token covers."""
        have = self.store._vv  # the live vector, read without a copy (hot path)
        return all(have.get(o, 0) >= n for o, n in self._vector.items())

    def _unavailable(self) -> Unavailable:
        missing = sorted(self.missing().items())
        lacks = ", ".join(f"{o}: has {h}, needs {n}" for o, (h, n) in missing)
        return Unavailable(
            f"store {self.store.node_id!r} has not applied all that the session token covers "
            f"within {self.timeout}s ({lacks}); retry, send the request to a replica that is "
            "further along, or raise the session timeout"
        )

    def wait(self) -> None:
        """Return once the store covers the token; else raise ``Unavailable`` at the timeout."""
        if self.ready():
            return
        self.waits += 1
        deadline = self._clock.monotonic() + self.timeout
        while not self.ready():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise self._unavailable()
            self._sleep(min(self._poll, remaining))

    async def wait_async(self) -> None:
        """``wait`` without blocking the event loop (anti-entropy keeps running meanwhile)."""
        if self.ready():
            return
        self.waits += 1
        deadline = self._clock.monotonic() + self.timeout
        while not self.ready():
            remaining = deadline - self._clock.monotonic()
            if remaining <= 0:
                raise self._unavailable()
            await asyncio.sleep(min(self._poll, remaining))

    def _observe(self, own_before: int) -> None:
        store = self.store
        have = store._vv
        node = store.node_id
        own = have.get(node, 0)
        vec = self._vector
        if own != own_before:
            # a write: its dot carries its causal past, so the dot alone is enough
            if own > vec.get(node, 0):
                vec[node] = own
            return
        # a read may reflect anything the store applied
        for origin, n in have.items():
            if n > vec.get(origin, 0):
                vec[origin] = n

    def _own(self) -> int:
        return self.store._vv.get(self.store.node_id, 0)

    # ------------------------------------------------------------------------ the handles

    def counter(self, key: str) -> Any:
        """The store's PN-counter at ``key``, through the session."""
        return _Handle(self, self.store.counter(key))

    def register(self, key: str) -> Any:
        """The store's LWW register at ``key``, through the session."""
        return _Handle(self, self.store.register(key))

    def mvregister(self, key: str) -> Any:
        """The store's multi-value register at ``key``, through the session."""
        return _Handle(self, self.store.mvregister(key))

    def set(self, key: str) -> Any:
        """The store's add-wins set at ``key``, through the session."""
        return _Handle(self, self.store.set(key))

    def map(self, key: str) -> Any:
        """The store's map at ``key``, through the session (nested handles too)."""
        return _Handle(self, self.store.map(key))

    def document(self, key: str) -> Any:
        """The store's document at ``key``, through the session."""
        return _Handle(self, self.store.document(key))

    def __enter__(self) -> Session:
        return self

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        return None

    def __repr__(self) -> str:
        return f"<Session on {self.store.node_id!r} vector={self._vector}>"


class _Handle:
    """A CRDT handle seen through a session: each access waits, then updates the token."""

    __slots__ = ("_obj", "_session")

    def __init__(self, session: Session, obj: Any) -> None:
        object.__setattr__(self, "_session", session)
        object.__setattr__(self, "_obj", obj)

    def __getattr__(self, name: str) -> Any:
        session = self._session
        session.wait()
        before = session._own()
        attr = getattr(self._obj, name)
        if not callable(attr):
            session._observe(before)  # a property such as .value: a read
            return _wrap(session, attr)

        def call(*args: Any, **kwargs: Any) -> Any:
            own = session._own()
            result = attr(*args, **kwargs)
            session._observe(own)
            return _wrap(session, result)

        return call

    def __setattr__(self, name: str, value: Any) -> None:
        raise AttributeError("session handles are read through methods; set values with them")

    def __contains__(self, item: object) -> bool:
        session = self._session
        session.wait()
        before = session._own()
        found = item in self._obj
        session._observe(before)
        return found

    def __iter__(self) -> Iterator[Any]:
        session = self._session
        session.wait()
        before = session._own()
        items = list(iter(self._obj))
        session._observe(before)
        return iter(items)

    def __repr__(self) -> str:
        return f"<session handle of {self._obj!r}>"


def _wrap(session: Session, value: Any) -> Any:
    # a type lookup, not isinstance on the runtime-checkable CRDT protocol (~10 µs a call)
    return _Handle(session, value) if type(value) in _CRDT_TYPES else value


# Schema-bound handles too: a write through a nested bound handle must reach the token.
_CRDT_TYPES = frozenset((*KINDS.values(), BoundMap, BoundMVRegister, BoundRegister, BoundSet))
