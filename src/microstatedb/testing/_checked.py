"""A history recorder that knows which checker its history must pass."""

from __future__ import annotations

from typing import Any

from microstatedb.errors import ConfigurationError
from microstatedb.verify import (
    History,
    Recorder,
    check_causal,
    check_linearizable,
    check_sessions,
)

CHECKERS = ("linearizable", "sessions", "causal")
"""The checkers a test may name."""


class StepClock:
    """A clock for histories in virtual time: each reading is one microsecond later, so the
    invocation and completion of an instant operation still come in order."""

    def __init__(self) -> None:
        self._t = 0.0

    def now(self) -> float:
        return self.monotonic()

    def monotonic(self) -> float:
        self._t += 1e-6
        return self._t


def check_history(history: History, checker: str, **options: Any) -> tuple[bool, str]:
    """Run the named checker on ``history``; returns (ok, explanation)."""
    if checker == "linearizable":
        lin = check_linearizable(history, options.get("model", "register"))
        return lin.ok, str(lin.explanation) if lin.explanation else lin.verdict.name
    if checker == "sessions":
        ses = check_sessions(history, **options)
        return ses.ok, "\n".join(v.text for v in ses.violations)
    if checker == "causal":
        cau = check_causal(history, options.get("level", "cc"))
        return cau.ok, "\n".join(repr(p) for p in cau.patterns)
    raise ConfigurationError(f"unknown checker {checker!r}; the checkers are {CHECKERS}")


class CheckedRecorder(Recorder):
    """A ``verify.Recorder`` whose history must pass ``checker`` (see ``CHECKERS``).

    The pytest plugin calls ``verify()`` when the test body has passed.
    """

    def __init__(self, checker: str | None = None, **options: Any) -> None:
        if checker is not None and checker not in CHECKERS:
            raise ConfigurationError(f"unknown checker {checker!r}; the checkers are {CHECKERS}")
        super().__init__(clock=StepClock())
        self.checker = checker
        self.options = options

    def verify(self) -> None:
        """Raise ``AssertionError`` with the checker's explanation unless the history passes."""
        if self.checker is None:
            return
        history = self.history()
        ok, why = check_history(history, self.checker, **self.options)
        if not ok:
            raise AssertionError(
                f"the recorded history is not {self.checker}:\n{why}\nhistory:\n{history.dumps()}"
            )
