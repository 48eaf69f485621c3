"""Upcasters: registered migrations that turn a value of an old schema version into the next.

A chain runs from the version a value was written with up to the target version (the latest
by default), one step at a time, so each migration is written once, against its neighbour.
Upcasting is a pure function of the value: replicas that read the same events through the same
chain fold the same state, whichever version each event was written with.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any, TypeVar

from microstatedb.errors import ConfigurationError

Migration = Callable[[Any], Any]
"""Turns a value of version ``n`` into a value of version ``n + 1``."""

_F = TypeVar("_F", bound=Migration)


class Upcasters:
    """The migrations of each subject, by the version they start from."""

    def __init__(self) -> None:
        self._steps: dict[str, dict[int, Migration]] = {}

    def register(self, subject: str, from_version: int) -> Callable[[_F], _F]:
        """Decorator: the function turns ``subject`` values of ``from_version`` into the next."""

        def decorate(fn: _F) -> _F:
            self.add(subject, from_version, fn)
            return fn

        return decorate

    def add(self, subject: str, from_version: int, migration: Migration) -> None:
        """Register ``migration`` from ``from_version`` to ``from_version + 1`` of ``subject``."""
        if from_version < 1:
            raise ConfigurationError(f"versions start at 1, got {from_version}")
        steps = self._steps.setdefault(subject, {})
        if from_version in steps:
            raise ConfigurationError(
                f"{subject!r} already has a migration from version {from_version}"
            )
        steps[from_version] = migration

    def latest(self, subject: str) -> int | None:
        """The highest version the chain of ``subject`` reaches (None without migrations)."""
        steps = self._steps.get(subject)
        return max(steps) + 1 if steps else None

    def upcast(
        self, subject: str, from_version: int, value: Any, to_version: int | None = None
    ) -> Any:
        """``value`` of ``from_version`` migrated to ``to_version`` (default: the latest)."""
        target = to_version if to_version is not None else (self.latest(subject) or from_version)
        if target < from_version:
            raise ConfigurationError(
                f"cannot upcast {subject!r} from version {from_version} down to {target}"
            )
        steps = self._steps.get(subject, {})
        for version in range(from_version, target):
            step = steps.get(version)
            if step is None:
                raise ConfigurationError(
                    f"no migration registered for {subject!r} from version {version} to "
                    f"{version + 1}; register one with Upcasters.add"
                )
            value = step(value)
        return value
