"""The asyncio runtime: nodes over MockTransport and over real HTTP on loopback."""

from __future__ import annotations

import asyncio
import random
from collections.abc import Callable

import pytest

import microstatedb as msdb
from microstatedb.errors import ConfigurationError
from microstatedb.protocols import AntiEntropyConfig, PeerDown
from microstatedb.runtime import Node, plain
from microstatedb.transport import MockTransport, Request, Response

KEY = bytes(range(32))
FAST = AntiEntropyConfig(interval=0.02, request_timeout=0.5)


def mesh(names: list[str], drop: Callable[[str], bool] = lambda url: False) -> dict[str, Node]:
    nodes: dict[str, Node] = {}

    def handler(req: Request) -> Response:
        if drop(req.url):
            return Response(503)
        name = req.url.split("//")[1].split("/")[0]
        return Response(nodes[name].on_message(req.body))

    for i, n in enumerate(names):
        nodes[n] = Node(
            n,
            msdb.Store(n),
            {p: f"http://{p}" for p in names if p != n},
            key=KEY,
            transport=MockTransport(handler),
            config=FAST,
            rng=random.Random(i),
            boot=1,
        )
    return nodes


async def wait_for(cond: Callable[[], bool], timeout: float = 5.0) -> None:
    deadline = asyncio.get_running_loop().time() + timeout
    while not cond():
        assert asyncio.get_running_loop().time() < deadline, "condition not met in time"
        await asyncio.sleep(0.01)


async def test_nodes_converge_over_a_mock_transport() -> None:
    nodes = mesh(["a", "b", "c"])
    for node in nodes.values():
        await node.start(port=None)
    try:
        nodes["a"].store.counter("x").increment(2)
        nodes["b"].store.set("s").add("v")
        await wait_for(lambda: len({n.store.digest() for n in nodes.values()}) == 1)
        assert nodes["c"].store.counter("x").value == 2
        status = nodes["c"].status()
        assert status["value"] == {"s": ["v"], "x": 2}
        assert status["auth"]["accepted"] > 0
        assert status["refused"] == 0
    finally:
        for node in nodes.values():
            await node.stop()


async def test_refusals_get_their_status_codes() -> None:
    nodes = mesh(["a", "b"])
    a, b = nodes["a"], nodes["b"]
    assert a.on_message(b"garbage") == 401
    stranger = Node("zed", msdb.Store("zed"), {"a": "http://a"}, key=KEY, boot=1)
    assert a.on_message(stranger.auth.seal("a", b"")) == 403
    assert a.on_message(b.auth.seal("a", b"\x93bad")) == 400
    assert a.refused == 3
    assert a.store.stats().events_applied == 0
    await stranger.stop()
    with pytest.raises(ConfigurationError):
        Node("a", msdb.Store("a"), {"a": "http://a"}, key=KEY)


async def test_unreachable_peers_never_block_local_writes() -> None:
    nodes = mesh(["a", "b"], drop=lambda url: True)
    a = nodes["a"]
    a.protocol = type(a.protocol)("a", a.store, ["b"], rng=random.Random(1), config=FAST, now=0.0)
    await a.start(port=None)
    try:
        for _ in range(100):
            a.store.counter("x").increment()
        await wait_for(lambda: a.send_failures > 3)
        a.tick()
        assert a.store.counter("x").value == 100
    finally:
        await a.stop()
    await nodes["b"].stop()


async def test_silent_peer_is_reported_down() -> None:
    nodes = mesh(["a", "b"], drop=lambda url: True)
    a = nodes["a"]
    await a.start(port=None)
    try:
        await wait_for(lambda: any(isinstance(e, PeerDown) for _, e in a.effects), timeout=10)
    finally:
        await a.stop()


async def test_two_nodes_over_real_http() -> None:
    nodes = {
        n: Node(n, msdb.Store(n), {p: "http://unset" for p in "ab" if p != n}, key=KEY, config=FAST)
        for n in "ab"
    }
    for node in nodes.values():
        await node.start("127.0.0.1", 0, dev_api=True)  # the OS picks the port
    nodes["a"].peers["b"] = f"http://127.0.0.1:{nodes['b'].port}"
    nodes["b"].peers["a"] = f"http://127.0.0.1:{nodes['a'].port}"
    try:
        assert (await nodes["a"].write({"type": "counter", "key": "x", "n": 3}))["ok"]
        assert (await nodes["b"].write({"type": "set", "key": "s", "add": "v"}))["ok"]
        assert (await nodes["b"].write({"type": "set", "key": "s", "remove": "v"}))["ok"]
        assert (await nodes["b"].write({"type": "register", "key": "r", "value": 1}))["ok"]
        assert "error" in await nodes["a"].write({"type": "nope", "key": "x"})
        assert "error" in await nodes["a"].write({"type": "counter", "key": ""})
        assert "error" in await nodes["a"].write({"type": "set", "key": "x", "add": 1})
        await wait_for(lambda: nodes["a"].store.digest() == nodes["b"].store.digest())
        assert nodes["b"].store.counter("x").value == 3
    finally:
        for node in nodes.values():
            await node.stop()
            node.store.close()


def test_plain_values() -> None:
    assert plain({"a": frozenset({2, 1}), "b": (1, [2])}) == {"a": [1, 2], "b": [1, [2]]}
