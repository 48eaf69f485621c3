"""Structured logs: one JSON object per line, with the trace id on every line.

The library only logs through ``logging.getLogger("microstatedb....")`` and installs a
``NullHandler``, so nothing is printed unless the application configures logging (for
example with ``configure_logging``).
"""

from __future__ import annotations

import json
import logging
import sys
from datetime import UTC, datetime
from typing import IO, Any

from microstatedb.observability._tracing import current_ids

ROOT = "microstatedb"
_FIELDS = "msdb_fields"

logging.getLogger(ROOT).addHandler(logging.NullHandler())


def get_logger(name: str) -> logging.Logger:
    """The library's logger for a part of it, e.g. ``get_logger("replica")``."""
    return logging.getLogger(f"{ROOT}.{name}")


def fields(**values: Any) -> dict[str, Any]:
    """Structured fields for a log call: ``log.info("msg", extra=fields(node="a"))``."""
    return {_FIELDS: values}


class TraceContextFilter(logging.Filter):
    """Adds ``trace_id`` and ``span_id`` to every record (empty strings outside a span)."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.trace_id, record.span_id = current_ids()
        return True


class JsonFormatter(logging.Formatter):
    """Formats a record as one JSON object: time, level, logger, message, trace and fields."""

    def format(self, record: logging.LogRecord) -> str:
        trace_id = getattr(record, "trace_id", None)
        span_id = getattr(record, "span_id", None)
        if trace_id is None or span_id is None:
            trace_id, span_id = current_ids()
        out: dict[str, Any] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="microseconds"),
            "level": record.levelname,
            "logger": record.name,
            "message": record.getMessage(),
            "trace_id": trace_id,
            "span_id": span_id,
        }
        out.update(getattr(record, _FIELDS, {}))
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=repr, sort_keys=False)


def configure_logging(level: int = logging.INFO, stream: IO[str] | None = None) -> logging.Handler:
    """Send the library's logs as JSON lines to ``stream`` (stderr by default).

    Returns the handler, so the caller can remove it (``logging.getLogger("microstatedb")
    .removeHandler(handler)``).
    """
    handler = logging.StreamHandler(stream if stream is not None else sys.stderr)
    handler.addFilter(TraceContextFilter())
    handler.setFormatter(JsonFormatter())
    root = logging.getLogger(ROOT)
    root.addHandler(handler)
    root.setLevel(level)
    return handler
