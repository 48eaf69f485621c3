"""The asyncio transaction node: over MockTransport, over real HTTP, across a restart."""

from __future__ import annotations

import asyncio
import random
import time
from collections.abc import Callable
from pathlib import Path

import pytest

from microstatedb.cli._main import main
from microstatedb.cli._txn import fetch
from microstatedb.codec import open_envelope, packb, unpackb
from microstatedb.errors import ConfigurationError, DeadlineExceeded, Unavailable
from microstatedb.protocols import TxnConfig, TxnMessage, decode_txn_message, encode_txn_message
from microstatedb.replica import Store
from microstatedb.runtime import TxnNode
from microstatedb.transport import (
    MESSAGE_KIND,
    Authenticator,
    MockTransport,
    Request,
    Response,
)

from ._shop import APPLES, NODES, Shop, order_writes, saga_steps, stock_check

KEY = bytes(range(32))
FAST = TxnConfig(
    vote_timeout=0.3,
    retry_base=0.02,
    retry_max=0.1,
    query_after=0.1,
    step_timeout=0.2,
    step_attempts=3,
)


def mesh(
    drop: Callable[[Request], bool] = lambda r: False,
    stores: dict[str, Store] | None = None,
    shop: Shop | None = None,
) -> dict[str, TxnNode]:
    nodes: dict[str, TxnNode] = {}
    stores = stores or {n: Store(n) for n in NODES}
    handlers = (shop or Shop()).handlers()

    def handler(req: Request) -> Response:
        if drop(req):
            raise Unavailable("link cut")
        name = req.url.split("//")[1].split("/")[0]
        return Response(nodes[name].on_message(req.body))

    for i, n in enumerate(NODES):
        nodes[n] = TxnNode(
            stores[n],
            {p: f"http://{p}" for p in NODES if p != n},
            key=KEY,
            check=stock_check if n == "stock" else None,
            handlers=handlers.get(n),
            config=FAST,
            transport=MockTransport(handler),
            rng=random.Random(i),
        )
    return nodes


async def started(nodes: dict[str, TxnNode]) -> None:
    for node in nodes.values():
        await node.start(port=None)


async def stopped(nodes: dict[str, TxnNode]) -> None:
    for node in nodes.values():
        await node.stop()


async def test_commit_and_saga_over_a_mock_transport() -> None:
    nodes = mesh()
    nodes["stock"].store.counter("apples").increment(APPLES)
    await started(nodes)
    try:
        end = await nodes["order"].commit("t1", order_writes(order="t1"))
        assert end.status == "committed"
        no = await nodes["order"].commit("t2", order_writes(n=100, order="t2"))
        assert no.status == "aborted"
        saga = await nodes["order"].saga("s1", saga_steps(order="s1"))
        assert saga.status == "completed"
        bad = await nodes["order"].saga("s2", saga_steps(amount=10_000, order="s2"))
        assert bad.status == "compensated"
        await asyncio.sleep(0.1)  # the last acknowledgements
        assert nodes["stock"].store.counter("apples").value == APPLES - 4
        assert nodes["payment"].store.counter("balance").value == -10
        status = nodes["order"].status()
        assert status["coordinator"]["committed"] == 1
        assert status["orchestrator"]["compensated"] == 1
        assert nodes["stock"].status()["saga_runs"] == 3  # reserve twice, release once
    finally:
        await stopped(nodes)


async def test_an_unreachable_participant_aborts_and_the_caller_can_give_up() -> None:
    nodes = mesh(drop=lambda r: "payment" in r.url)
    nodes["stock"].store.counter("apples").increment(APPLES)
    await started(nodes)
    try:
        end = await nodes["order"].commit("t", order_writes())
        assert end.status == "aborted"
        assert end.detail == {"timeout": ["payment"]}
        assert nodes["order"].send_failures > 0
        with pytest.raises(DeadlineExceeded):
            await nodes["order"].saga("s", saga_steps(), timeout=0.05)
    finally:
        await stopped(nodes)


async def test_a_restarted_coordinator_finishes_what_it_decided(tmp_path: Path) -> None:
    cut = {"on": True}
    stores = {n: Store(n, path=tmp_path / n, durability="always") for n in NODES}
    stores["stock"].counter("apples").increment(APPLES)
    nodes = mesh(drop=lambda r: cut["on"] and _is_decide(r), stores=stores)
    again: Store | None = None
    await started(nodes)
    try:
        # Decisions are lost on the wire: participants stay in doubt, locks held.
        end = await nodes["order"].commit("t", order_writes())
        assert end.status == "committed"
        await asyncio.sleep(0.05)
        await nodes["order"].stop()
        stores["order"].close()
        cut["on"] = False
        again = Store("order", path=tmp_path / "order", durability="always")
        nodes["order"] = TxnNode(
            again,
            {p: f"http://{p}" for p in NODES if p != "order"},
            key=KEY,
            config=FAST,
            transport=nodes["stock"]._transport,
        )
        await nodes["order"].start(port=None)
        for _ in range(200):
            if nodes["payment"].store.counter("balance").value == -5:
                break
            await asyncio.sleep(0.01)
        assert nodes["payment"].store.counter("balance").value == -5
        assert nodes["stock"].host.participant.locks == {}
    finally:
        await stopped(nodes)
        for s in stores.values():
            s.close()
        if again is not None:
            again.close()


def _is_decide(req: Request) -> bool:
    # Peek into the sealed message with the shared key.
    fields = unpackb(open_envelope(req.body, MESSAGE_KIND, KEY))
    kinds = {decode_txn_message(m).kind for m in unpackb(fields[4])}
    return bool(kinds & {"decide", "answer"})


async def test_over_real_http_with_the_timeline(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    stores = {n: Store(n) for n in NODES}
    stores["stock"].counter("apples").increment(APPLES)
    nodes = {
        n: TxnNode(
            stores[n],
            {},
            key=KEY,
            check=stock_check if n == "stock" else None,
            handlers=Shop().handlers().get(n),
            config=FAST,
        )
        for n in NODES
    }
    for node in nodes.values():
        await node.start()
    urls = {n: f"http://127.0.0.1:{node.port}" for n, node in nodes.items()}
    for n, node in nodes.items():
        node.peers.update({p: u for p, u in urls.items() if p != n})
    try:
        assert (await nodes["order"].commit("t1", order_writes(order="t1"))).status == "committed"
        await asyncio.sleep(0.1)
        name, recs = await asyncio.to_thread(fetch, urls["stock"], "t1")
        assert name == "stock"
        assert recs["outcome/stock"]["commit"] is True
        args = ["txn", "show", "t1"] + [a for u in urls.values() for a in ("--node", u)]
        code = await asyncio.to_thread(main, args)
        out = capsys.readouterr().out
        assert code == 0
        assert "decided COMMIT" in out
        assert "stock prepared and voted YES" in out
        # Messages that fail authentication or decoding are refused.
        assert nodes["stock"].on_message(b"garbage") == 401
        auth = Authenticator("order", KEY, boot=time.time_ns() + 10**15)
        assert nodes["stock"].on_message(auth.seal("stock", b"\x93\x01\x02\x03")) == 400
        ok_msg = encode_txn_message(TxnMessage("query", "zz", "order", {"coordinator": "x"}))
        assert nodes["stock"].on_message(auth.seal("stock", ok_msg)) == 400  # not a batch
        assert nodes["stock"].on_message(auth.seal("stock", packb([ok_msg]))) == 204
        with pytest.raises(Unavailable):
            await asyncio.to_thread(fetch, "http://127.0.0.1:1", "t1", 0.5)
    finally:
        await stopped(nodes)


def test_a_node_may_not_list_itself() -> None:
    with pytest.raises(ConfigurationError):
        TxnNode(Store("a"), {"a": "http://x"}, key=KEY)
