"""Which simulated cluster the running test made last (stdlib only: the plugin imports it)."""

from __future__ import annotations

import sys
from typing import Any

_last: list[Any] = []
_final: list[bool] = [False]


def _in_final_example() -> bool:
    """True inside the example hypothesis runs last to report a failure (the shrunk one)."""
    control = sys.modules.get("hypothesis.control")
    if control is None:
        return False
    try:
        context = control.current_build_context()
    except Exception:  # outside any hypothesis example: hypothesis raises its own error
        return False
    return bool(getattr(context, "is_final", False))


def track(cluster: Any) -> None:
    """Remember ``cluster`` as the current test's latest; once hypothesis has run its final
    (shrunk) example, clusters of later examples (its explain phase) do not replace that one."""
    final = _in_final_example()
    if final or not _final[0]:
        _last[:] = [cluster]
        _final[0] = final


def last() -> Any:
    """The latest cluster made since ``forget``, or None."""
    return _last[0] if _last else None


def forget() -> None:
    """Drop the reference (at the start of every test that makes clusters)."""
    _last.clear()
    _final[0] = False
