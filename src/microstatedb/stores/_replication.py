"""Replication through NATS JetStream, for services that cannot reach each other directly.

Each store publishes its own events to a shared stream and consumes the others' from it,
so a fleet can lean on an existing clustered broker instead of full-mesh anti-entropy. The
stream is a ``JetStreamEventStore``: a dot is stored once, whoever publishes it. Each store
reads through a durable consumer named after its node and acknowledges a batch once it has
applied it, so a restarted replicator resumes after the last applied batch (and a batch
applied but not acknowledged comes again, which ``apply`` ignores).
"""

from __future__ import annotations

from microstatedb import observability as obs
from microstatedb.codec import Event, checksum, decode_event
from microstatedb.errors import ConfigurationError, InvalidOperation
from microstatedb.replica import Store, decode_batch, encode_batch
from microstatedb.stores._jetstream import JetStreamEventStore


class JetStreamReplicator:
    """Publishes ``store``'s own events to ``channel`` and applies the other stores' events.

    ``key`` is the store's batch key when it has one. Call ``publish()`` after local writes
    and ``pull()`` periodically (or ``sync()`` for both); each returns how many events it
    moved.
    """

    def __init__(
        self,
        store: Store,
        channel: JetStreamEventStore,
        *,
        key: bytes | None = None,
        batch_size: int = 1000,
    ) -> None:
        if type(batch_size) is not int or batch_size < 1:
            raise ConfigurationError(f"batch_size must be an int >= 1, got {batch_size!r}")
        self.store = store
        self.channel = channel
        self.consumer = "msdb_" + checksum(store.node_id.encode(), 8).hex()
        """The durable consumer's name on the stream (one per node)."""
        self._key = key
        self._batch = batch_size
        self._published = 0
        self._durable: str | None = None

    def publish(self) -> int:
        """Publish the store's own events not yet published; returns how many."""
        node = self.store.node_id
        vv = dict(self.store.version_vector)
        if vv.get(node, 0) <= self._published:
            return 0
        with obs.span(obs.names.SPAN_JETSTREAM_PUBLISH, {"msdb.node": node}):
            batch = decode_batch(self.store.events_since({**vv, node: self._published}), self._key)
            events = [ev for ev in batch.events if ev.origin == node]
            if batch.states:
                raise InvalidOperation(
                    f"events of {node!r} after {self._published} left the log before they "
                    "were published; publish more often than the store snapshots, or give the "
                    "store this stream as its archive"
                )
            headers = obs.inject({})
            for i in range(0, len(events), self._batch):
                self.channel.append_with_headers(events[i : i + self._batch], headers)
            self._published = max(ev.seq for ev in events)
        obs.metrics.JETSTREAM_PUBLISHED.labels(node).inc(len(events))
        return len(events)

    def pull(self) -> int:
        """Apply the other stores' events that arrived since the last pull; returns how many
        became visible (events still waiting for their causal context are not counted)."""
        if self._durable is None:
            self._durable = self.channel._durable(self.consumer)
        node = self.store.node_id
        applied = 0
        while True:
            msgs = self.channel._pull(self._durable, self._batch)
            if not msgs:
                return applied
            events: list[Event] = []
            context = None
            for body, headers, _reply in msgs:
                ev = decode_event(body)
                if ev.origin != node:
                    events.append(ev)
                    if context is None:
                        context = obs.extract(headers)
            if events:
                attributes: obs.Attributes = {"msdb.node": node, "msdb.events": len(events)}
                with obs.span(obs.names.SPAN_JETSTREAM_PULL, attributes, context=context):
                    sender = f"jetstream:{self.channel.stream}"
                    applied += self.store.apply(encode_batch(sender, {}, events, [], self._key))
                obs.metrics.JETSTREAM_CONSUMED.labels(node).inc(len(events))
            self.channel._ack(msgs[-1][2])

    def sync(self) -> tuple[int, int]:
        """``publish()`` then ``pull()``; returns both counts."""
        return self.publish(), self.pull()
