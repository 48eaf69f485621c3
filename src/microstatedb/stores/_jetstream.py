"""An ``EventStore`` in a NATS JetStream stream (nats-py), behind a synchronous API.

Each event is one message on the subject ``msdb.<stream>.o<origin hex>.<seq>``, so a dot has
a subject of its own:

- the ``Nats-Msg-Id`` header (the dot) lets the server drop a re-sent message within its
  duplicate window (a retry after a lost acknowledgement);
- ``Nats-Expected-Last-Subject-Sequence: 0`` makes the server refuse a second message for a
  dot at any time, so a dot names one event for the life of the stream;
- the message for a dot is fetched directly by its subject, and the events of one origin are
  those under ``msdb.<stream>.o<origin hex>.*``.

An append first checks every dot of the batch against the stream, then publishes the new
events in order and waits for every acknowledgement: a bad or conflicting event writes
nothing. JetStream (2.9) has no multi-message transaction, so a crash or a lost connection in
the middle of the publishing leaves a prefix of the batch; appending the batch again is a
no-op for that prefix and completes it.

nats-py is asynchronous; the store runs it on a private event loop thread and waits for each
call, so its API is synchronous like the ``EventStore`` protocol.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Mapping, Sequence
from contextlib import asynccontextmanager
from typing import Any

import nats
import nats.errors
import nats.js.errors
from nats.js import api

from microstatedb.codec import Event, decode_event
from microstatedb.errors import (
    ConfigurationError,
    DataError,
    IntegrityError,
    MicroStateError,
    OperationalError,
    StoreClosed,
)
from microstatedb.stores._checks import (
    check_batch,
    check_name,
    check_read_args,
    conflict_message,
)
from microstatedb.stores._instrument import appending
from microstatedb.stores._loop import LoopThread

DEFAULT_SERVERS = "nats://127.0.0.1:4222"
"""The server used when none is given: the local NATS with JetStream."""

Delivered = tuple[bytes, dict[str, str], str]
"""A message as a consumer delivers it: body, headers, and the subject that acknowledges it."""

_WRONG_LAST_SEQUENCE = 10071  # JetStream's error code for a failed expected-sequence check
_LOOKUP_CHUNK = 512


def origin_token(origin: str) -> str:
    """A subject token for any origin string (subjects cannot hold dots, spaces or wildcards)."""
    return "o" + origin.encode().hex()


@asynccontextmanager
async def _translated(what: str) -> AsyncIterator[None]:
    try:
        yield
    except MicroStateError:
        raise
    except nats.errors.MaxPayloadError as exc:
        raise DataError(f"{what}: a message is larger than the server accepts") from exc
    except (TimeoutError, nats.errors.Error, nats.js.errors.Error, OSError) as exc:
        raise OperationalError(
            f"{what} failed: {exc!r}; check that NATS with JetStream is reachable"
        ) from exc


class JetStreamEventStore:
    """An ``EventStore`` kept in one JetStream stream, created on first use.

    ``stream`` names the stream (letters, digits, underscores); its subjects are
    ``msdb.<stream>.>``. ``timeout`` bounds every call to the server. Reads fetch
    ``page_size`` messages per request and see what was appended before each read began.
    """

    def __init__(
        self,
        stream: str,
        *,
        servers: str | Sequence[str] = DEFAULT_SERVERS,
        timeout: float = 10.0,
        duplicate_window: float = 120.0,
        page_size: int = 1000,
    ) -> None:
        self.stream = check_name("stream", stream)
        if type(page_size) is not int or page_size < 1:
            raise ConfigurationError(f"page_size must be an int >= 1, got {page_size!r}")
        if not timeout > 0 or not duplicate_window > 0:
            raise ConfigurationError("timeout and duplicate_window must be positive seconds")
        self.subject_prefix = f"msdb.{stream}"
        self._timeout = float(timeout)
        self._page = page_size
        self._lock = threading.Lock()
        self._closed = False
        self._nc: Any = None
        self._loop = LoopThread(f"msdb-jetstream-{stream}")
        try:
            self._call(self._start(servers, duplicate_window))
        except BaseException:
            self._loop.stop()
            raise

    # ---------------------------------------------------------------- the loop thread

    def _call(self, coro: Any) -> Any:
        return self._loop.call(coro, self._timeout * 3)

    async def _start(self, servers: str | Sequence[str], window: float) -> None:
        async def quiet(exc: Exception) -> None:
            return None  # surfaced as errors of the calls that hit them

        async with _translated(f"connecting to NATS at {servers}"):
            self._nc = await nats.connect(
                servers=[servers] if isinstance(servers, str) else list(servers),
                connect_timeout=self._timeout,
                max_reconnect_attempts=3,
                reconnect_time_wait=min(self._timeout / 8, 2.0),
                error_cb=quiet,
            )
        try:
            self._js = self._nc.jetstream(timeout=self._timeout)
            async with _translated(f"creating stream {self.stream!r}"):
                try:
                    await self._js.stream_info(self.stream)
                except nats.js.errors.NotFoundError:
                    await self._js.add_stream(
                        name=self.stream,
                        subjects=[f"{self.subject_prefix}.>"],
                        storage=api.StorageType.FILE,
                        duplicate_window=window,
                        allow_direct=True,
                    )
        except BaseException:
            await self._nc.close()
            raise

    def _subject(self, ev: Event) -> str:
        return f"{self.subject_prefix}.{origin_token(ev.origin)}.{ev.seq}"

    def _check(self) -> None:
        if self._closed:
            raise StoreClosed("the event store is closed")

    # ------------------------------------------------------------------------- writing

    def append(self, events: Sequence[Event]) -> None:
        """Append all of ``events``; identical re-appends are no-ops (see the module doc)."""
        self.append_with_headers(events)

    def append_with_headers(
        self, events: Sequence[Event], headers: Mapping[str, str] | None = None
    ) -> None:
        """``append``, adding ``headers`` (a trace context, say) to every new message."""
        batch = check_batch(events)
        with self._lock:
            self._check()
            if batch:
                with appending("jetstream", self.stream, len(batch)):
                    self._call(self._append(batch, dict(headers or {})))

    async def _lookup(self, ev: Event) -> bytes | None:
        return (await self._stored([(ev, b"")]))[0]

    async def _stored(self, batch: list[tuple[Event, bytes]]) -> list[bytes | None]:
        """The stored message of each dot (None if absent), by direct gets on its subject.

        The requests go out back to back with one reply subscription collecting the
        answers: nats-py's own request path costs a task per message, several times more.
        """
        found: list[bytes | None] = []
        for start in range(0, len(batch), _LOOKUP_CHUNK):
            found += await self._lookup_chunk(
                [ev for ev, _ in batch[start : start + _LOOKUP_CHUNK]]
            )
        return found

    async def _lookup_chunk(self, events: list[Event]) -> list[bytes | None]:
        found: list[bytes | None] = [None] * len(events)
        inbox = self._nc.new_inbox()
        left = len(events)
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()
        failure: list[str] = []

        async def answer(msg: Any) -> None:
            nonlocal left
            status = (msg.headers or {}).get("Status")
            if status is None:
                found[int(msg.subject.rsplit(".", 1)[1])] = bytes(msg.data)
            elif status != "404":
                failure.append(f"{status} {(msg.headers or {}).get('Description', '')}")
            left -= 1
            if left == 0 and not done.done():
                done.set_result(None)

        sub = await self._nc.subscribe(inbox + ".*", cb=answer)
        try:
            for i, ev in enumerate(events):
                await self._nc.publish(
                    f"$JS.API.DIRECT.GET.{self.stream}.{self._subject(ev)}",
                    b"",
                    reply=f"{inbox}.{i}",
                )
            await asyncio.wait_for(done, self._timeout)
        finally:
            await sub.unsubscribe()
        if failure:
            raise OperationalError(f"looking up dots in stream {self.stream!r}: {failure[0]}")
        return found

    @staticmethod
    def _same(ev: Event, body: bytes, have: bytes) -> bool:
        return have == body or decode_event(have) == ev

    async def _append(self, batch: list[tuple[Event, bytes]], extra: dict[str, str]) -> None:
        what = f"appending to stream {self.stream!r}"
        limit = self._nc.max_payload
        for ev, body in batch:
            if len(body) > limit:
                raise DataError(
                    f"event {ev.dot} encodes to {len(body)} bytes; the server accepts {limit} "
                    "per message (raise max_payload or store the value elsewhere)"
                )
        async with _translated(what):
            fresh = []
            for (ev, body), have in zip(batch, await self._stored(batch), strict=True):
                if have is None:
                    fresh.append((ev, body))
                elif not self._same(ev, body, have):
                    raise IntegrityError(conflict_message(ev.dot))
            futures = []
            for ev, body in fresh:
                headers = {
                    **extra,
                    "Nats-Msg-Id": f"{origin_token(ev.origin)}:{ev.seq}",
                    "Nats-Expected-Last-Subject-Sequence": "0",
                }
                futures.append(
                    await self._js.publish_async(self._subject(ev), body, headers=headers)
                )
            acks = await asyncio.wait_for(
                asyncio.gather(*futures, return_exceptions=True), self._timeout
            )
        # A refusal or a duplicate here means another writer stored the dot meanwhile.
        for (ev, body), ack in zip(fresh, acks, strict=True):
            raced = isinstance(ack, api.PubAck) and ack.duplicate
            if isinstance(ack, nats.js.errors.APIError) and ack.err_code == _WRONG_LAST_SEQUENCE:
                raced = True
            elif isinstance(ack, BaseException):
                raise OperationalError(f"{what} failed: {ack!r}") from ack
            if raced:
                async with _translated(what):
                    have = await self._lookup(ev)
                if have is None or not self._same(ev, body, have):
                    raise IntegrityError(
                        conflict_message(ev.dot) + " (a concurrent writer stored it; the events "
                        "before it in this batch were written)"
                    )

    # ------------------------------------------------------------------------- reading

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[Event]:
        """Events in append order from index ``start``, at most ``limit`` of them."""
        check_read_args(start, limit)
        return (ev for ev, _h in self.read_with_headers(start, limit))

    def read_with_headers(
        self, start: int = 0, limit: int | None = None
    ) -> Iterator[tuple[Event, dict[str, str]]]:
        """``read``, with each message's headers (those given to ``append_with_headers``)."""
        check_read_args(start, limit)
        with self._lock:
            self._check()
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.BY_START_SEQUENCE,
            opt_start_seq=start + 1,
            filter_subject=f"{self.subject_prefix}.>",
        )
        return self._consume(config, limit, lambda ev: True)

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        """Events of ``origin`` with ``seq > after_seq``, in append order."""
        if not isinstance(origin, str) or type(after_seq) is not int:
            raise ConfigurationError("read_origin takes an origin (str) and after_seq (int)")
        with self._lock:
            self._check()
        config = api.ConsumerConfig(
            deliver_policy=api.DeliverPolicy.ALL,
            filter_subject=f"{self.subject_prefix}.{origin_token(origin)}.*",
        )
        return (ev for ev, _h in self._consume(config, None, lambda ev: ev.seq > after_seq))

    def _consume(
        self, config: api.ConsumerConfig, limit: int | None, keep: Callable[[Event], bool]
    ) -> Iterator[tuple[Event, dict[str, str]]]:
        config.ack_policy = api.AckPolicy.NONE
        config.inactive_threshold = max(self._timeout * 6, 30.0)
        config.mem_storage = True
        with self._lock:
            self._check()
            sub, pending = self._call(self._subscribe(config))
        try:
            left = pending if limit is None else min(pending, limit)
            while left > 0:
                n = min(left, self._page)
                with self._lock:
                    self._check()
                    page = self._call(self._fetch(sub, n))
                left -= len(page)
                for body, headers in page:
                    ev = decode_event(body)
                    if keep(ev):
                        yield ev, headers
        finally:
            if not self._closed:
                self._call(self._unsubscribe(sub))

    async def _subscribe(self, config: api.ConsumerConfig) -> tuple[str, int]:
        """Create an ephemeral consumer; its name and how many messages it will deliver."""
        async with _translated(f"reading stream {self.stream!r}"):
            config.name = self._nc.new_inbox().rsplit(".", 1)[1]
            info = await self._js.add_consumer(self.stream, config=config)
            return config.name, int(info.num_pending or 0)

    async def _fetch(self, consumer: str, n: int) -> list[tuple[bytes, dict[str, str]]]:
        """The next ``n`` messages of ``consumer`` (all pending: they are there to fetch).

        One pull request, the messages collected by a subscription callback: nats-py's
        ``fetch`` waits for each message in a task of its own, several times slower.
        """
        async with _translated(f"reading stream {self.stream!r}"):
            got: list[tuple[bytes, dict[str, str]]] = []
            while len(got) < n:
                got += [
                    (body, h) for body, h, _reply in await self._pull_raw(consumer, n - len(got))
                ]
            return got

    async def _pull_raw(self, consumer: str, n: int) -> list[Delivered]:
        got: list[Delivered] = []
        done: asyncio.Future[None] = asyncio.get_running_loop().create_future()

        async def deliver(msg: Any) -> None:
            headers = msg.headers or {}
            if "Status" in headers:  # 404/408: nothing more for this request
                if not done.done():
                    done.set_result(None)
                return
            got.append((bytes(msg.data), dict(headers), msg.reply))
            if len(got) >= n and not done.done():
                done.set_result(None)

        inbox = self._nc.new_inbox()
        sub = await self._nc.subscribe(inbox, cb=deliver)
        try:
            request = {"batch": n, "expires": int(self._timeout * 1e9)}
            await self._nc.publish(
                f"$JS.API.CONSUMER.MSG.NEXT.{self.stream}.{consumer}",
                json.dumps(request).encode(),
                reply=inbox,
            )
            await asyncio.wait_for(done, self._timeout * 2)
        finally:
            await sub.unsubscribe()
        return got

    async def _unsubscribe(self, consumer: str) -> None:
        async with _translated(f"closing a reader of stream {self.stream!r}"):
            with contextlib.suppress(nats.js.errors.NotFoundError):  # expired meanwhile
                await self._js.delete_consumer(self.stream, consumer)

    # ------------------------------------------------- durable consumers (replication)

    def _durable(self, name: str) -> str:
        """Create the durable consumer ``name`` if missing (acknowledging all up to a
        message acknowledges it and every one before); returns its name."""
        config = api.ConsumerConfig(
            durable_name=name,
            ack_policy=api.AckPolicy.ALL,
            ack_wait=max(self._timeout * 3, 30.0),
            filter_subject=f"{self.subject_prefix}.>",
        )
        with self._lock:
            self._check()
            self._call(self._open_durable(config))
        return name

    async def _open_durable(self, config: api.ConsumerConfig) -> None:
        async with _translated(f"opening consumer {config.durable_name!r} of {self.stream!r}"):
            await self._js.add_consumer(self.stream, config=config)

    def _pull(self, consumer: str, n: int) -> list[Delivered]:
        """Up to ``n`` messages the durable consumer has not had acknowledged (none: [])."""
        with self._lock:
            self._check()
            return list(self._call(self._pull_async(consumer, n)))

    async def _pull_async(self, consumer: str, n: int) -> list[Delivered]:
        async with _translated(f"reading stream {self.stream!r}"):
            info = await self._js.consumer_info(self.stream, consumer)
            waiting = int(info.num_pending or 0) + int(info.num_ack_pending or 0)
            if waiting == 0:
                return []
            return await self._pull_raw(consumer, min(n, waiting))

    def _ack(self, reply: str) -> None:
        """Acknowledge the message ``reply`` names, and every one before it."""
        with self._lock:
            self._check()
            self._call(self._ack_async(reply))

    async def _ack_async(self, reply: str) -> None:
        async with _translated(f"acknowledging on stream {self.stream!r}"):
            await self._nc.request(reply, b"+ACK", timeout=self._timeout)

    def __len__(self) -> int:
        with self._lock:
            self._check()
            return int(self._call(self._length()))

    async def _length(self) -> int:
        async with _translated(f"reading stream {self.stream!r}"):
            info = await self._js.stream_info(self.stream)
            return int(info.state.last_seq)

    def close(self) -> None:
        """Close the connection and the loop thread; the stream stays on the server."""
        with self._lock:
            if self._closed:
                return
            self._closed = True
        try:
            self._call(self._nc.close())
        finally:
            self._loop.stop()

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<JetStreamEventStore stream={self.stream!r} {state}>"
