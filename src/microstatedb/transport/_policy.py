"""Who retries, what a status means, and idempotency keys: the rules that keep retries finite.

A request that crosses a client library, an egress sidecar and an ingress sidecar can be
retried at three places; three owners with three attempts each make 27 requests from one. So
exactly one owner per hop retries: with :attr:`RetryOwner.SIDECAR` the library sends once and
lets the mesh retry (only failures that never reached the app); with
:attr:`RetryOwner.LIBRARY` it tells the sidecar ``x-envoy-max-retries: 0`` and retries itself.

Status codes keep business outcomes apart from transport failures: a conflict is answered
``409`` with ``x-msdb-outcome: business``, which no safe mesh retry policy replays, while
``502``/``503``/``504`` are kept for the transport. ``429``, ``503`` with ``x-envoy-overloaded``
and any ``Retry-After`` mean back off.
"""

from __future__ import annotations

import enum
import hashlib
import random
import time
from collections import OrderedDict
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from email.utils import parsedate_to_datetime

from microstatedb.errors import ConfigurationError, DecodeError

OUTCOME_HEADER = "x-msdb-outcome"
"""Set by a node on answers that are not plain successes: ``business`` or ``deadline``."""
IDEMPOTENCY_HEADER = "idempotency-key"
"""The key a write carries so that a replay returns the first answer instead of writing again."""
REPLAYED_HEADER = "x-msdb-replayed"
"""Set on an answer served from the idempotency cache."""
ENVOY_MAX_RETRIES = "x-envoy-max-retries"
"""Tells the egress Envoy how many retries it may make (0 when the library owns retries)."""
ENVOY_OVERLOADED = "x-envoy-overloaded"
"""Set by Envoy when its circuit breakers or overload manager shed the request."""

BUSINESS_STATUS = {"conflict": 409, "precondition": 412, "invalid": 422}
"""The statuses of business outcomes; none of them is a transport failure."""


class RetryOwner(enum.Enum):
    """Which layer retries a failed hop."""

    LIBRARY = "library"
    """The library retries; the sidecar is told not to."""
    SIDECAR = "sidecar"
    """The sidecar retries (connect failures only); the library sends once."""


class Outcome(enum.Enum):
    """What an answer means for the caller's retry logic."""

    OK = "ok"
    """Success."""
    BUSINESS = "business"
    """The request was understood and refused on its merits; never retried."""
    REFUSED = "refused"
    """Malformed, unauthenticated or forbidden; retrying the same bytes cannot help."""
    BACKOFF = "backoff"
    """The server or mesh is shedding load; wait (Retry-After) before trying again."""
    TRANSPORT = "transport"
    """The request may not have reached the app (connect failure, reset, gateway error)."""
    DEADLINE = "deadline"
    """The budget ran out on the way; the work was not started."""


def classify(status: int, headers: Mapping[str, str]) -> Outcome:
    """The :class:`Outcome` of an answer with ``status`` and ``headers``."""
    h = {k.lower(): v for k, v in headers.items()}
    outcome = h.get(OUTCOME_HEADER, "").strip().lower()
    if outcome == "business":
        return Outcome.BUSINESS
    if outcome == "deadline":
        return Outcome.DEADLINE
    if status < 300:
        return Outcome.OK
    if status == 429 or "retry-after" in h or (status == 503 and ENVOY_OVERLOADED in h):
        return Outcome.BACKOFF
    if status in (502, 503, 504):
        return Outcome.TRANSPORT
    if status in BUSINESS_STATUS.values():
        return Outcome.BUSINESS  # an app that did not label it: still never replayed
    return Outcome.REFUSED


def retry_after(headers: Mapping[str, str], now: float | None = None) -> float | None:
    """Seconds to wait from a ``Retry-After`` header (seconds or an HTTP date), if any.

    ``now`` is the wall-clock time for the date form (default: ``time.time()``). A malformed
    value raises ``DecodeError``.
    """
    h = {k.lower(): v for k, v in headers.items()}
    value = h.get("retry-after")
    if value is None:
        return None
    text = value.strip()
    if text.isascii() and text.isdigit():
        return float(int(text))
    try:
        when = parsedate_to_datetime(text)
    except (TypeError, ValueError) as exc:
        raise DecodeError(f"Retry-After {value!r} is neither seconds nor an HTTP date") from exc
    current = time.time() if now is None else now
    return max(when.timestamp() - current, 0.0)


def should_retry(
    outcome: Outcome,
    *,
    attempt: int,
    max_attempts: int,
    owner: RetryOwner,
    idempotent: bool,
) -> bool:
    """Whether the library itself makes another attempt after ``attempt`` gave ``outcome``."""
    if owner is RetryOwner.SIDECAR or not idempotent or attempt >= max_attempts:
        return False
    # a BACKOFF answer is never retried at once: the caller pauses that peer instead
    return outcome is Outcome.TRANSPORT


def new_idempotency_key(rng: random.Random) -> str:
    """A fresh idempotency key (128 random bits as hex)."""
    return f"{rng.getrandbits(128):032x}"


@dataclass(frozen=True, slots=True)
class Recorded:
    """A finished answer kept under its idempotency key."""

    status: int
    """The HTTP status that was answered."""
    body: bytes
    """The body that was answered."""
    fingerprint: str
    """Digest of the request body, to tell a replay from a reused key."""


@dataclass(frozen=True, slots=True)
class IdempotencyStats:
    """Counts of one :class:`IdempotencyCache`."""

    stored: int
    """Answers recorded."""
    replayed: int
    """Requests answered from the cache instead of running again."""
    mismatched: int
    """Keys reused with a different body (refused as a business outcome)."""
    size: int
    """Answers held now."""


class IdempotencyCache:
    """The answers of recent writes by idempotency key, bounded by count and age.

    ``clock`` is a monotonic time source in seconds (inject one in tests).
    """

    def __init__(
        self,
        *,
        capacity: int = 10_000,
        ttl: float = 600.0,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if isinstance(capacity, bool) or not isinstance(capacity, int) or capacity < 1:
            raise ConfigurationError(f"capacity must be an integer >= 1, got {capacity!r}")
        if not ttl > 0:
            raise ConfigurationError(f"ttl must be > 0 seconds, got {ttl!r}")
        self.capacity = capacity
        self.ttl = float(ttl)
        self._clock = clock
        self._items: OrderedDict[str, tuple[float, Recorded]] = OrderedDict()
        self._stored = self._replayed = self._mismatched = 0

    @staticmethod
    def fingerprint(body: bytes) -> str:
        """The digest that ties a key to the body first sent with it."""
        return hashlib.blake2b(body, digest_size=16).hexdigest()

    def _expire(self, now: float) -> None:
        while self._items:
            key, (at, _) = next(iter(self._items.items()))
            if now - at < self.ttl and len(self._items) <= self.capacity:
                break
            del self._items[key]

    def lookup(self, key: str, body: bytes) -> Recorded | None:
        """The recorded answer for ``key``; None if new. A reused key with another body gets a
        ``409`` business answer instead of running."""
        if not key or len(key) > 255:
            raise DecodeError("an idempotency key is 1 to 255 characters")
        self._expire(self._clock())
        entry = self._items.get(key)
        if entry is None:
            return None
        found = entry[1]
        if found.fingerprint != self.fingerprint(body):
            self._mismatched += 1
            message = b'{"error": "idempotency key reused with a different body"}'
            return Recorded(BUSINESS_STATUS["conflict"], message, found.fingerprint)
        self._replayed += 1
        return found

    def store(self, key: str, body: bytes, status: int, answer: bytes) -> None:
        """Record the answer to the first request with ``key``."""
        now = self._clock()
        self._items[key] = (now, Recorded(status, answer, self.fingerprint(body)))
        self._items.move_to_end(key)
        self._stored += 1
        self._expire(now)

    def stats(self) -> IdempotencyStats:
        """Counts since this cache was made."""
        return IdempotencyStats(self._stored, self._replayed, self._mismatched, len(self._items))
