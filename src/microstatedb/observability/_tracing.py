"""OpenTelemetry tracing: spans, trace-context headers, sampling of local operations.

Until ``enable_tracing`` is called, ``span`` returns a shared null context and nothing of
OpenTelemetry is even imported. The library uses only the OpenTelemetry API; the SDK (or any
other implementation) is the application's choice, passed in as a tracer provider.
"""

from __future__ import annotations

import random
from collections.abc import Mapping, MutableMapping
from contextlib import AbstractContextManager, nullcontext
from typing import Any

from microstatedb.errors import ConfigurationError

_NULL: AbstractContextManager[Any] = nullcontext()
_tracer: Any = None
_propagator: Any = None

Attributes = Mapping[str, str | int | float | bool]


def enable_tracing(provider: Any = None) -> None:
    """Start making spans through ``provider`` (an OpenTelemetry ``TracerProvider``).

    With None, the globally configured provider is used (``trace.set_tracer_provider``).
    """
    global _tracer, _propagator
    from opentelemetry import trace
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    source = provider if provider is not None else trace.get_tracer_provider()
    _tracer = source.get_tracer("microstatedb")
    _propagator = TraceContextTextMapPropagator()


def disable_tracing() -> None:
    """Back to no spans at all."""
    global _tracer
    _tracer = None


def tracing_enabled() -> bool:
    """True between ``enable_tracing`` and ``disable_tracing``."""
    return _tracer is not None


def span(
    name: str, attributes: Attributes | None = None, *, context: Any = None
) -> AbstractContextManager[Any]:
    """A ``with`` block traced as span ``name`` (a child of ``context`` if given).

    An exception leaving the block is recorded on the span and sets its status to error.
    """
    tracer = _tracer
    if tracer is None:
        return _NULL
    return tracer.start_as_current_span(name, context=context, attributes=attributes)  # type: ignore[no-any-return]


def inject(headers: MutableMapping[str, str]) -> MutableMapping[str, str]:
    """Add the current trace context (W3C ``traceparent``) to ``headers``; returns them."""
    if _tracer is not None:
        _propagator.inject(headers)
    return headers


def extract(headers: Mapping[str, str]) -> Any:
    """The trace context carried by ``headers``, to pass as ``span(..., context=...)``.

    None when tracing is disabled or the headers carry no context.
    """
    if _tracer is None or "traceparent" not in headers:
        return None
    return _propagator.extract(dict(headers))


def current_ids() -> tuple[str, str]:
    """``(trace id, span id)`` of the current span as hex, or ``("", "")`` outside one."""
    if _tracer is None:
        return "", ""
    from opentelemetry import trace

    ctx = trace.get_current_span().get_span_context()
    if not ctx.is_valid:
        return "", ""
    return f"{ctx.trace_id:032x}", f"{ctx.span_id:016x}"


def should_sample(rate: float, rng: random.Random) -> bool:
    """Whether to trace this local operation, keeping a fraction ``rate`` of them.

    Local operations take microseconds, so tracing all of them would cost more than they do;
    ``rng`` is the caller's seeded random source, so a run replays.
    """
    if not 0.0 <= rate <= 1.0:
        raise ConfigurationError(f"a sampling rate is in [0, 1], got {rate!r}")
    return _tracer is not None and rng.random() < rate
