"""How long a breaker waits in OPEN: a fixed time or a function of the attempt number."""

from __future__ import annotations

import random
from collections.abc import Callable

from microstatedb.errors import ConfigurationError

IntervalFunction = Callable[[int], float]
"""Maps the number of consecutive openings (1 for the first) to seconds to wait in OPEN."""


def capped_growth(base: float, multiplier: float, steps: int, cap: float) -> float:
    """``min(cap, base * multiplier**steps)``, without overflow after a long outage."""
    try:
        return min(cap, base * multiplier ** max(steps, 0))
    except OverflowError:
        return cap


def fixed_interval(seconds: float) -> IntervalFunction:
    """Always wait ``seconds``."""
    if not seconds >= 0:
        raise ConfigurationError(f"wait must be >= 0 seconds, got {seconds!r}")

    def interval(attempt: int) -> float:
        return seconds

    return interval


def exponential_backoff(
    initial: float,
    *,
    multiplier: float = 2.0,
    maximum: float = float("inf"),
    jitter: float = 0.0,
    rng: random.Random | None = None,
) -> IntervalFunction:
    """Wait ``initial * multiplier**(attempt-1)``, capped at ``maximum``, spread by ``jitter``.

    With ``jitter`` j in [0, 1) the wait is drawn uniformly from ``[w*(1-j), w*(1+j)]`` (then
    capped), so instances that opened together do not all probe in the same instant. Pass a
    seeded ``rng`` to make the draws repeatable.
    """
    if not initial > 0:
        raise ConfigurationError(f"initial wait must be > 0 seconds, got {initial!r}")
    if not multiplier >= 1:
        raise ConfigurationError(f"multiplier must be >= 1, got {multiplier!r}")
    if not maximum >= initial:
        raise ConfigurationError(f"maximum ({maximum!r}) must be >= initial ({initial!r})")
    if not 0 <= jitter < 1:
        raise ConfigurationError(f"jitter must be in [0, 1), got {jitter!r}")
    source = rng if rng is not None else random.Random()

    def interval(attempt: int) -> float:
        wait = capped_growth(initial, multiplier, attempt - 1, maximum)
        if jitter:
            wait = source.uniform(wait * (1 - jitter), wait * (1 + jitter))
        return min(wait, maximum)

    return interval
