"""Consistency levels a caller can ask for, per operation, and the per-prefix key modes."""

from __future__ import annotations

import enum
from collections.abc import Mapping

from microstatedb.errors import ConfigurationError, InvalidOperation


class Consistency(enum.Enum):
    """How much agreement an operation waits for; see docs/consistency.md."""

    EVENTUAL = "eventual"
    """Apply locally and return; replicas converge by anti-entropy."""
    CAUSAL = "causal"
    """Eventual, plus session guarantees (read-your-writes and the others) across stores."""
    BOUNDED = "bounded"
    """A read served locally while the replica lags by at most ``max_lag``, else by a quorum."""
    LINEARIZABLE = "linearizable"
    """Ordered across a majority; fails fast with ``Unavailable`` in a minority partition."""

    @property
    def strong(self) -> bool:
        """True for the level whose keys live in the quorum layer instead of a CRDT."""
        return self is Consistency.LINEARIZABLE


class KeyModes:
    """Default consistency per key prefix: the longest matching prefix decides.

    A key lives in one mode: CRDT-replicated (EVENTUAL, CAUSAL: the level only changes how
    reads wait) or strongly consistent (LINEARIZABLE: the per-key consensus register, whose
    reads may ask for BOUNDED staleness). ``check`` refuses an operation that would mix the
    two. BOUNDED is a way to read a register, not a mode of keys, so it cannot be configured.
    """

    __slots__ = ("_default", "_prefixes")

    def __init__(
        self,
        prefixes: Mapping[str, Consistency | str] | None = None,
        default: Consistency | str = Consistency.EVENTUAL,
    ) -> None:
        self._default = _level(default, "default")
        for p in prefixes or {}:
            if not isinstance(p, str):
                raise ConfigurationError(f"key prefixes are strings, got {p!r}")
        self._prefixes: list[tuple[str, Consistency]] = sorted(
            ((p, _level(level, f"prefix {p!r}")) for p, level in (prefixes or {}).items()),
            key=lambda item: -len(item[0]),
        )

    @property
    def configured(self) -> bool:
        """True when anything but the all-EVENTUAL default is set."""
        return bool(self._prefixes) or self._default is not Consistency.EVENTUAL

    def level_of(self, key: str) -> Consistency:
        """The default level of ``key``."""
        for prefix, level in self._prefixes:
            if key.startswith(prefix):
                return level
        return self._default

    def prefix_of(self, key: str) -> str | None:
        """The configured prefix that decides ``key`` (None: the default)."""
        for prefix, _ in self._prefixes:
            if key.startswith(prefix):
                return prefix
        return None

    def check(self, key: str, strong: bool) -> None:
        """Raise ``InvalidOperation`` when ``key``'s mode differs from the asked one."""
        level = self.level_of(key)
        if level.strong == strong:
            return
        where = self.prefix_of(key)
        origin = f"prefix {where!r}" if where is not None else "the store's default"
        if level.strong:
            raise InvalidOperation(
                f"key {key!r} is strongly consistent ({origin} is {level.value}); use the "
                "linearizable register for it (runtime Cluster.client(...).register), not a CRDT"
                " handle, or give it a key outside that prefix"
            )
        raise InvalidOperation(
            f"key {key!r} is CRDT-replicated ({origin} is {level.value}); linearizable work "
            "needs a key under a prefix configured as LINEARIZABLE"
        )

    def __repr__(self) -> str:
        parts = ", ".join(f"{p!r}: {lv.value}" for p, lv in self._prefixes)
        return f"KeyModes({{{parts}}}, default={self._default.value})"


def _level(value: Consistency | str, what: str) -> Consistency:
    names = ", ".join(c.value for c in Consistency if c is not Consistency.BOUNDED)
    try:
        level = Consistency(value)
    except ValueError:
        raise ConfigurationError(
            f"{what}: unknown consistency {value!r}; use one of {names}"
        ) from None
    if level is Consistency.BOUNDED:
        raise ConfigurationError(
            f"{what}: BOUNDED is a way to read a linearizable register, not a mode of keys; "
            "configure the prefix as linearizable and read with consistency=BOUNDED, max_lag=..."
        )
    return level
