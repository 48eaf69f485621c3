"""Readiness and liveness in the form Kubernetes probes and mesh health checks expect.

Liveness answers whether this process still works (its event loop turns) and never looks at a
downstream: a liveness probe that fails because a peer is down restarts healthy pods in a
cascade. Readiness answers whether traffic should come here: the store is open, it is caught up
within a bound (few events waiting on a causal gap, a recent exchange with a peer), and, for a
node that serves linearizable keys, a majority of the members is reachable. ``200`` means yes,
``503`` means no, with a JSON body naming each check.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

from microstatedb.errors import ConfigurationError

LIVE_PATH = "/healthz/live"
"""The liveness endpoint."""
READY_PATH = "/healthz/ready"
"""The readiness endpoint."""


@dataclass(frozen=True, slots=True)
class ReadinessPolicy:
    """The bounds a node must meet to be ready."""

    max_buffered: int = 1000
    """Most remote events allowed to wait on a causal gap."""
    max_silence: float = 30.0
    """Most seconds since the last exchange with any peer (a node alone is exempt)."""
    linearizable: bool = False
    """Whether this node serves linearizable keys, so needs a reachable majority."""

    def __post_init__(self) -> None:
        if isinstance(self.max_buffered, bool) or self.max_buffered < 0:
            raise ConfigurationError(f"max_buffered must be >= 0, got {self.max_buffered!r}")
        if not self.max_silence > 0:
            raise ConfigurationError(f"max_silence must be > 0 seconds, got {self.max_silence!r}")


@dataclass(frozen=True, slots=True)
class HealthInputs:
    """What a readiness decision looks at, read from the node at probe time."""

    store_open: bool
    """The store accepts reads and writes."""
    buffered: int
    """Remote events waiting on a causal gap."""
    members: int
    """Members of the fleet, this node included."""
    reachable: int
    """Members this node reaches now, itself included."""
    silence: float
    """Seconds since the last message from any peer (0 for a node alone)."""


@dataclass(frozen=True, slots=True)
class HealthReport:
    """A probe's verdict and the checks behind it."""

    ok: bool
    """True when every check passed."""
    checks: Mapping[str, bool]
    """Each check by name."""

    @property
    def status(self) -> int:
        """The HTTP status a probe expects: 200 or 503."""
        return 200 if self.ok else 503

    def as_json(self) -> dict[str, object]:
        """A JSON-ready body."""
        return {"status": "ok" if self.ok else "fail", "checks": dict(self.checks)}


def readiness(inputs: HealthInputs, policy: ReadinessPolicy) -> HealthReport:
    """The readiness verdict for ``inputs`` under ``policy``."""
    if inputs.members < 1 or not 0 <= inputs.reachable <= inputs.members:
        raise ConfigurationError(f"need 0 <= reachable <= members and members >= 1, got {inputs!r}")
    checks = {
        "store_open": inputs.store_open,
        "caught_up": inputs.buffered <= policy.max_buffered
        and (inputs.members == 1 or inputs.silence <= policy.max_silence),
        "quorum": not policy.linearizable or inputs.reachable * 2 > inputs.members,
    }
    return HealthReport(all(checks.values()), checks)


def liveness(loop_lag: float, max_lag: float = 5.0) -> HealthReport:
    """The liveness verdict: the event loop answered within ``max_lag`` seconds."""
    return HealthReport(loop_lag <= max_lag, {"event_loop": loop_lag <= max_lag})
