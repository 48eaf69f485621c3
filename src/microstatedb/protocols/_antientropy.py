"""Delta anti-entropy as a sans-I/O state machine.

One ``AntiEntropy`` object per node. The driver (the simulator or the asyncio runtime) calls
``tick(now)`` at ``next_deadline`` and ``receive(now, sender, payload)`` for every message,
and carries out what they return: ``Send`` messages and ``PeerDown``/``PeerUp`` effects. The
object never reads a clock or touches a socket, so the same code runs in both.

A round, from node A to a peer B chosen at random (gossip):

1. A sends ``Summary`` (the Merkle summary of its version vector, ~150 bytes);
2. B answers ``Same`` when the roots agree, else a ``Request`` with its entries in the
   differing buckets and how many events it will take (``max_events``: back-pressure);
3. A answers with a ``DeltaMessage`` holding at most that many of the events B lacks, in
   causal order, and, if B has events A lacks, its own ``Request``;
4. a receiver whose batch said ``more`` asks again, one batch in flight per peer.

Besides rounds, fresh events are pushed to ``fanout`` random peers on each tick (rumour
mongering), so a write reaches a fleet of hundreds in a logarithmic number of ticks; the rounds
then repair whatever the pushes missed. A batch whose causal context is missing waits in the
store's buffer, and the protocol opens a round with the sender to fetch the gap.
"""

from __future__ import annotations

import random
from collections.abc import Iterable
from dataclasses import dataclass

from microstatedb.clock import vv_dominates, vv_merge
from microstatedb.errors import ConfigurationError
from microstatedb.protocols._membership import Membership, PeerDown, PeerUp, PhiAccrualDetector
from microstatedb.protocols._messages import (
    DeltaMessage,
    Message,
    Push,
    Request,
    Same,
    Summary,
    decode_message,
    encode_message,
)
from microstatedb.replica import (
    BUCKETS,
    Store,
    SummaryCache,
    causal_stability,
    compact_stable,
    delta_since,
    entries_in,
    patch,
)

_ALL_BUCKETS = tuple(range(BUCKETS))


@dataclass(frozen=True, slots=True)
class Send:
    """Output: deliver ``payload`` to peer ``to``."""

    to: str
    """The peer's name."""
    payload: bytes
    """The encoded message (the transport authenticates it)."""


Output = Send | PeerDown | PeerUp


@dataclass(frozen=True, slots=True)
class AntiEntropyConfig:
    """Tuning of the anti-entropy protocol."""

    interval: float = 1.0
    """Mean seconds between ticks (each tick opens one round and pushes fresh events)."""
    fanout: int = 2
    """Peers each tick pushes fresh events to (0 turns pushing off)."""
    max_batch: int = 1000
    """Most events this node takes in one batch."""
    max_push: int = 200
    """Most events in one push."""
    buffer_high: int = 10_000
    """Above this many buffered events, ask for batches ten times smaller."""
    request_timeout: float = 5.0
    """Seconds after which an unanswered request no longer blocks the next one to that peer."""

    def __post_init__(self) -> None:
        if self.interval <= 0 or self.request_timeout <= 0:
            raise ConfigurationError("interval and request_timeout must be positive seconds")
        if self.fanout < 0 or self.max_batch < 1 or self.max_push < 1 or self.buffer_high < 1:
            raise ConfigurationError(
                "fanout must be >= 0 and max_batch, max_push, buffer_high >= 1"
            )


@dataclass(frozen=True, slots=True)
class AntiEntropyStats:
    """Counters of one node's anti-entropy since it started."""

    rounds: int
    """Rounds this node opened."""
    messages_sent: int
    """Messages returned for sending."""
    bytes_sent: int
    """Bytes of those messages."""
    messages_received: int
    """Messages accepted by ``receive``."""
    events_sent: int
    """Events put in batches (deltas and pushes)."""
    events_applied: int
    """Remote events that became visible here."""
    batches_applied: int
    """Batches applied (deltas and pushes)."""
    gap_requests: int
    """Rounds opened because the causal buffer waits on a gap."""


class AntiEntropy:
    """The anti-entropy state machine of one node."""

    def __init__(
        self,
        name: str,
        store: Store,
        peers: Iterable[str],
        *,
        rng: random.Random,
        config: AntiEntropyConfig | None = None,
        detector: PhiAccrualDetector | None = None,
        now: float = 0.0,
    ) -> None:
        self.name = name
        self.store = store
        self.config = config if config is not None else AntiEntropyConfig()
        self._rng = rng
        if detector is None:
            detector = PhiAccrualDetector(first_interval=self.config.interval)
        self.membership = Membership(name, peers, detector, now)
        self._summary = SummaryCache()
        self._known: dict[str, dict[str, int]] = {}
        self._inflight: dict[str, float] = {}
        self._pushed = store.version_vector.get(store.node_id, 0)
        self._promised: dict[str, tuple[float, dict[str, int]]] = {}
        self._gap_seen: dict[str, tuple[int, int]] = {}
        self._gap_at = now
        self.next_deadline = now + self._jitter()
        self._rounds = self._sent = self._bytes = self._received = 0
        self._events_sent = self._applied = self._batches = self._gaps = 0

    def _jitter(self) -> float:
        return self.config.interval * (0.5 + self._rng.random())

    # ------------------------------------------------------------------- driving

    def tick(self, now: float) -> list[Output]:
        """Open a round with a random peer, push fresh events, report verdict changes."""
        self.next_deadline = now + self._jitter()
        out: list[Output] = list(self.membership.transitions(now))
        for peer, since in list(self._inflight.items()):
            if now - since >= self.config.request_timeout:
                del self._inflight[peer]
        target = self._pick(now)
        if target is not None:
            self._rounds += 1
            out.append(self._send(target, Summary(self._summary.get(self.store.version_vector))))
        out.extend(self._push(now))
        return out

    def receive(self, now: float, sender: str, payload: bytes) -> list[Output]:
        """Handle one authenticated message from ``sender``.

        Raises ``UnknownNode`` for a sender that is not a peer and ``CorruptData`` (or the
        store's ``AuthenticationError``/``ClockSkew``) for a message that cannot be used; in
        every such case nothing changed.
        """
        self.membership.check(sender)
        msg = decode_message(payload)
        self.membership.heard(sender, now)
        self._received += 1
        vv = dict(self.store.version_vector)
        if isinstance(msg, Summary):
            diff = self._summary.get(vv).differing(msg.summary)
            if not diff:
                self._known[sender] = vv
                return [self._send(sender, Same())]
            return [self._request(sender, now, tuple(diff), vv, both=True)]
        if isinstance(msg, Same):
            self._inflight.pop(sender, None)
            self._known[sender] = vv
            return []
        if isinstance(msg, Request):
            return self._answer(sender, now, msg, vv)
        # DeltaMessage or Push: a batch to apply
        self._inflight.pop(sender, None)
        applied = self.store.apply(msg.batch)
        self._applied += applied
        self._batches += 1
        vv = dict(self.store.version_vector)
        missing = self.store.missing()
        if missing and sender not in self._inflight and self._new_gap(now, missing):
            self._gaps += 1
            return [self._send(sender, Summary(self._summary.get(vv)))]
        if isinstance(msg, DeltaMessage) and msg.more:
            return [self._request(sender, now, msg.buckets, vv, both=False)]
        return []

    # ------------------------------------------------------------------- helpers

    def _new_gap(self, now: float, missing: dict[str, tuple[int, int]]) -> bool:
        # Ask for a gap once when it appears, then at most once a tick: the sender may lack
        # it too, and asking on every batch would loop between two nodes that both wait.
        if missing == self._gap_seen and now - self._gap_at < self.config.interval:
            return False
        self._gap_seen = missing
        self._gap_at = now
        return True

    def _send(self, to: str, msg: Message) -> Send:
        data = encode_message(msg)
        self._sent += 1
        self._bytes += len(data)
        return Send(to, data)

    def _window(self) -> int:
        if self.store.stats().buffered >= self.config.buffer_high:
            return max(1, self.config.max_batch // 10)
        return self.config.max_batch

    def _request(
        self, to: str, now: float, buckets: tuple[int, ...], vv: dict[str, int], *, both: bool
    ) -> Send:
        self._inflight[to] = now
        return self._send(to, Request(buckets, entries_in(vv, buckets), self._window(), both))

    def _answer(self, sender: str, now: float, msg: Request, vv: dict[str, int]) -> list[Output]:
        peer_vv = patch(vv, msg.buckets, msg.entries)
        self._known[sender] = peer_vv
        out: list[Output] = []
        delta = delta_since(
            self.store,
            self._assume(sender, now, peer_vv),
            min(msg.max_events, self.config.max_batch),
        )
        if delta.events or delta.states:
            self._events_sent += delta.events
            self._promise(sender, now, delta.upto)
            out.append(self._send(sender, DeltaMessage(delta.data, msg.buckets, delta.more)))
        lacking = any(n > vv.get(o, 0) for o, n in msg.entries.items())
        # one pull per peer at a time: a second one would fetch the same events twice
        if msg.both and lacking and sender not in self._inflight:
            out.append(self._request(sender, now, msg.buckets, vv, both=False))
        elif not msg.both:
            self._inflight.pop(sender, None)
        return out

    def _assume(self, peer: str, now: float, vv: dict[str, int]) -> dict[str, int]:
        # What we sent the peer recently is on its way: a request written before it arrived
        # must not make us send it again. The promise ends when the peer shows it has it all,
        # or request_timeout after its oldest part was sent: then a lost batch is sent again.
        promised = self._promised.get(peer)
        if promised is None:
            return vv
        if now - promised[0] >= self.config.request_timeout or vv_dominates(vv, promised[1]):
            del self._promised[peer]
            return vv
        return vv_merge(vv, promised[1])

    def _promise(self, peer: str, now: float, upto: dict[str, int]) -> None:
        promised = self._promised.get(peer)
        if promised is not None and now - promised[0] < self.config.request_timeout:
            # keep the oldest time: steady traffic must not keep a lost batch promised forever
            self._promised[peer] = (promised[0], vv_merge(promised[1], upto))
        else:
            self._promised[peer] = (now, upto)

    def _pick(self, now: float) -> str | None:
        return self.membership.pick(self._rng, now, self._inflight)

    def _push(self, now: float) -> list[Output]:
        # Only this node's own fresh events: relayed ones would reach most peers several
        # times over; the rounds spread them epidemically instead.
        if self.config.fanout == 0:
            return []
        origin = self.store.node_id
        mine = self.store.version_vector.get(origin, 0)
        if mine <= self._pushed:
            return []
        vv = dict(self.store.version_vector)
        vv[origin] = self._pushed
        self._pushed = mine
        delta = delta_since(self.store, vv, self.config.max_push)
        if not delta.events or delta.states:
            return []
        targets: list[str] = []
        for _ in range(self.config.fanout):
            peer = self.membership.pick(self._rng, now, targets)
            if peer is not None and peer not in targets:
                targets.append(peer)
        self._events_sent += delta.events * len(targets)
        own = {origin: mine}
        for peer in targets:
            # only extend a live promise: a push alone says nothing of the peer's other events
            if peer in self._promised:
                self._promise(peer, now, own)
        return [self._send(p, Push(delta.data)) for p in targets]

    # ------------------------------------------------------------------- stability

    def known_vector(self, peer: str) -> dict[str, int] | None:
        """What ``peer`` had seen when last heard from, or None."""
        known = self._known.get(peer)
        return dict(known) if known is not None else None

    def stable_vector(self) -> dict[str, int]:
        """Causal stability: the pointwise minimum of what every member has seen.

        Empty until every current peer has been heard from; removing a peer for good
        (``membership.remove``) lets it advance.
        """
        vvs = [self.store.version_vector]
        for peer in self.membership.peers:
            known = self._known.get(peer)
            if known is None:
                return {}
            vvs.append(known)
        return causal_stability(vvs)

    def remove_peer(self, peer: str) -> None:
        """Remove a member for good (it left the fleet); stability stops waiting for it."""
        self.membership.remove(peer)
        self._known.pop(peer, None)
        self._inflight.pop(peer, None)
        self._promised.pop(peer, None)

    def compact(self) -> int:
        """Let the store drop history every member has seen; returns events released."""
        return compact_stable(self.store, self.stable_vector())

    def stats(self) -> AntiEntropyStats:
        """Counters since this object was made."""
        return AntiEntropyStats(
            rounds=self._rounds,
            messages_sent=self._sent,
            bytes_sent=self._bytes,
            messages_received=self._received,
            events_sent=self._events_sent,
            events_applied=self._applied,
            batches_applied=self._batches,
            gap_requests=self._gaps,
        )
