"""Deadline headers, the retry-owner rule, status classification and idempotency keys."""

from __future__ import annotations

import random

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.clock import ManualClock
from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.resilience import Deadline
from microstatedb.transport import (
    DEADLINE_HEADER,
    ENVOY_EXPECTED_TIMEOUT,
    ENVOY_UPSTREAM_TIMEOUT,
    IdempotencyCache,
    Outcome,
    RetryOwner,
    classify,
    deadline_from_headers,
    deadline_headers,
    new_idempotency_key,
    retry_after,
    should_retry,
)

millis = st.integers(0, 10_000_000)


@given(st.none() | millis, st.none() | millis, st.none() | millis)
def test_the_earliest_budget_header_wins(
    envoy: int | None, ours: int | None, grpc: int | None
) -> None:
    clock = ManualClock()
    headers: dict[str, str] = {}
    if envoy is not None:
        headers[ENVOY_EXPECTED_TIMEOUT] = str(envoy)
    if ours is not None:
        headers[DEADLINE_HEADER.upper()] = str(ours)  # header names are case-insensitive
    if grpc is not None:
        headers["grpc-timeout"] = f"{grpc}m"
    found = deadline_from_headers(headers, clock)
    given_ms = [v for v in (envoy, ours, grpc) if v is not None]
    if not given_ms:
        assert found is None
    else:
        assert found is not None
        assert found.remaining() == pytest.approx(min(given_ms) / 1000)


@given(millis, st.integers(0, 20_000))
def test_each_hop_passes_on_at_most_what_it_was_given(budget: int, spent: int) -> None:
    clock = ManualClock()
    first = Deadline.after(budget / 1000, clock)
    clock.advance(spent / 1000)
    out = deadline_headers(first)
    second = deadline_from_headers(out, clock)
    assert second is not None
    assert second.remaining() <= first.remaining() + 1e-9
    assert int(out[ENVOY_UPSTREAM_TIMEOUT]) >= 1  # Envoy reads 0 as "no timeout"
    assert ENVOY_UPSTREAM_TIMEOUT not in deadline_headers(first, sidecar=False)


@pytest.mark.parametrize(
    "headers",
    [{ENVOY_EXPECTED_TIMEOUT: "soon"}, {DEADLINE_HEADER: "-5"}, {"grpc-timeout": "5 seconds"}],
)
def test_malformed_budget_headers_are_decode_errors(headers: dict[str, str]) -> None:
    with pytest.raises(DecodeError):
        deadline_from_headers(headers)


@pytest.mark.parametrize(
    ("status", "headers", "outcome"),
    [
        (200, {}, Outcome.OK),
        (204, {}, Outcome.OK),
        (409, {"x-msdb-outcome": "business"}, Outcome.BUSINESS),
        (409, {}, Outcome.BUSINESS),
        (422, {}, Outcome.BUSINESS),
        (504, {"X-Msdb-Outcome": "deadline"}, Outcome.DEADLINE),
        (429, {}, Outcome.BACKOFF),
        (503, {"x-envoy-overloaded": "true"}, Outcome.BACKOFF),
        (503, {"Retry-After": "2"}, Outcome.BACKOFF),
        (503, {}, Outcome.TRANSPORT),
        (502, {}, Outcome.TRANSPORT),
        (504, {}, Outcome.TRANSPORT),
        (401, {}, Outcome.REFUSED),
        (400, {}, Outcome.REFUSED),
        (500, {}, Outcome.REFUSED),
    ],
)
def test_classify(status: int, headers: dict[str, str], outcome: Outcome) -> None:
    assert classify(status, headers) is outcome


@given(
    st.sampled_from(list(Outcome)),
    st.integers(1, 6),
    st.integers(1, 6),
    st.sampled_from(list(RetryOwner)),
    st.booleans(),
)
def test_the_library_retries_only_transport_failures_of_idempotent_work_it_owns(
    outcome: Outcome, attempt: int, max_attempts: int, owner: RetryOwner, idem: bool
) -> None:
    again = should_retry(
        outcome, attempt=attempt, max_attempts=max_attempts, owner=owner, idempotent=idem
    )
    if again:
        assert owner is RetryOwner.LIBRARY
        assert idem
        assert attempt < max_attempts
        assert outcome is Outcome.TRANSPORT
    elif owner is RetryOwner.LIBRARY and idem and attempt < max_attempts:
        assert outcome is not Outcome.TRANSPORT


def test_retry_after_seconds_dates_and_garbage() -> None:
    assert retry_after({}) is None
    assert retry_after({"Retry-After": "7"}) == 7.0
    date = "Wed, 21 Oct 2015 07:28:00 GMT"
    assert retry_after({"retry-after": date}, now=1445412470.0) == pytest.approx(10.0)
    assert retry_after({"retry-after": date}, now=1445412490.0) == 0.0
    assert retry_after({"retry-after": date}) == 0.0  # long past
    with pytest.raises(DecodeError):
        retry_after({"retry-after": "in a bit"})


class Clock:
    def __init__(self) -> None:
        self.t = 0.0

    def __call__(self) -> float:
        return self.t


def test_idempotency_cache_replays_refuses_reuse_and_forgets() -> None:
    clock = Clock()
    cache = IdempotencyCache(capacity=2, ttl=10.0, clock=clock)
    assert cache.lookup("k1", b"body") is None
    cache.store("k1", b"body", 200, b'{"ok": true}')
    found = cache.lookup("k1", b"body")
    assert found is not None
    assert (found.status, found.body) == (200, b'{"ok": true}')
    reused = cache.lookup("k1", b"other")
    assert reused is not None
    assert reused.status == 409
    cache.store("k2", b"b", 200, b"2")
    cache.store("k3", b"c", 200, b"3")  # over capacity: the oldest goes
    assert cache.lookup("k1", b"body") is None
    clock.t = 11.0  # past the ttl
    assert cache.lookup("k3", b"c") is None
    stats = cache.stats()
    assert (stats.stored, stats.replayed, stats.mismatched, stats.size) == (3, 1, 1, 0)


@given(st.lists(st.tuples(st.sampled_from("abcd"), st.binary(max_size=4)), max_size=30))
def test_a_replay_always_gets_the_first_answer(requests: list[tuple[str, bytes]]) -> None:
    cache = IdempotencyCache(capacity=100, clock=Clock())
    first: dict[str, tuple[bytes, bytes]] = {}
    for n, (key, body) in enumerate(requests):
        found = cache.lookup(key, body)
        if key not in first:
            assert found is None
            answer = str(n).encode()
            cache.store(key, body, 200, answer)
            first[key] = (body, answer)
        elif first[key][0] == body:
            assert found is not None
            assert found.body == first[key][1]
        else:
            assert found is not None
            assert found.status == 409


@pytest.mark.parametrize("key", ["", "k" * 256])
def test_bad_idempotency_keys(key: str) -> None:
    with pytest.raises(DecodeError):
        IdempotencyCache().lookup(key, b"")


@pytest.mark.parametrize(("capacity", "ttl"), [(0, 1.0), (True, 1.0), (1, 0.0)])
def test_bad_cache_settings(capacity: int, ttl: float) -> None:
    with pytest.raises(ConfigurationError):
        IdempotencyCache(capacity=capacity, ttl=ttl)


def test_idempotency_keys_replay_from_a_seed() -> None:
    key = new_idempotency_key(random.Random(9))
    assert key == new_idempotency_key(random.Random(9))
    assert len(key) == 32
