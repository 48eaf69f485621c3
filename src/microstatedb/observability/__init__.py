"""Observability: OpenTelemetry spans, Prometheus metrics and structured logs.

This layer sits low: every other layer may call it, and it imports only ``errors``. Every
part is a no-op until configured, so calling it on a cold path costs a function call and a
test of one module attribute:

- ``enable_metrics()`` switches the metrics of ``observability.metrics`` on (prometheus-client
  is imported then), ``metrics_app()``/``start_metrics_server()`` serve them at ``/metrics``;
- ``enable_tracing(provider)`` makes ``span(...)`` real (the OpenTelemetry API is imported
  then); ``inject``/``extract`` carry the trace context through headers;
- ``configure_logging()`` prints the library's logs as JSON lines with the trace id.

Metric and span names are defined once, in ``observability.names``; docs/operations.md lists
them with their meaning.
"""

from microstatedb.observability import metrics, names
from microstatedb.observability._hooks import (
    LogSize,
    active,
    record_apply,
    record_open,
    record_snapshot,
    record_store,
    traced,
)
from microstatedb.observability._http import (
    MetricsServer,
    metrics_app,
    metrics_handler,
    start_metrics_server,
)
from microstatedb.observability._logs import (
    JsonFormatter,
    TraceContextFilter,
    configure_logging,
    fields,
    get_logger,
)
from microstatedb.observability._tracing import (
    Attributes,
    current_ids,
    disable_tracing,
    enable_tracing,
    extract,
    inject,
    should_sample,
    span,
    tracing_enabled,
)
from microstatedb.observability.metrics import (
    disable_metrics,
    enable_metrics,
    metrics_enabled,
)

__all__ = [
    "Attributes",
    "JsonFormatter",
    "LogSize",
    "MetricsServer",
    "TraceContextFilter",
    "active",
    "configure_logging",
    "current_ids",
    "disable_metrics",
    "disable_tracing",
    "enable_metrics",
    "enable_tracing",
    "extract",
    "fields",
    "get_logger",
    "inject",
    "metrics",
    "metrics_app",
    "metrics_enabled",
    "metrics_handler",
    "names",
    "record_apply",
    "record_open",
    "record_snapshot",
    "record_store",
    "should_sample",
    "span",
    "start_metrics_server",
    "traced",
    "tracing_enabled",
]
