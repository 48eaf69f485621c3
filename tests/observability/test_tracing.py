"""Spans, trace-context headers, sampling; and the structured logs that carry the trace id."""

from __future__ import annotations

import io
import json
import logging
import random
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st
from opentelemetry.sdk.trace.export.in_memory_span_exporter import InMemorySpanExporter
from opentelemetry.trace import StatusCode

import microstatedb as msdb
from microstatedb import observability as obs
from microstatedb.errors import ConfigurationError, CorruptData


def test_no_spans_until_enabled() -> None:
    assert not obs.tracing_enabled()
    with obs.span("x") as s:
        assert s is None
    assert obs.inject({}) == {}
    assert obs.extract({"traceparent": "00-" + "1" * 32 + "-" + "2" * 16 + "-01"}) is None
    assert obs.current_ids() == ("", "")
    assert not obs.should_sample(1.0, random.Random(1))


def test_store_spans_and_a_refused_batch(spans: InMemorySpanExporter) -> None:
    store = msdb.Store("a")
    store.counter("n").increment()
    store.snapshot()
    with pytest.raises(CorruptData):
        store.apply(b"garbage")
    got = {s.name: s for s in spans.get_finished_spans()}
    assert got[obs.names.SPAN_SNAPSHOT].attributes == {"msdb.node": "a"}
    assert obs.names.SPAN_RECOVERY in got
    refused = got[obs.names.SPAN_APPLY]
    assert refused.status.status_code is StatusCode.ERROR
    assert [e.name for e in refused.events] == ["exception"]


def test_context_crosses_headers(spans: InMemorySpanExporter) -> None:
    with obs.span("caller"):
        headers = obs.inject({})
        caller_ids = obs.current_ids()
    assert set(headers) == {"traceparent"}
    assert obs.extract({}) is None
    with obs.span("callee", context=obs.extract(headers)):
        callee_trace, _ = obs.current_ids()
    assert callee_trace == caller_ids[0]
    caller, callee = spans.get_finished_spans()
    assert callee.parent is not None
    assert callee.parent.span_id == caller.context.span_id


@given(st.floats(0.0, 1.0), st.integers(0, 2**32))
def test_sampling_keeps_about_the_rate(rate: float, seed: int) -> None:
    obs.enable_tracing()  # the global provider: a no-op one, enough to sample
    try:
        kept = sum(obs.should_sample(rate, random.Random(seed + i)) for i in range(400))
        assert abs(kept / 400 - rate) < 0.15
        assert obs.should_sample(rate, random.Random(seed)) == obs.should_sample(
            rate, random.Random(seed)
        )
    finally:
        obs.disable_tracing()


def test_a_bad_rate_is_refused() -> None:
    with pytest.raises(ConfigurationError):
        obs.should_sample(1.5, random.Random(0))


def _lines(stream: io.StringIO) -> list[dict[str, object]]:
    return [json.loads(line) for line in stream.getvalue().splitlines()]


def test_every_log_line_carries_the_trace_id(spans: InMemorySpanExporter) -> None:
    stream = io.StringIO()
    handler = obs.configure_logging(logging.DEBUG, stream)
    log = obs.get_logger("test")
    try:
        log.info("outside")
        with obs.span("work"):
            trace_id, span_id = obs.current_ids()
            log.warning("inside %d", 7, extra=obs.fields(node="a", events=3))
            try:
                raise ValueError("boom")
            except ValueError:
                log.exception("failed")
    finally:
        logging.getLogger("microstatedb").removeHandler(handler)
    outside, inside, failed = _lines(stream)
    assert outside["trace_id"] == ""
    assert outside["message"] == "outside"
    assert inside["trace_id"] == trace_id
    assert len(trace_id) == 32
    assert inside["span_id"] == span_id
    assert inside["message"] == "inside 7"
    assert inside["node"] == "a"
    assert inside["events"] == 3
    assert inside["level"] == "WARNING"
    assert inside["logger"] == "microstatedb.test"
    assert failed["trace_id"] == trace_id
    assert "ValueError: boom" in str(failed["exception"])


def test_the_formatter_alone_still_finds_the_trace(spans: InMemorySpanExporter) -> None:
    record = logging.LogRecord("microstatedb.x", logging.INFO, __file__, 1, "m", None, None)
    with obs.span("s"):
        line = json.loads(obs.JsonFormatter().format(record))
        assert line["trace_id"] == obs.current_ids()[0]


def test_a_repaired_store_logs_a_warning(tmp_path: Path) -> None:
    with msdb.Store("w", tmp_path) as store:
        store.counter("n").increment()
    segment = max(p for p in tmp_path.rglob("*") if p.is_file() and "seg" in p.name)
    with segment.open("ab") as f:
        f.write(b"\x07torn")
    stream = io.StringIO()
    handler = obs.configure_logging(logging.INFO, stream)
    try:
        with msdb.Store("w", tmp_path) as store:
            assert not store.recovery.clean
    finally:
        logging.getLogger("microstatedb").removeHandler(handler)
    (line,) = _lines(stream)
    assert line["level"] == "WARNING"
    assert line["node"] == "w"
    assert line["lost_events"] == 0
