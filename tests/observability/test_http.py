"""The /metrics endpoint, scraped over a real socket and parsed."""

from __future__ import annotations

import aiohttp
import pytest
from prometheus_client import CollectorRegistry
from prometheus_client.parser import text_string_to_metric_families

import microstatedb as msdb
from microstatedb import observability as obs
from microstatedb.errors import ConfigurationError


async def test_metrics_are_scraped_and_parsed(registry: CollectorRegistry) -> None:
    a, b = msdb.Store("a"), msdb.Store("b")
    for _ in range(7):
        a.counter("n").increment()
    b.apply(a.events_since({}))
    obs.metrics.REPLICATION_LAG_EVENTS.labels("b", "a").set(3)
    server = await obs.start_metrics_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url) as resp:
            assert resp.status == 200
            assert resp.headers["Content-Type"].startswith("text/plain; version=0.0.4")
            text = await resp.text()
    finally:
        await server.close()
    families = {f.name: f for f in text_string_to_metric_families(text)}
    applied = families["msdb_remote_events_applied"]
    assert applied.type == "counter"
    assert [(s.labels, s.value) for s in applied.samples if s.name.endswith("_total")] == [
        ({"node": "b"}, 7.0)
    ]
    lag = families["msdb_replication_lag_events"]
    assert [(s.labels, s.value) for s in lag.samples] == [({"node": "b", "peer": "a"}, 3.0)]
    assert families["msdb_apply_seconds"].type == "histogram"


async def test_a_disabled_endpoint_says_so() -> None:
    server = await obs.start_metrics_server()
    try:
        async with aiohttp.ClientSession() as http, http.get(server.url) as resp:
            assert resp.status == 503
    finally:
        await server.close()


def test_the_path_must_be_absolute() -> None:
    with pytest.raises(ConfigurationError):
        obs.metrics_app("metrics")
    assert obs.metrics_app("/m").router is not None
