"""The per-key consensus with leases: unit rules, scripted lease scenarios, chaos on many seeds."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.codec import packb
from microstatedb.errors import ConfigurationError, CorruptData, Indeterminate, Unavailable
from microstatedb.protocols import (
    Done,
    LeaseConfig,
    LeaseHolder,
    LeaseTable,
    MemoryStorage,
    QuorumConfig,
    QuorumNode,
    Send,
    message_kind,
)
from microstatedb.protocols._quorum import decode, encode
from microstatedb.runtime._chaos import NEMESES, run_chaos
from microstatedb.runtime._cluster import SimCluster
from microstatedb.verify import Verdict, check_linearizable

# ----------------------------------------------------------------------------- unit rules


def test_lease_config_validation_and_holder_duration() -> None:
    cfg = LeaseConfig(duration=1.0, drift=0.01)
    assert cfg.holder_duration == pytest.approx(0.99 / 1.01)
    for bad in ({"duration": 0}, {"duration": float("inf")}, {"drift": 0.6}, {"renew_before": 1}):
        with pytest.raises(ConfigurationError):
            LeaseConfig(**bad)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        QuorumConfig(timeout=0)


@given(
    st.floats(0.01, 10),
    st.floats(0, 0.2),
    st.floats(-0.2, 0.2),
    st.floats(-0.2, 0.2),
    st.floats(0, 1),
)
def test_holder_always_stops_before_the_acceptor(
    duration: float, drift: float, rh: float, ra: float, lag: float
) -> None:
    """With both clock rates within 1 +- drift of real time, the holder's lease ends first in
    real time, whatever the delay between the request and the grant."""
    cfg = LeaseConfig(duration=duration, drift=drift)
    rate_h = 1 + max(-drift, min(drift, rh))
    rate_a = 1 + max(-drift, min(drift, ra))
    holder_end_real = cfg.holder_duration / rate_h  # from the send, real seconds
    acceptor_end_real = lag + cfg.duration / rate_a  # from the send: lag, then its duration
    assert holder_end_real <= acceptor_end_real + 1e-9


def test_lease_table_and_holder_bookkeeping() -> None:
    cfg = LeaseConfig(duration=1.0, drift=0.0)
    table = LeaseTable(cfg)
    assert table.grant("k", "h", 0.0) == 1.0
    assert table.live("k", 0.5) == {"h": 1.0}
    assert table.live("k", 1.0) == {}
    assert table.live("x", 0.0) == {}
    table.grant("k", "h", 2.0)
    table.grant("k", "h2", 2.5)
    assert len(table) == 2
    assert table.live("k", 3.2) == {"h2": 3.5}

    holder = LeaseHolder(cfg, majority=2)
    req = holder.ask("k", 0.0)
    holder.granted(req, "a", (1, "x"))
    holder.granted(999, "b", (1, "x"))  # an unknown request is ignored
    assert not holder.holds("k", 0.1)
    holder.granted(req, "b", (0, ""))
    assert holder.holds("k", 0.1)
    assert holder.read("k", 0.1) == (False, None)  # nothing cached yet
    holder.fill("k", (0, "y"), "old", 0.0)  # older than the fence: refused
    assert holder.read("k", 0.1) == (False, None)
    holder.fill("k", (1, "x"), "v", 0.0)
    assert holder.read("k", 0.1) == (True, "v")
    holder.fence("k", (2, "z"))  # an invalidation
    assert holder.read("k", 0.1) == (False, None)
    holder.fill("k", (2, "z"), "w", 0.1)
    assert holder.read("k", 0.2) == (True, "w")
    assert holder.read("k", 1.5) == (False, None)  # expired
    assert holder.expires("k") == 1.0
    assert holder.expires("nothing") == float("-inf")
    assert "k" in holder.to_renew(0.9)
    assert holder.stats() == (1, 1)
    assert holder.to_renew(100.0) == []  # a cold key is forgotten
    for _ in range(4200):
        holder.ask("k", 0.0)  # old unanswered requests are forgotten, not kept forever


def test_memory_storage_survives_and_counts() -> None:
    storage = MemoryStorage()
    storage.save("k", (1, "a"), (1, "a"), 5)
    assert storage.load() == {"k": ((1, "a"), (1, "a"), 5)}
    assert storage.saves == 1


def _node(name: str = "a", **kw: Any) -> QuorumNode:
    return QuorumNode(name, ["a", "b", "c"], now=0.0, rng=random.Random(0), **kw)


def test_minority_refuses_at_once_and_sends_nothing() -> None:
    node = _node()
    with pytest.raises(Unavailable, match="nothing was sent"):
        node.submit(0.0, "k", lambda v: (v, v))
    assert node.stats().refused == 1
    node.receive(0.0, "b", encode(10))  # a ping from b: a majority is reachable now
    assert node.has_quorum(0.1)
    assert node.submit(0.1, "k", lambda v: (v, v)) == 1
    assert not node.has_quorum(1.0)  # b went quiet for longer than suspect_after


def test_malformed_messages_are_refused() -> None:
    node = _node()
    for payload in (b"\xc1", packb([]), packb([99]), packb("x")):
        with pytest.raises(CorruptData):
            node.receive(0.0, "b", payload)
    with pytest.raises(CorruptData):
        node.receive(0.0, "b", encode(1, "k", ["x", 1], 1))  # a bad ballot
    with pytest.raises(CorruptData):
        node.receive(0.0, "b", encode(1, "k"))  # too few fields
    with pytest.raises(CorruptData):
        node.receive(0.0, "zz", encode(10))
    assert message_kind(encode(8, "k", [1, "a"])) == "invalidate"
    assert message_kind(b"\xc1") == "?"
    with pytest.raises(CorruptData):
        decode(b"\xc1")


def _drive(nodes: dict[str, QuorumNode], out: list[Any], now: float) -> list[Done]:
    """Deliver every message at once, in order, until quiet; returns the Done outputs."""
    done: list[Done] = []
    queue = [(src, o) for src, o in out]
    while queue:
        src, item = queue.pop(0)
        if isinstance(item, Done):
            done.append(item)
            continue
        assert isinstance(item, Send)
        queue.extend((item.to, o) for o in nodes[item.to].receive(now, src, item.payload))
    return done


def _three(**kw: Any) -> dict[str, QuorumNode]:
    names = ["a", "b", "c"]
    nodes = {n: QuorumNode(n, names, now=0.0, rng=random.Random(1), **kw) for n in names}
    for n in names:
        for m in names:
            if m != n:
                nodes[n].receive(0.0, m, encode(10))
    return nodes


def _change(
    nodes: dict[str, QuorumNode], at: str, fn: Any, now: float = 0.0, **kw: Any
) -> list[Done]:
    node = nodes[at]
    node.submit(now, "k", fn, **kw)
    return _drive(nodes, [(at, o) for o in node.tick(now)], now)


def test_changes_compare_and_set_and_errors_inside_a_change() -> None:
    nodes = _three(config=QuorumConfig(lease=LeaseConfig(enabled=False)))
    assert _change(nodes, "a", lambda v: (1, None))[0].error is None
    cas = _change(nodes, "b", lambda v: (2, True) if v == 1 else (v, False))
    assert cas[0].value is True
    assert _change(nodes, "c", lambda v: (v, v), read_only=True)[0].value == 2
    assert nodes["a"].value_of("k") == 2
    assert nodes["a"].accepted_ballot("k")[0] >= 1

    def refuse(_v: Any) -> tuple[Any, Any]:
        raise ConfigurationError("no")

    failed = _change(nodes, "a", refuse)
    assert isinstance(failed[0].error, ConfigurationError)
    assert nodes["a"].lease_read("k", 0.0) == (False, None)  # leases off
    assert "QuorumNode 'a'" in repr(nodes["a"])


def test_a_lease_read_is_local_after_a_quorum_round() -> None:
    nodes = _three()
    _change(nodes, "a", lambda v: (7, None))
    hit, value = nodes["a"].lease_read("k", 0.01)
    assert (hit, value) == (True, 7)
    assert nodes["a"].stats().lease_reads == 1
    # a write from b invalidates a's lease before the acceptors acknowledge it
    _change(nodes, "b", lambda v: (8, None), now=0.02)
    assert nodes["a"].lease_read("k", 0.03) == (False, None)
    assert sum(n.stats().invalidations for n in nodes.values()) >= 2


def test_outbid_after_accept_is_indeterminate_and_timeouts_are_classified() -> None:
    nodes = _three(config=QuorumConfig(lease=LeaseConfig(enabled=False), timeout=1.0))
    a = nodes["a"]
    a.submit(0.0, "k", lambda v: (1, None))
    prepares = a.tick(0.0)
    # promises from a and b arrive; then c is taken over by a higher ballot before the accept
    outs: list[Any] = []
    for send in prepares:
        assert isinstance(send, Send)
        if send.to in ("a", "b"):
            for reply in nodes[send.to].receive(0.0, "a", send.payload):
                outs.extend(a.receive(0.0, send.to, reply.payload))  # type: ignore[union-attr]
    accepts = [o for o in outs if isinstance(o, Send) and message_kind(o.payload) == "accept"]
    assert accepts
    nodes["b"].receive(0.0, "c", encode(1, "k", [99, "c.0"], 5))  # c's higher prepare at b
    to_b = next(s for s in accepts if s.to == "b")
    reject = nodes["b"].receive(0.0, "a", to_b.payload)
    done = [o for o in a.receive(0.0, "b", reject[0].payload) if isinstance(o, Done)]  # type: ignore[union-attr]
    assert isinstance(done[0].error, Indeterminate)

    # a change that never gets an answer: Unavailable before any accept, else Indeterminate
    lone = _three(config=QuorumConfig(lease=LeaseConfig(enabled=False), timeout=1.0))["a"]
    lone.receive(0.0, "b", encode(10))
    lone.submit(0.0, "k", lambda v: (1, None))
    lone.tick(0.0)
    timed = [o for o in lone.tick(1.5) if isinstance(o, Done)]
    assert isinstance(timed[0].error, Unavailable)
    assert lone.stats().unavailable == 1


def test_restarted_acceptor_waits_out_the_lease_period() -> None:
    storage = MemoryStorage()
    node = QuorumNode(
        "a",
        ["a", "b", "c"],
        now=10.0,
        rng=random.Random(0),
        storage=storage,
        lease_table_lost=True,
        config=QuorumConfig(lease=LeaseConfig(duration=1.0)),
    )
    assert node.receive(10.0, "b", encode(6, "k", 1)) == []  # no lease granted yet
    node.receive(10.0, "b", encode(1, "k", [1, "b.0"], 1))
    acked = node.receive(10.0, "b", encode(3, "k", [1, "b.0"], 1, 5))
    assert acked == []  # accepted and saved, but not acknowledged yet
    assert storage.records["k"][2] == 5
    assert node.next_deadline <= 11.0
    later = node.tick(11.0)
    assert any(isinstance(o, Send) and message_kind(o.payload) == "accepted" for o in later)


# ----------------------------------------------------------------- the lease rule, scripted


def _settle(cluster: SimCluster) -> None:
    cluster.run(0.5)


def test_delayed_invalidation_never_lets_a_stale_read_through() -> None:
    """The holder is cut off from the writers: the write waits the lease out, and the holder's
    local reads stop before the write is acknowledged."""
    config = QuorumConfig(lease=LeaseConfig(duration=1.0, drift=0.01))
    cluster = SimCluster(3, seed=5, config=config)
    _settle(cluster)
    cluster.call(0, "n0", "write", "k", 1)
    cluster.run(0.1)
    cluster.call(1, "n0", "read", "k")
    cluster.run(0.1)
    assert cluster.node("n0").holder.holds("k", cluster.local("n0"))
    cluster.extra_delay["invalidate"] = 5.0  # invalidations crawl
    written_at: list[float] = []
    start = cluster.now
    cluster.call(2, "n1", "write", "k", 2, on_done=lambda: written_at.append(cluster.now))

    def reader() -> None:
        if cluster.now - start < 3:
            cluster.call(
                1, "n0", "read", "k", on_done=lambda: cluster.schedule(cluster.now + 0.05, reader)
            )

    reader()
    cluster.run(4.0)
    assert written_at  # ok, or info when the holder's own quorum read outbid it
    stats = cluster.stats()
    assert sum(s.waited_out for s in stats.nodes) >= 1
    assert sum(s.lease_reads for s in stats.nodes) >= 5
    history = cluster.history()
    reads = [(e.time / 1e9, e.value) for e in history if e.type == "ok" and e.f == "read"]
    ones = [t for t, v in reads if v == 1]
    twos = [t for t, v in reads if v == 2]
    assert len(ones) >= 5
    assert twos
    assert max(ones) < min(twos)  # never 1 again once 2 was seen
    # the new value shows only after the leases granted before the write ran out
    assert min(twos) - start >= config.lease.holder_duration * 0.75
    result = check_linearizable(history, "register")
    assert result.verdict is Verdict.HOLDS


class _NoInvalidation(QuorumNode):
    """The broken variant: acknowledges writes without telling lease holders."""

    def _on_accept(self, now: float, sender: str, f: list[Any], out: list[Any]) -> None:
        _kind, key, raw, op_id, new = f
        self._state[key] = ((raw[0], raw[1]), (raw[0], raw[1]), new)
        out.append(Send(sender, encode(4, key, raw, op_id)))


def _stale_scenario(node_class: type[QuorumNode]) -> Verdict:
    cluster = SimCluster(3, seed=2, node_class=node_class)
    _settle(cluster)
    cluster.call(0, "n0", "write", "k", 1)
    cluster.run(0.1)
    cluster.call(1, "n0", "read", "k")
    cluster.run(0.1)
    cluster.call(0, "n1", "write", "k", 2)
    cluster.run(0.2)
    cluster.call(1, "n0", "read", "k")
    cluster.run(0.2)
    return check_linearizable(cluster.history(), "register").verdict


def test_the_checker_catches_a_lease_without_invalidation() -> None:
    assert _stale_scenario(_NoInvalidation) is Verdict.VIOLATED
    assert _stale_scenario(QuorumNode) is Verdict.HOLDS


def test_minority_holder_serves_until_its_lease_ends_then_refuses() -> None:
    config = QuorumConfig(lease=LeaseConfig(duration=1.0))
    cluster = SimCluster(5, seed=3, config=config)
    _settle(cluster)
    cluster.call(0, "n0", "write", "k", 1)
    cluster.run(0.1)
    cluster.call(0, "n0", "read", "k")
    cluster.run(0.05)
    cluster.partition(["n0", "n1"])
    cut_at = cluster.now
    times: list[tuple[float, str]] = []

    def reader() -> None:
        if cluster.now - cut_at < 3:
            cluster.call(
                1, "n0", "read", "k", on_done=lambda: cluster.schedule(cluster.now + 0.1, reader)
            )

    reader()
    cluster.call(2, "n2", "write", "k", 2)
    cluster.run(3.5)
    for e in cluster.history():
        if e.process == 1 and e.type != "invoke":
            times.append((e.time / 1e9 - cut_at, e.type))
    served = [t for t, kind in times if kind == "ok"]
    refused = [t for t, kind in times if kind == "fail"]
    assert served
    assert max(served) < config.lease.duration
    assert refused
    assert min(refused) >= config.lease.holder_duration * 0.5
    assert check_linearizable(cluster.history(), "register").verdict is Verdict.HOLDS


def test_crash_ends_calls_as_info_and_restart_recovers() -> None:
    cluster = SimCluster(3, seed=4)
    _settle(cluster)
    cluster.call(0, "n0", "write", "k", 1)
    cluster.crash("n0")
    cluster.crash("n0")  # twice is harmless
    cluster.call(1, "n0", "read", "k")  # a down node refuses
    assert [e.type for e in cluster.history()] == ["invoke", "info", "invoke", "fail"]
    cluster.restart("n0")
    cluster.restart("n0")
    cluster.run(0.5)
    cluster.call(2, "n0", "write", "k", 2)
    cluster.run(1.5)
    assert cluster.history()[-1].type == "ok"
    assert cluster.pending() == 0
    cluster.call(3, "n1", "read", "k")
    cluster.abandon()
    assert cluster.history()[-1].type == "info"
    assert "SimCluster nodes=3" in repr(cluster)


def test_cluster_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        SimCluster(0)
    with pytest.raises(ConfigurationError):
        SimCluster(3, delay=(1, 0))
    with pytest.raises(ConfigurationError):
        SimCluster(3, loss=1.5)
    cluster = SimCluster(3)
    with pytest.raises(ConfigurationError):
        cluster.call(0, "n0", "append", "k", 1)
    with pytest.raises(ConfigurationError):
        cluster.call(0, "n0", "cas", "k", [1])
    with pytest.raises(ConfigurationError):
        cluster.partition(["zz"])
    with pytest.raises(ConfigurationError):
        cluster.set_rate("n0", 0)


# ----------------------------------------------------------------------- chaos, many seeds


@pytest.mark.parametrize("nemesis", [n for n in NEMESES if n != "none"])
@pytest.mark.parametrize("seed", range(6))
def test_linearizable_under_every_nemesis(nemesis: str, seed: int) -> None:
    result = run_chaos("linearizable", nodes=3, ops=150, nemesis=nemesis, seed=seed)
    assert result.verdict is Verdict.HOLDS, result.detail
    assert result.counts["ok"] > 50


@pytest.mark.parametrize("seed", range(4))
def test_linearizable_on_five_nodes_with_loss_free_partitions_and_no_leases(seed: int) -> None:
    result = run_chaos("linearizable", nodes=5, ops=150, nemesis="mixed", seed=seed)
    assert result.verdict is Verdict.HOLDS, result.detail
    plain = run_chaos(
        "linearizable", nodes=3, ops=100, nemesis="partition", seed=seed, leases=False
    )
    assert plain.verdict is Verdict.HOLDS
    assert plain.lease_reads == 0


@settings(max_examples=25)
@given(st.integers(0, 2**32), st.floats(0, 0.2), st.sampled_from(["partition", "kill", "mixed"]))
def test_linearizable_with_message_loss(seed: int, loss: float, nemesis: str) -> None:
    cluster = SimCluster(3, seed=seed, loss=loss)
    rng = cluster.rng
    cluster.run(0.5)
    count = [0]

    def client(p: int) -> None:
        if count[0] >= 60:
            return
        count[0] += 1
        f = rng.choice(["read", "write", "cas"])
        value: Any = None if f == "read" else count[0]
        if f == "cas":
            value = [rng.choice([None, *range(1, count[0])]), count[0]]
        cluster.call(
            p,
            rng.choice(cluster.names),
            f,
            "k",
            value,
            on_done=lambda: cluster.schedule(cluster.now + 0.01, lambda: client(p)),
        )

    for p in range(3):
        client(p)
    if nemesis in ("partition", "mixed"):
        cluster.schedule(0.8, lambda: cluster.partition([rng.choice(cluster.names)]))
        cluster.schedule(1.6, cluster.heal)
    if nemesis in ("kill", "mixed"):
        victim = rng.choice(cluster.names)
        cluster.schedule(1.0, lambda: cluster.crash(victim))
        cluster.schedule(1.5, lambda: cluster.restart(victim))
    cluster.run(10.0)
    cluster.abandon()
    assert check_linearizable(cluster.history(), "register").verdict is Verdict.HOLDS


def test_chaos_argument_errors() -> None:
    with pytest.raises(ConfigurationError):
        run_chaos("strongest")
    with pytest.raises(ConfigurationError):
        run_chaos("linearizable", nemesis="meteor")
    with pytest.raises(ConfigurationError):
        run_chaos("linearizable", workload="bank")
    with pytest.raises(ConfigurationError):
        run_chaos("linearizable", ops=0)
    with pytest.raises(ConfigurationError):
        run_chaos("bounded")


def test_bounded_staleness_reads_stay_within_their_bound() -> None:
    config = QuorumConfig(lease=LeaseConfig(duration=0.5))
    cluster = SimCluster(3, seed=9, config=config)
    _settle(cluster)
    cluster.call(0, "n0", "write", "k", 1)
    cluster.run(0.1)
    cluster.call(1, "n0", "read", "k")
    cluster.run(0.05)
    cluster.partition(["n0"])
    cut = cluster.now
    acked: list[float] = []
    cluster.call(0, "n1", "write", "k", 2, on_done=lambda: acked.append(cluster.now))
    max_lag = 1.0
    served: list[tuple[float, Any]] = []

    def reader() -> None:
        if cluster.now - cut < 3:
            cluster.call(
                2,
                "n0",
                "read",
                "k",
                on_done=lambda: cluster.schedule(cluster.now + 0.1, reader),
                max_lag=max_lag,
            )

    reader()
    cluster.run(3.5)
    assert acked
    for e in cluster.history():
        if e.process == 2 and e.type == "ok":
            served.append((e.time / 1e9, e.value))
    assert served
    assert {v for _, v in served} == {1}  # n0 never heard of 2: it is cut off
    # ... and it served 1 only while write 2 was acknowledged less than max_lag ago (or not yet)
    assert all(t - max_lag <= acked[0] for t, _ in served)
    assert max(t for t, _ in served) - cut > config.lease.duration  # beyond the lease
    refused = [e for e in cluster.history() if e.process == 2 and e.type == "fail"]
    assert refused  # past the bound it needs the quorum, which it cannot reach
    with pytest.raises(ConfigurationError):
        cluster.node("n0").bounded_read("k", 0.0, -1.0)
    # in the majority, a bounded read of a fresh cache is served at once
    cluster.heal()
    cluster.run(0.5)
    cluster.call(3, "n1", "read", "k")
    cluster.run(0.1)
    cluster.call(3, "n1", "read", "k", max_lag=0.0)
    assert cluster.history()[-1].type == "ok"
    assert cluster.history()[-1].value == 2
