"""Membership: a static peer list, a phi-accrual failure detector, and removal for good.

The detector (Hayashibara et al., 2004, in the exponential form Cassandra uses) turns the
time since a peer was last heard from into a suspicion level ``phi``: with a mean
inter-arrival time ``m``, ``phi = t / (m ln 10)``, so ``phi = 8`` means "this silence has a
one in 10^8 chance under the usual rhythm". Every message from a peer counts as a heartbeat.
Verdicts are advisory: gossip prefers peers that look alive, and the runtime reports
``PeerDown``/``PeerUp`` effects that the resilience and consistency layers can act on.
"""

from __future__ import annotations

import math
import random
from collections import deque
from collections.abc import Container, Iterable
from dataclasses import dataclass

from microstatedb.errors import ConfigurationError, UnknownNode


class PhiAccrualDetector:
    """Suspicion per peer from the rhythm of its messages."""

    def __init__(
        self,
        *,
        threshold: float = 8.0,
        window: int = 100,
        first_interval: float = 1.0,
        min_interval: float = 0.05,
    ) -> None:
        if threshold <= 0 or window < 1 or first_interval <= 0 or min_interval <= 0:
            raise ConfigurationError(
                "threshold, window, first_interval and min_interval must be positive"
            )
        self.threshold = threshold
        self._window = window
        self._first = first_interval
        self._min = min_interval
        self._last: dict[str, float] = {}
        self._intervals: dict[str, deque[float]] = {}
        self._totals: dict[str, float] = {}

    def heartbeat(self, node: str, now: float) -> None:
        """Record that ``node`` was heard from at ``now``."""
        last = self._last.get(node)
        if last is not None and now > last:
            intervals = self._intervals.get(node)
            if intervals is None:
                intervals = self._intervals[node] = deque()
            total = self._totals.get(node, 0.0) + (now - last)
            intervals.append(now - last)
            if len(intervals) > self._window:
                total -= intervals.popleft()
            self._totals[node] = total
        self._last[node] = max(now, last) if last is not None else now

    def start(self, node: str, now: float) -> None:
        """Start the clock for a node never heard from (as if heard at ``now``)."""
        self._last.setdefault(node, now)

    def phi(self, node: str, now: float) -> float:
        """The suspicion level of ``node`` at ``now`` (0 for a node never started)."""
        last = self._last.get(node)
        if last is None:
            return 0.0
        intervals = self._intervals.get(node)
        # a running total keeps this O(1): the simulator asks it for hundreds of peers a tick
        mean = self._totals[node] / len(intervals) if intervals else self._first
        return max(0.0, now - last) / (max(mean, self._min) * math.log(10))

    def available(self, node: str, now: float) -> bool:
        """True while ``phi`` is under the threshold."""
        return self.phi(node, now) < self.threshold

    def forget(self, node: str) -> None:
        """Drop everything known of ``node``."""
        self._last.pop(node, None)
        self._intervals.pop(node, None)
        self._totals.pop(node, None)


@dataclass(frozen=True, slots=True)
class PeerDown:
    """Effect: the failure detector now suspects ``node``."""

    node: str
    """The suspected peer."""


@dataclass(frozen=True, slots=True)
class PeerUp:
    """Effect: a suspected peer was heard from again."""

    node: str
    """The peer back in service."""


class Membership:
    """The peers of one node, with their liveness verdicts."""

    def __init__(
        self,
        name: str,
        peers: Iterable[str],
        detector: PhiAccrualDetector | None = None,
        now: float = 0.0,
    ) -> None:
        self.name = name
        self.detector = detector if detector is not None else PhiAccrualDetector()
        self._peers: list[str] = []
        for peer in peers:
            if peer == name:
                continue
            if not isinstance(peer, str) or not peer:
                raise ConfigurationError(f"peer names are non-empty strings, got {peer!r}")
            if peer not in self._peers:
                self._peers.append(peer)
                self.detector.start(peer, now)
        self._peers.sort()
        self._down: set[str] = set()
        self.removed: set[str] = set()

    @property
    def peers(self) -> list[str]:
        """Current peers, sorted (removed ones excluded)."""
        return list(self._peers)

    def __contains__(self, node: object) -> bool:
        return node in self._peers

    def check(self, node: str) -> None:
        """Raise ``UnknownNode`` unless ``node`` is a current peer."""
        if node not in self._peers:
            gone = " (it was removed)" if node in self.removed else ""
            raise UnknownNode(
                f"message from {node!r}, which is not a peer of {self.name!r}{gone}; "
                "add it to the peer list or check the sender's configuration"
            )

    def heard(self, node: str, now: float) -> None:
        """A message from ``node`` arrived."""
        self.detector.heartbeat(node, now)

    def add(self, node: str, now: float) -> None:
        """Add a peer (a new member joining)."""
        if node != self.name and node not in self._peers:
            self._peers.append(node)
            self._peers.sort()
            self.removed.discard(node)
            self.detector.start(node, now)

    def remove(self, node: str) -> None:
        """Remove a peer for good, so causal stability no longer waits for it."""
        self.check(node)
        self._peers.remove(node)
        self._down.discard(node)
        self.removed.add(node)
        self.detector.forget(node)

    def pick(self, rng: random.Random, now: float, skip: Container[str] = ()) -> str | None:
        """A random peer, preferring ones not suspected and not in ``skip``.

        Tries a few random draws instead of listing every peer, so a tick stays O(1) in a
        fleet of hundreds; a suspected peer is still probed now and then (one draw in ten),
        so one that came back is noticed.
        """
        peers = self._peers
        if not peers:
            return None
        for _ in range(8):
            peer = peers[rng.randrange(len(peers))]
            if peer in skip:
                continue
            if self.detector.available(peer, now) or rng.random() < 0.1:
                return peer
        free = [p for p in peers if p not in skip]
        return rng.choice(free) if free else None

    def alive(self, now: float) -> list[str]:
        """Peers the detector does not suspect."""
        return [p for p in self._peers if self.detector.available(p, now)]

    def suspected(self, now: float) -> list[str]:
        """Peers the detector suspects."""
        return [p for p in self._peers if not self.detector.available(p, now)]

    def transitions(self, now: float) -> list[PeerDown | PeerUp]:
        """Verdicts that changed since the last call, as effects."""
        out: list[PeerDown | PeerUp] = []
        for peer in self._peers:
            up = self.detector.available(peer, now)
            if not up and peer not in self._down:
                self._down.add(peer)
                out.append(PeerDown(peer))
            elif up and peer in self._down:
                self._down.discard(peer)
                out.append(PeerUp(peer))
        return out
