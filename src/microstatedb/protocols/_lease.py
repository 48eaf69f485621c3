"""Read leases for the per-key consensus registers: the acceptor's table and the holder's view.

A node asks every acceptor for a lease on a key; each acceptor that grants it records the
holder until ``duration`` seconds of *its own* monotonic clock have passed, and promises not to
acknowledge a write to that key before the holder has acknowledged an invalidation (or the
lease has run out). The holder counts a grant as live for ``duration * (1 - drift) / (1 +
drift)`` seconds of its own clock from the moment it *sent* the request, so that with clock
rates within ``1 +- drift`` of real time the holder always stops first. No wall clocks are
compared anywhere.

The holder serves a read locally while a majority of grants is live and its cached value is
at least as new as every ballot it has been told about (invalidations and grants both carry
the highest ballot the acceptor has accepted): any write acknowledged by a majority has passed
through an acceptor of the lease majority, which either invalidated the holder first or waited
the lease out.
"""

from __future__ import annotations

from collections.abc import Hashable
from dataclasses import dataclass
from typing import Any

from microstatedb.errors import ConfigurationError

Ballot = tuple[int, str]
"""A proposal number: (round, proposer); ordered as a tuple, unique per proposer."""
ZERO: Ballot = (0, "")
"""The ballot below every real one (nothing accepted yet)."""


@dataclass(frozen=True, slots=True)
class LeaseConfig:
    """Lease tuning; ``drift`` is the bound on clock-rate error that safety relies on."""

    enabled: bool = True
    """False turns leases off: every linearizable read is a quorum round."""
    duration: float = 1.0
    """Seconds an acceptor holds a grant (by its own monotonic clock)."""
    drift: float = 0.01
    """Most relative clock-rate error between any two nodes (0.01 = 1%)."""
    renew_before: float = 0.3
    """Renew a used lease when less than this fraction of it is left."""

    def __post_init__(self) -> None:
        if not self.duration > 0 or self.duration == float("inf"):
            raise ConfigurationError(f"lease duration must be finite and > 0, not {self.duration}")
        if not 0 <= self.drift < 0.5:
            raise ConfigurationError(f"lease drift must be in [0, 0.5), not {self.drift}")
        if not 0 < self.renew_before < 1:
            raise ConfigurationError("renew_before is a fraction of the lease in (0, 1)")

    @property
    def holder_duration(self) -> float:
        """How long the holder trusts a grant, from its request, by its own clock."""
        return self.duration * (1 - self.drift) / (1 + self.drift)


class LeaseTable:
    """The acceptor's side: who holds a lease on which key, until when (acceptor clock)."""

    __slots__ = ("_grants", "config")

    def __init__(self, config: LeaseConfig) -> None:
        self.config = config
        self._grants: dict[Hashable, dict[str, float]] = {}

    def grant(self, key: Hashable, holder: str, now: float) -> float:
        """Record a grant; returns its expiry by this acceptor's clock."""
        until = now + self.config.duration
        self._grants.setdefault(key, {})[holder] = until
        return until

    def live(self, key: Hashable, now: float) -> dict[str, float]:
        """The holders of a live lease on ``key`` and their expiries (expired ones dropped)."""
        grants = self._grants.get(key)
        if not grants:
            return {}
        for holder in [h for h, until in grants.items() if until <= now]:
            del grants[holder]
        return dict(grants)

    def __len__(self) -> int:
        return sum(len(g) for g in self._grants.values())


class LeaseHolder:
    """The holder's side: grants per key, the fence of known ballots, and the cached values."""

    __slots__ = (
        "_asked",
        "_cache",
        "_fence",
        "_fresh",
        "_grants",
        "_next",
        "_used",
        "config",
        "majority",
    )

    def __init__(self, config: LeaseConfig, majority: int) -> None:
        self.config = config
        self.majority = majority
        self._grants: dict[Hashable, dict[str, float]] = {}
        self._asked: dict[int, tuple[Hashable, float]] = {}
        self._fence: dict[Hashable, Ballot] = {}
        self._cache: dict[Hashable, tuple[Ballot, Any]] = {}
        self._used: dict[Hashable, float] = {}
        # per key, the last time the cached value was known to reflect every acknowledged write
        self._fresh: dict[Hashable, float] = {}
        self._next = 0

    def ask(self, key: Hashable, now: float) -> int:
        """Start a lease request sent at ``now``; returns its id for the grants."""
        self._next += 1
        self._asked[self._next] = (key, now)
        if len(self._asked) > 4096:  # forget the oldest unanswered requests
            for req in sorted(self._asked)[:1024]:
                del self._asked[req]
        return self._next

    def granted(self, req: int, acceptor: str, ballot: Ballot) -> None:
        """An acceptor granted request ``req``; it had accepted up to ``ballot``."""
        asked = self._asked.get(req)
        if asked is None:
            return
        key, sent = asked
        self.fence(key, ballot)
        until = sent + self.config.holder_duration
        grants = self._grants.setdefault(key, {})
        if until > grants.get(acceptor, float("-inf")):
            grants[acceptor] = until

    def fence(self, key: Hashable, ballot: Ballot) -> None:
        """A value at ``ballot`` may be chosen: the cache must be at least that new."""
        if ballot > self._fence.get(key, ZERO):
            self._fence[key] = ballot

    def fill(self, key: Hashable, ballot: Ballot, value: Any, fresh_at: float) -> None:
        """A value chosen at ``ballot`` by a change that started at ``fresh_at`` (so it
        reflects every write acknowledged before then); cached unless something newer is
        known."""
        if ballot >= self._fence.get(key, ZERO) and ballot >= self._cache.get(key, (ZERO,))[0]:
            self._cache[key] = (ballot, value)
            self._fresh[key] = max(self._fresh.get(key, fresh_at), fresh_at)

    def holds(self, key: Hashable, now: float) -> bool:
        """True while a majority of grants on ``key`` is live by this node's clock."""
        grants = self._grants.get(key)
        if not grants:
            return False
        return sum(1 for until in grants.values() if until > now) >= self.majority

    def read(self, key: Hashable, now: float) -> tuple[bool, Any]:
        """``(True, value)`` when a local read is linearizable now, else ``(False, None)``."""
        self._used[key] = now
        cached = self._cache.get(key)
        if cached is None or cached[0] < self._fence.get(key, ZERO) or not self.holds(key, now):
            return False, None
        self._fresh[key] = now
        return True, cached[1]

    def stale_read(self, key: Hashable, now: float, max_lag: float) -> tuple[bool, Any]:
        """``(True, value)`` when the cached value reflects every write acknowledged more than
        ``max_lag`` seconds ago (bounded staleness), else ``(False, None)``."""
        hit, value = self.read(key, now)
        if hit:
            return hit, value
        cached = self._cache.get(key)
        if cached is None or now - self._fresh.get(key, float("-inf")) > max_lag:
            return False, None
        return True, cached[1]

    def expires(self, key: Hashable) -> float:
        """When the lease on ``key`` stops holding (by this node's clock); -inf if never held."""
        grants = sorted(self._grants.get(key, {}).values(), reverse=True)
        if len(grants) < self.majority:
            return float("-inf")
        return grants[self.majority - 1]

    def to_renew(self, now: float) -> list[Hashable]:
        """Keys read during their lease whose lease runs out soon (or already did)."""
        margin = self.config.duration * self.config.renew_before
        out = []
        for key, used in list(self._used.items()):
            if now - used > 10 * self.config.duration:
                del self._used[key]  # a cold key: let its lease lapse
                continue
            end = self.expires(key)
            if used >= end - self.config.holder_duration and end - now < margin:
                out.append(key)
        return out

    def stats(self) -> tuple[int, int]:
        """(keys with a cached value, keys with grants)."""
        return len(self._cache), len(self._grants)
