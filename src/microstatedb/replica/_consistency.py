"""Consistency levels a caller can ask for, per operation."""

from __future__ import annotations

import enum


class Consistency(enum.Enum):
    """How much agreement an operation waits for; see docs/consistency.md."""

    EVENTUAL = "eventual"
    """Apply locally and return; replicas converge by anti-entropy."""
    CAUSAL = "causal"
    """Eventual, plus session guarantees (read-your-writes and the others) across stores."""
    LINEARIZABLE = "linearizable"
    """Ordered across a majority; fails fast with ``Unavailable`` in a minority partition."""
