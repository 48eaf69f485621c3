"""Which simulated cluster the running test made last (stdlib only: the plugin imports it)."""

from __future__ import annotations

from typing import Any

_last: list[Any] = []


def track(cluster: Any) -> None:
    """Remember ``cluster`` as the current test's latest (hypothesis replays the minimal last)."""
    _last[:] = [cluster]


def last() -> Any:
    """The latest cluster made since ``forget``, or None."""
    return _last[0] if _last else None


def forget() -> None:
    """Drop the reference (at the start of every test that makes clusters)."""
    _last.clear()
