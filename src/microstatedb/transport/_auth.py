"""Peer authentication: every message sealed with the shared key, replays refused.

Wire form: a ``codec`` envelope (kind 2, keyed blake3 MAC) around the msgpack array
``[sender, destination, boot, counter, payload]``. ``boot`` identifies the sender's process
start (it grows from one start to the next) and ``counter`` numbers its messages. A receiver
keeps, per sender, the newest boot and a 64-message sliding window of counters, as IPsec does,
so reordered messages pass and a replayed one (or one from an older boot) is refused.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass

from microstatedb.codec import open_envelope, packb, seal_envelope, unpackb
from microstatedb.errors import AuthenticationError, ConfigurationError, DataError, DecodeError

MESSAGE_KIND = 2
"""Envelope kind of node-to-node messages."""
_WINDOW = 64
_log = logging.getLogger("microstatedb.transport")


@dataclass(frozen=True, slots=True)
class AuthStats:
    """Counts of messages checked by one ``Authenticator``."""

    accepted: int
    """Messages that verified and were new."""
    unauthenticated: int
    """Messages without a MAC, or not MicroStateDB messages at all."""
    tampered: int
    """Messages whose MAC did not verify (changed in flight, or another key)."""
    replayed: int
    """Messages seen before, or from a sender's older boot."""
    misdirected: int
    """Authentic messages addressed to another node."""

    @property
    def refused(self) -> int:
        """Every message refused, whatever the reason."""
        return self.unauthenticated + self.tampered + self.replayed + self.misdirected


class Authenticator:
    """Seals outgoing messages of node ``name`` and opens incoming ones."""

    def __init__(self, name: str, key: bytes, *, boot: int) -> None:
        if not isinstance(key, bytes) or len(key) != 32:
            raise ConfigurationError("the shared key must be 32 bytes (64 hex digits)")
        if not isinstance(boot, int) or boot < 0:
            raise ConfigurationError(f"boot must be an int >= 0, got {boot!r}")
        self.name = name
        self._key = key
        self._boot = boot
        self._counter = 0
        # per sender: (boot, highest counter, bitmap of the _WINDOW counters below it)
        self._seen: dict[str, tuple[int, int, int]] = {}
        self._accepted = self._unauth = self._tampered = self._replayed = self._misdirected = 0

    def seal(self, to: str, payload: bytes) -> bytes:
        """The authenticated message carrying ``payload`` to ``to``."""
        self._counter += 1
        body = packb([self.name, to, self._boot, self._counter, payload])
        return seal_envelope(MESSAGE_KIND, body, self._key)

    def open(self, data: bytes) -> tuple[str, bytes]:
        """Verify a message; returns ``(sender, payload)`` or raises ``AuthenticationError``."""
        try:
            body = open_envelope(data, MESSAGE_KIND, self._key)
        except AuthenticationError as exc:
            keyed = len(data) > 6 and data[:4] == b"MSDB" and bool(data[6] & 1)
            if keyed:
                self._tampered += 1
                return self._refuse(f"tampered or foreign-key message refused ({exc})")
            self._unauth += 1
            return self._refuse("unauthenticated message refused (no MAC)")
        except DataError as exc:
            self._unauth += 1
            return self._refuse(f"message refused: {exc}")
        try:
            fields = unpackb(body)
            if (
                not isinstance(fields, list)
                or len(fields) != 5
                or not isinstance(fields[0], str)
                or not isinstance(fields[1], str)
                or not isinstance(fields[2], int)
                or not isinstance(fields[3], int)
                or not isinstance(fields[4], bytes)
            ):
                raise DecodeError("bad header")
        except DecodeError:
            # a valid MAC over a malformed body: only a holder of the key made it
            self._tampered += 1
            return self._refuse("authentic message with a malformed header refused")
        sender, to, boot, counter, payload = fields
        if to != self.name:
            self._misdirected += 1
            return self._refuse(f"message from {sender!r} for {to!r} refused by {self.name!r}")
        if not self._fresh(sender, boot, counter):
            self._replayed += 1
            return self._refuse(f"replayed message from {sender!r} refused")
        self._accepted += 1
        return sender, payload

    def _fresh(self, sender: str, boot: int, counter: int) -> bool:
        seen = self._seen.get(sender)
        if seen is None or boot > seen[0]:
            self._seen[sender] = (boot, counter, 1)
            return True
        old_boot, top, bits = seen
        if boot < old_boot:
            return False
        if counter > top:
            shift = counter - top
            bits = ((bits << shift) | 1) & ((1 << _WINDOW) - 1) if shift < _WINDOW else 1
            self._seen[sender] = (boot, counter, bits)
            return True
        offset = top - counter
        if offset >= _WINDOW or bits >> offset & 1:
            return False
        self._seen[sender] = (boot, top, bits | 1 << offset)
        return True

    def _refuse(self, reason: str) -> tuple[str, bytes]:
        _log.warning("%s: %s", self.name, reason)
        raise AuthenticationError(reason)

    def stats(self) -> AuthStats:
        """Counts since this authenticator was made."""
        return AuthStats(
            self._accepted, self._unauth, self._tampered, self._replayed, self._misdirected
        )
