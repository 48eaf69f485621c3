"""What the store reports, as plain values: the store calls these on its cold paths only.

Nothing here knows the store's classes; a log's statistics are anything with ``events``,
``segments`` and ``bytes``. Each function returns at once while metrics are disabled.
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any, Protocol, TypeVar

from microstatedb.errors import MicroStateError
from microstatedb.observability import _tracing, metrics
from microstatedb.observability._logs import fields, get_logger

F = TypeVar("F", bound=Callable[..., Any])

_log = get_logger("replica")


class LogSize(Protocol):
    """The part of a log's statistics the metrics show."""

    @property
    def events(self) -> int: ...
    @property
    def segments(self) -> int: ...
    @property
    def bytes(self) -> int: ...


def active() -> bool:
    """True when metrics or tracing are enabled (so reporting is worth computing)."""
    return metrics.metrics_enabled() or _tracing.tracing_enabled()


def traced(
    name: str, seconds: metrics.Metric | None = None, refused: metrics.Metric | None = None
) -> Callable[[F], F]:
    """Decorate a method of an object with a ``node_id``: a span named ``name``, its time in
    the ``seconds`` histogram, and library errors counted in ``refused`` (by error name).

    While nothing is enabled the method runs directly after one test.
    """

    def wrap(fn: F) -> F:
        @functools.wraps(fn)
        def run(self: Any, *args: Any, **kwargs: Any) -> Any:
            if not active():
                return fn(self, *args, **kwargs)
            node = str(getattr(self, "node_id", ""))
            timer = seconds.time(node) if seconds is not None else _tracing._NULL
            with _tracing.span(name, {"msdb.node": node}), timer:
                try:
                    return fn(self, *args, **kwargs)
                except MicroStateError as exc:
                    if refused is not None:
                        refused.labels(node, type(exc).__name__).inc()
                    raise

        return run  # type: ignore[return-value]

    return wrap


def record_store(node: str, log: LogSize, buffered: int, lost: int) -> None:
    """The store's current sizes: its log, its causal buffer, its unrecovered losses."""
    m = metrics
    m.LOG_EVENTS.labels(node).set(log.events)
    m.LOG_SEGMENTS.labels(node).set(log.segments)
    m.LOG_BYTES.labels(node).set(log.bytes)
    m.CAUSAL_BUFFER.labels(node).set(buffered)
    m.LOST_EVENTS.labels(node).set(lost)


def record_snapshot(node: str, archived: int) -> None:
    """A snapshot was written and ``archived`` events were released to the archive."""
    metrics.note_snapshot(node)
    if archived:
        metrics.ARCHIVED_EVENTS.labels(node).inc(archived)


def record_apply(node: str, applied: int) -> None:
    """A remote batch was applied; ``applied`` events became visible."""
    metrics.REMOTE_BATCHES.labels(node, "applied").inc()
    metrics.REMOTE_EVENTS.labels(node).inc(applied)


def record_open(node: str, clean: bool, lost: int) -> None:
    """A store opened; a recovery that cut or moved anything aside is logged as a warning."""
    metrics.RECOVERIES.labels(node, "clean" if clean else "repaired").inc()
    if not clean:
        _log.warning(
            "store %s recovered from damage; %d events lost and not covered by a snapshot",
            node,
            lost,
            extra=fields(node=node, lost_events=lost),
        )
