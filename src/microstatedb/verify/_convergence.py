"""Convergence: after quiescence every replica agrees, on the value the semantics prescribe.

The checker sees plain data only (replica -> (digest, value), the operations issued and a
reference model function), so it works with any store, ours or not.
"""

from __future__ import annotations

from collections.abc import Callable, Hashable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from microstatedb.errors import ConfigurationError
from microstatedb.verify._linear import Verdict


@dataclass(frozen=True, slots=True)
class ConvergenceResult:
    """The verdict of ``check_convergence``."""

    verdict: Verdict
    """HOLDS when every digest and value agree and the value is the expected one."""
    groups: tuple[tuple[Hashable, ...], ...]
    """Replicas grouped by equal (digest, value), largest group first."""
    expected: Any
    """What the reference model computes from the operations."""
    problems: tuple[str, ...]
    """Each disagreement, in a sentence."""

    @property
    def ok(self) -> bool:
        """True when the replicas converged on the expected value."""
        return self.verdict is Verdict.HOLDS


def check_convergence(
    replicas: Mapping[Hashable, tuple[bytes, Any]],
    operations: Sequence[Any],
    model: Callable[[Sequence[Any]], Any],
) -> ConvergenceResult:
    """Check that all replicas hold one digest and one value, equal to ``model(operations)``.

    ``replicas`` maps a replica name to ``(digest, value)`` read after quiescence; ``model``
    folds the operations issued into the value the data type's semantics prescribe (for a
    PN-counter, the sum of increments minus decrements; for an add-wins set, its elements).
    """
    if not replicas:
        raise ConfigurationError("check_convergence needs at least one replica")
    expected = model(operations)
    by_state: dict[tuple[bytes, str], list[Hashable]] = {}
    values: dict[tuple[bytes, str], Any] = {}
    for name, (digest, value) in replicas.items():
        key = (bytes(digest), repr(value))
        by_state.setdefault(key, []).append(name)
        values[key] = value
    ordered = sorted(by_state.items(), key=lambda kv: (-len(kv[1]), repr(kv[1])))

    def who(names: list[Hashable]) -> str:
        return ", ".join(map(repr, names))

    groups = tuple(tuple(names) for _, names in ordered)
    problems: list[str] = []
    digests = {key[0] for key in by_state}
    if len(digests) > 1:
        problems.append(
            f"{len(digests)} different digests: "
            + "; ".join(f"{who(names)} -> {key[0].hex()[:16]}" for key, names in ordered)
        )
    distinct_values = {key[1] for key in by_state}
    if len(distinct_values) > 1:
        problems.append(
            f"{len(distinct_values)} different values: "
            + "; ".join(f"{who(names)} -> {values[key]!r}" for key, names in ordered)
        )
    for key, names in ordered:
        if values[key] != expected:
            problems.append(
                f"{who(names)} hold {values[key]!r} but the"
                f" {len(operations)} operations issued give {expected!r}"
            )
    verdict = Verdict.VIOLATED if problems else Verdict.HOLDS
    return ConvergenceResult(verdict, groups, expected, tuple(problems))
