"""JetStream specifics: the subject per dot, server-side deduplication, races, limits."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable

import nats
import pytest

from microstatedb.codec import Event, encode_event
from microstatedb.errors import (
    ConfigurationError,
    DataError,
    IntegrityError,
    OperationalError,
    StoreClosed,
)
from microstatedb.stores import DEFAULT_SERVERS, JetStreamEventStore
from microstatedb.stores._jetstream import origin_token

pytestmark = pytest.mark.integration


def ev(origin: str, seq: int, op: object = None) -> Event:
    return Event(origin, seq, seq, {}, "k", "counter", seq if op is None else op)


async def _raw(stream: str, subject: str) -> tuple[bytes, dict[str, str]]:
    nc = await nats.connect(DEFAULT_SERVERS)
    try:
        msg = await nc.jetstream().get_msg(stream, subject=subject)
        return bytes(msg.data or b""), dict(msg.headers or {})
    finally:
        await nc.close()


def test_each_dot_is_one_message_with_its_id(jetstream: JetStreamEventStore) -> None:
    jetstream.append([ev("node a.1", 1)])  # an origin no subject token could hold as is
    subject = f"{jetstream.subject_prefix}.{origin_token('node a.1')}.1"
    data, headers = asyncio.run(_raw(jetstream.stream, subject))
    assert data == encode_event(ev("node a.1", 1))
    assert headers["Nats-Msg-Id"] == f"{origin_token('node a.1')}:1"
    assert list(jetstream.read_origin("node a.1")) == [ev("node a.1", 1)]
    assert origin_token("") != ""  # an empty origin still makes a valid subject token


def test_the_server_refuses_a_second_message_for_a_dot(jetstream: JetStreamEventStore) -> None:
    # Past the client's own check: publish straight to the dot's subject, as another writer
    # whose check raced ours would; the server still keeps the first event only.
    jetstream.append([ev("a", 1)])

    async def publish_again() -> str:
        nc = await nats.connect(DEFAULT_SERVERS)
        try:
            subject = f"{jetstream.subject_prefix}.{origin_token('a')}.1"
            headers = {"Nats-Expected-Last-Subject-Sequence": "0", "Nats-Msg-Id": "other"}
            try:
                await nc.jetstream().publish(subject, b"other", headers=headers)
            except nats.js.errors.APIError as exc:
                return str(exc.err_code)
            return "accepted"
        finally:
            await nc.close()

    assert asyncio.run(publish_again()) == "10071"
    assert list(jetstream.read()) == [ev("a", 1)]
    assert len(jetstream) == 1


def race(stores: list[JetStreamEventStore], seq: int) -> list[str]:
    """Two writers append the same dot with different content at the same moment."""
    outcomes: list[str] = []
    barrier = threading.Barrier(2)

    def write(i: int) -> None:
        barrier.wait()
        try:
            stores[i].append([ev("a", seq, op=f"writer{i}")])
            outcomes.append("ok")
        except IntegrityError:
            outcomes.append("conflict")

    threads = [threading.Thread(target=write, args=(i,)) for i in range(2)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    return outcomes


def test_racing_writers_of_one_dot_store_one_event(stream_names: Callable[[], str]) -> None:
    name = stream_names()
    stores = [JetStreamEventStore(name) for _ in range(2)]
    try:
        for seq in range(1, 6):
            outcomes = race(stores, seq)
            assert sorted(outcomes) == ["conflict", "ok"]
        got = list(stores[0].read())
        assert [e.seq for e in got] == [1, 2, 3, 4, 5]
    finally:
        for s in stores:
            s.close()


def test_an_event_over_the_payload_limit_writes_nothing(jetstream: JetStreamEventStore) -> None:
    with pytest.raises(DataError, match="per message"):
        jetstream.append([ev("a", 1), ev("a", 2, op=b"x" * (2 << 20))])
    assert list(jetstream.read()) == []


def test_headers_travel_with_the_events(jetstream: JetStreamEventStore) -> None:
    jetstream.append_with_headers([ev("a", 1), ev("a", 2)], {"traceparent": "00-x"})
    got = list(jetstream.read_with_headers(1))
    assert [(e.seq, h["traceparent"]) for e, h in got] == [(2, "00-x")]


def test_an_unreachable_server_is_an_operational_error() -> None:
    with pytest.raises(OperationalError) as info:
        JetStreamEventStore("nowhere", servers="nats://127.0.0.1:1", timeout=1)
    assert info.value.__cause__ is not None


def test_bad_settings_are_refused(jetstream: JetStreamEventStore) -> None:
    with pytest.raises(ConfigurationError):
        JetStreamEventStore("a.b")
    with pytest.raises(ConfigurationError):
        JetStreamEventStore("ok", page_size=0)
    with pytest.raises(ConfigurationError):
        JetStreamEventStore("ok", timeout=0)
    with pytest.raises(ConfigurationError):
        jetstream.read_origin("a", after_seq="1")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        jetstream.read(limit=-1)


def test_a_closed_store_refuses_everything(stream_names: Callable[[], str]) -> None:
    store = JetStreamEventStore(stream_names())
    store.append([ev("a", 1)])
    reader = store.read()
    assert next(reader) == ev("a", 1)
    store.close()
    store.close()
    assert "closed" in repr(store)
    with pytest.raises(StoreClosed):
        len(store)
    with pytest.raises(StoreClosed):
        store.read_origin("a")
    with pytest.raises(StoreClosed):
        store.read_with_headers()


def test_a_stream_without_direct_gets_is_an_operational_error(
    stream_names: Callable[[], str],
) -> None:
    # A stream someone else created without allow_direct: the dot lookups get no answer
    # (the server's JetStream API sends no "no responders" status), so the call times out.
    name = stream_names()

    async def create() -> None:
        nc = await nats.connect(DEFAULT_SERVERS)
        try:
            await nc.jetstream().add_stream(name=name, subjects=[f"msdb.{name}.>"])
        finally:
            await nc.close()

    asyncio.run(create())
    store = JetStreamEventStore(name, timeout=2)
    try:
        with pytest.raises(OperationalError, match="failed"):
            store.append([ev("a", 1)])
        assert len(store) == 0
    finally:
        store.close()


def test_a_pull_for_more_than_there_is_ends_when_the_request_expires(
    stream_names: Callable[[], str],
) -> None:
    from nats.js import api

    store = JetStreamEventStore(stream_names(), timeout=0.5)
    try:
        store.append([ev("a", i) for i in range(1, 4)])
        consumer, pending = store._call(store._subscribe(api.ConsumerConfig()))
        assert pending == 3
        got = store._call(store._pull_raw(consumer, 10))
        assert [body for body, _h, _r in got] == [encode_event(ev("a", i)) for i in range(1, 4)]
        store._call(store._unsubscribe(consumer))
    finally:
        store.close()
