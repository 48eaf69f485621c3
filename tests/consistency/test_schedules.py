"""Small scopes: hypothesis picks every delivery, drop, duplicate, clock step and client call
of a three-node cluster, and every history must be linearizable.

The scheduler is the whole network: the test holds the messages in flight and the choice
sequence decides which one moves next, so reorderings, losses, duplicates, invalidations that
arrive late and leases that run out mid-write are all reachable, and failures shrink.
"""

from __future__ import annotations

import random
from typing import Any

from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.errors import Unavailable
from microstatedb.protocols import Done, LeaseConfig, QuorumConfig, QuorumNode, Send
from microstatedb.protocols._quorum import encode
from microstatedb.verify import History, HistoryEvent, Verdict, check_linearizable

NAMES = ["a", "b", "c"]
CONFIG = QuorumConfig(lease=LeaseConfig(duration=3.0, drift=0.0), timeout=4.0)


class _World:
    def __init__(self, node_class: type[QuorumNode] = QuorumNode) -> None:
        self.now = 0.0
        self.nodes = {
            n: node_class(n, NAMES, now=0.0, rng=random.Random(i), config=CONFIG)
            for i, n in enumerate(NAMES)
        }
        self.flight: list[tuple[str, str, bytes]] = []
        self.events: list[HistoryEvent] = []
        self.calls: dict[tuple[str, int], tuple[int, str, Any]] = {}
        self.busy: set[int] = set()
        self.step = 0
        self.value = 0
        for n in NAMES:  # everyone has heard from everyone
            for m in NAMES:
                if m != n:
                    self.nodes[n].receive(0.0, m, encode(10))

    def t(self) -> int:
        self.step += 1
        return self.step

    def out(self, src: str, outputs: list[Any]) -> None:
        for o in outputs:
            if isinstance(o, Send):
                self.flight.append((src, o.to, o.payload))
            else:
                assert isinstance(o, Done)
                process, f, value = self.calls.pop((src, o.op))
                self.busy.discard(process)
                if o.error is None:
                    kind = "ok"
                    if f == "cas" and o.value is False:
                        kind = "fail"
                    shown = o.value if f == "read" else value
                else:
                    kind, shown = ("fail" if isinstance(o.error, Unavailable) else "info"), value
                self.events.append(HistoryEvent(process, kind, f, "k", shown, self.t()))

    def call(self, process: int, at: str, f: str) -> None:
        if process in self.busy:
            return
        node = self.nodes[at]
        value: Any = None
        if f == "write":
            self.value += 1
            value = self.value
        elif f == "cas":
            self.value += 1
            value = (self.value - 1, self.value)
        self.events.append(HistoryEvent(process, "invoke", f, "k", value, self.t()))
        if f == "read":
            hit, got = node.lease_read("k", self.now)
            if hit:
                self.events.append(HistoryEvent(process, "ok", f, "k", got, self.t()))
                return
        if f == "read":
            fn = lambda v: (v, v)  # noqa: E731
        elif f == "write":
            fn = lambda _v, x=value: (x, None)  # noqa: E731
        else:
            fn = lambda v, e=value[0], n=value[1]: (n, True) if v == e else (v, False)  # noqa: E731
        try:
            op = node.submit(self.now, "k", fn, read_only=f == "read")
        except Unavailable:  # refused at once: certainly not applied
            self.events.append(HistoryEvent(process, "fail", f, "k", value, self.t()))
            return
        self.calls[(at, op)] = (process, f, value)
        self.busy.add(process)
        self.out(at, node.tick(self.now))

    def finish(self) -> History:
        for (_at, _op), (process, f, value) in list(self.calls.items()):
            self.events.append(HistoryEvent(process, "info", f, "k", value, self.t()))
        return History(self.events)


class _NoInvalidation(QuorumNode):
    """The broken variant: acknowledges writes without telling lease holders."""

    def _on_accept(self, now: float, sender: str, f: list[Any], out: list[Any]) -> None:
        _kind, key, raw, op_id, new = f
        self._state[key] = ((raw[0], raw[1]), (raw[0], raw[1]), new)
        out.append(Send(sender, encode(4, key, raw, op_id)))


choice = st.tuples(st.integers(0, 9), st.integers(0, 1000))


def _play(
    choices: list[tuple[int, int]], node_class: type[QuorumNode] = QuorumNode
) -> tuple[History, int]:
    w = _World(node_class)
    # start from a lease held by "a" on the first value, so that races with it come early
    w.call(0, "a", "write")
    while w.flight:
        src, dst, payload = w.flight.pop(0)
        w.out(dst, w.nodes[dst].receive(w.now, src, payload))
    for action, n in choices:
        if action <= 3 and w.flight:  # deliver one message (most choices)
            src, dst, payload = w.flight.pop(n % len(w.flight))
            w.out(dst, w.nodes[dst].receive(w.now, src, payload))
        elif action == 4 and w.flight:  # deliver one twice
            src, dst, payload = w.flight[n % len(w.flight)]
            w.out(dst, w.nodes[dst].receive(w.now, src, payload))
        elif action == 5 and w.flight:  # lose one
            w.flight.pop(n % len(w.flight))
        elif action == 6:  # time passes (leases run out, timeouts fire, resends go out)
            w.now += (n % 7) * 0.05
            for name, node in w.nodes.items():
                w.out(name, node.tick(w.now))
        else:
            # reads mostly at "a" (the lease holder), changes from anywhere: every quorum
            # round is a change that invalidates the holder, so spread reads would rarely hit
            f = ("read", "read", "read", "read", "write", "cas")[n % 6]
            at = "a" if f == "read" and (n // 6) % 4 else NAMES[(n // 6) % 3]
            w.call(n % 3, at, f)
    # heal: deliver everything left and let timers run, so calls finish where they can
    for _ in range(40):
        while w.flight:
            src, dst, payload = w.flight.pop(0)
            w.out(dst, w.nodes[dst].receive(w.now, src, payload))
        w.now += 0.25
        for name, node in w.nodes.items():
            w.out(name, node.tick(w.now))
    return w.finish(), sum(node.stats().lease_reads for node in w.nodes.values())


@settings(max_examples=300)
@given(st.lists(choice, min_size=5, max_size=120))
def test_every_schedule_is_linearizable(choices: list[tuple[int, int]]) -> None:
    result = check_linearizable(_play(choices)[0], "register")
    assert result.verdict is Verdict.HOLDS, result.explanation and result.explanation.text


def _random_schedules(count: int) -> list[list[tuple[int, int]]]:
    rng = random.Random(11)
    return [
        [(rng.randrange(10), rng.randrange(1000)) for _ in range(rng.randrange(60, 200))]
        for _ in range(count)
    ]


def test_schedules_reach_lease_reads_and_the_broken_variant_fails() -> None:
    """The same scheduler finds the stale read of an acceptor that skips invalidations, and
    the real one serves lease reads in the schedules it explores."""
    schedules = _random_schedules(300)
    broken = sum(
        check_linearizable(_play(s, _NoInvalidation)[0], "register").verdict is Verdict.VIOLATED
        for s in schedules
    )
    assert broken >= 5
    lease_reads = 0
    for s in schedules[:100]:
        history, served = _play(s)
        assert check_linearizable(history, "register").verdict is Verdict.HOLDS
        lease_reads += served
    assert lease_reads > 100
