"""The Spin models, their mutants, and the code each one names."""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path

from microstatedb.errors import DecodeError

MODEL_DIR = Path(__file__).parent / "models"
"""Where the Promela files live."""

_REF = re.compile(r"@models\s+([\w.]+):([\w.]+)\s*$")


@dataclass(frozen=True)
class SpinModel:
    """One Promela model: its file, the mutants (name -> macro) that must fail its check."""

    name: str
    """Short name printed in reports."""
    file: str
    """File name under ``models/``."""
    mutants: dict[str, str] = field(default_factory=dict)
    """Mutant name -> the macro that seeds its bug (``-D`` on the Spin command line)."""

    @property
    def path(self) -> Path:
        """The model's file."""
        return MODEL_DIR / self.file


def model_refs(path: Path) -> list[tuple[str, str]]:
    """The ``@models module:qualname`` lines of a model, in order.

    A model without any is malformed: ``DecodeError``.
    """
    refs = []
    for line in path.read_text().splitlines():
        if "@models" in line:
            m = _REF.search(line)
            if m is None:
                raise DecodeError(f"{path.name}: malformed @models line {line.strip()!r}")
            refs.append((m.group(1), m.group(2)))
    if not refs:
        raise DecodeError(f"{path.name} names no code (@models module:function)")
    return refs


def model_properties(path: Path) -> list[str]:
    """The ``@property`` lines of a model: what its assertions state."""
    out = []
    for line in path.read_text().splitlines():
        _, sep, rest = line.partition("@property")
        if sep:
            out.append(rest.strip())
    return out


MODELS: tuple[SpinModel, ...] = (
    SpinModel(
        "lease",
        "lease.pml",
        {
            "lease-ack-without-invalidate": "NO_INVALIDATE",
            "lease-ignores-drift": "NO_DRIFT",
            "lease-restart-forgets-grants": "FORGET_LEASES",
            "lease-no-fence": "NO_FENCE",
        },
    ),
    SpinModel(
        "caspaxos",
        "caspaxos.pml",
        {"paxos-ignores-accepted": "NO_ADOPT", "paxos-accepts-below-promise": "NO_PROMISE_CHECK"},
    ),
    SpinModel(
        "causal",
        "causal.pml",
        {"causal-skips-ready": "NO_READY", "causal-drain-out-of-order": "NO_SEQ"},
    ),
    SpinModel(
        "twopc",
        "twopc.pml",
        {
            "twopc-terminate-after-yes": "TERMINATE_AFTER_YES",
            "twopc-commit-on-timeout": "COMMIT_ON_TIMEOUT",
            "twopc-replica-terminates": "REPLICA_TERMINATES",
        },
    ),
    SpinModel(
        "saga-barrier",
        "saga.pml",
        {"barrier-no-block": "NO_BLOCK", "barrier-no-record": "NO_RECORD"},
    ),
    SpinModel(
        "breaker",
        "breaker.pml",
        {"breaker-stale-permit": "NO_GEN", "breaker-no-slots": "NO_SLOTS"},
    ),
)
"""Every Spin model the proofs run."""
