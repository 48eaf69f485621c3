"""Run Spin on a model: generate the verifier, compile it, search the full state space."""

from __future__ import annotations

import re
import shutil
import subprocess
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from microstatedb.errors import ConfigurationError, DecodeError


@dataclass(frozen=True)
class SpinResult:
    """What one exhaustive search found."""

    states: int
    """States stored (distinct states explored)."""
    errors: int
    """Property violations found (the search stops at the first)."""
    complete: bool
    """The search covered the whole state space (no depth or memory cut-off)."""
    seconds: float
    """Wall time of generate, compile and search."""
    violation: str = ""
    """The first violation's message, if any."""

    @property
    def holds(self) -> bool:
        """Every property holds on every reachable state."""
        return self.errors == 0 and self.complete


_STATES = re.compile(r"^\s*(\d+) states, stored", re.M)
_ERRORS = re.compile(r"errors: (\d+)")


def parse_pan(output: str, seconds: float = 0.0) -> SpinResult:
    """Read a verifier's report; ``DecodeError`` if it is not one."""
    states = _STATES.search(output)
    errors = _ERRORS.search(output)
    if states is None or errors is None:
        raise DecodeError(f"not a Spin verifier report: {output[-300:]!r}")
    # A search cut short by the depth bound or memory has not seen every state.
    cut = "max search depth too small" in output or "out of memory" in output
    violation = next((ln for ln in output.splitlines() if ln.startswith("pan:1:")), "")
    return SpinResult(int(states.group(1)), int(errors.group(1)), not cut, seconds, violation)


def run_spin(model: Path, defines: tuple[str, ...] = (), *, depth: int = 100_000) -> SpinResult:
    """Check ``model`` (with ``-D`` macros ``defines``) over its full state space.

    ``ConfigurationError`` when spin or a C compiler is missing (install the Debian package
    ``spin``).
    """
    spin, cc = shutil.which("spin"), shutil.which("gcc") or shutil.which("cc")
    if spin is None or cc is None:
        raise ConfigurationError(
            "the proofs need spin and a C compiler on PATH: apt-get install -y spin gcc"
        )
    start = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="proofs-") as tmp:
        work = Path(tmp)
        shutil.copy(model, work / model.name)
        flags = [f"-D{d}" for d in defines]
        _run([spin, "-a", *flags, model.name], work)
        _run([cc, "-O2", "-w", "-DSAFETY", "-o", "pan", "pan.c"], work)
        # -E: the models loop forever by design, so a blocked end state is not an error.
        out = _run([str(work / "pan"), f"-m{depth}", "-E"], work, check=False)
    return parse_pan(out, time.perf_counter() - start)


def _run(cmd: list[str], cwd: Path, *, check: bool = True) -> str:
    proc = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True, check=False)
    if check and proc.returncode != 0:
        raise ConfigurationError(
            f"{' '.join(cmd)} failed: {proc.stdout[-500:]}{proc.stderr[-500:]}"
        )
    return proc.stdout + proc.stderr
