"""The asyncio driver of the consensus nodes and the durable acceptor file."""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import pytest

from microstatedb.errors import (
    ConfigurationError,
    CorruptData,
    Indeterminate,
    InvalidOperation,
    Unavailable,
)
from microstatedb.protocols import LeaseConfig, QuorumConfig, QuorumNode
from microstatedb.replica import Consistency, KeyModes
from microstatedb.runtime._cluster import AsyncQuorum, FileStorage
from microstatedb.transport import MockTransport, Request, Response
from microstatedb.verify import Recorder, Verdict, check_linearizable

KEY = bytes(range(32))
FAST = QuorumConfig(
    lease=LeaseConfig(duration=0.3, drift=0.01), heartbeat=0.02, suspect_after=0.15, timeout=0.6
)


# ----------------------------------------------------------------------------- file storage


def _load(path: Path) -> dict[object, object]:
    storage = FileStorage(path)
    try:
        return dict(storage.load())
    finally:
        storage.close()


def test_file_storage_survives_reopening_and_compacts(tmp_path: Path) -> None:
    path = tmp_path / "acceptor.log"
    storage = FileStorage(path)
    storage.save("k", (1, "a.0"), (1, "a.0"), {"v": 1})
    storage.save("k", (2, "b.0"), (1, "a.0"), {"v": 1})
    storage.save(("t", 1), (1, "a.0"), (0, ""), None)
    storage.close()
    again = FileStorage(path, fsync=False)
    assert again.load() == {
        "k": ((2, "b.0"), (1, "a.0"), {"v": 1}),
        ("t", 1): ((1, "a.0"), (0, ""), None),
    }
    size = path.stat().st_size
    again.compact()
    assert path.stat().st_size < size
    again.save("k", (3, "c.0"), (3, "c.0"), 5)
    again.close()
    assert _load(path)["k"] == ((3, "c.0"), (3, "c.0"), 5)


def test_file_storage_cuts_a_torn_tail_and_refuses_corruption(tmp_path: Path) -> None:
    path = tmp_path / "acceptor.log"
    storage = FileStorage(path)
    storage.save("k", (1, "a.0"), (1, "a.0"), 1)
    storage.save("k", (2, "a.0"), (2, "a.0"), 2)
    storage.close()
    data = path.read_bytes()
    path.write_bytes(data[:-3])  # a crash in the middle of the last write
    assert _load(path)["k"][2] == 1  # type: ignore[index]
    assert path.stat().st_size < len(data)
    path.write_bytes(data[:5])  # a torn header
    assert _load(path) == {}
    bad = bytearray(data)
    bad[14] ^= 0xFF  # a flipped byte in the first record
    path.write_bytes(bytes(bad))
    with pytest.raises(CorruptData):
        FileStorage(path)


def test_a_node_restarted_from_its_file_keeps_its_promises(tmp_path: Path) -> None:
    path = tmp_path / "a.log"
    disk = FileStorage(path)
    first = QuorumNode("a", ["a", "b", "c"], now=0.0, rng=random.Random(0), storage=disk)
    from microstatedb.protocols._quorum import encode

    first.receive(0.0, "b", encode(1, "k", [5, "b.0"], 1))  # promise ballot 5
    disk.close()
    disk = FileStorage(path)
    restarted = QuorumNode(
        "a", ["a", "b", "c"], now=1.0, rng=random.Random(0), storage=disk, epoch=1
    )
    out = restarted.receive(1.0, "c", encode(1, "k", [4, "c.0"], 1))  # a lower ballot
    from microstatedb.protocols import message_kind

    assert [message_kind(o.payload) for o in out] == ["reject"]  # type: ignore[union-attr]
    disk.close()


# --------------------------------------------------------------------------- asyncio nodes


class _Net:
    """Routes requests to in-process nodes; ``down`` nodes are unreachable."""

    def __init__(self) -> None:
        self.nodes: dict[str, AsyncQuorum] = {}
        self.down: set[str] = set()

    def handler(self, request: Request) -> Response:
        name = request.url.split("//")[1].split("/")[0]
        if name in self.down:
            raise Unavailable(f"{name} is unreachable")
        return Response(self.nodes[name].on_message(request.body))


async def _cluster(n: int = 3) -> tuple[_Net, list[AsyncQuorum]]:
    net = _Net()
    names = [f"n{i}" for i in range(n)]
    transport = MockTransport(net.handler)
    nodes = []
    for i, name in enumerate(names):
        peers = {m: f"http://{m}" for m in names if m != name}
        node = AsyncQuorum(
            name,
            peers,
            key=KEY,
            transport=transport,
            config=FAST,
            rng=random.Random(i),
            lease_table_lost=False,
            epoch=1,
        )
        net.nodes[name] = node
        nodes.append(node)
    for node in nodes:
        await node.start()
    await asyncio.sleep(0.08)  # first pings
    return net, nodes


async def test_async_nodes_read_write_cas_and_lease_reads() -> None:
    _net, (a, b, c) = await _cluster()
    try:
        await a.write("k", 1)
        assert await b.read("k") == 1
        assert await c.cas("k", 1, 2) is True
        assert await a.cas("k", 1, 3) is False
        assert await b.update("k", lambda v: v * 10) == 20
        assert await b.read("k") == 20
        await asyncio.sleep(0.01)  # the lease grants arrive
        assert b.lease_read("k") == (True, 20)
        assert await b.read("k", consistency=Consistency.BOUNDED, max_lag=1.0) == 20
        with pytest.raises(InvalidOperation):
            await b.read("k", consistency=Consistency.CAUSAL)
        with pytest.raises(ConfigurationError):
            await b.read("k", consistency=Consistency.BOUNDED)
        with pytest.raises(ConfigurationError):
            await b.read("k", max_lag=1.0)
        b.modes = KeyModes({"acct:": "linearizable"})
        with pytest.raises(InvalidOperation, match="CRDT-replicated"):
            await b.write("cart:1", 5)
        await b.write("acct:1", 5)
        assert b.node.stats().lease_reads >= 1
    finally:
        for node in (a, b, c):
            await node.stop()


async def test_async_history_is_linearizable() -> None:
    _net, nodes = await _cluster()
    rec = Recorder()
    rng = random.Random(3)
    counter = [0]

    async def client(p: int) -> None:
        for _ in range(15):
            node = rng.choice(nodes)
            f = rng.choice(["read", "read", "write", "cas"])
            counter[0] += 1
            v = counter[0]
            try:
                if f == "read":
                    await rec.acall(p, "read", "k", None, node.read, "k")
                elif f == "write":
                    await rec.acall(p, "write", "k", v, node.write, "k", v)
                else:
                    exp = rng.randrange(v)
                    await rec.acall(p, "cas", "k", [exp, v], node.cas, "k", exp, v)
            except (Unavailable, Indeterminate):
                pass

    try:
        await asyncio.gather(*(client(p) for p in range(4)))
    finally:
        for node in nodes:
            await node.stop()
    assert check_linearizable(rec.history(), "register").verdict is Verdict.HOLDS


async def test_async_minority_refuses_and_unknown_outcomes_are_indeterminate() -> None:
    net, (a, b, c) = await _cluster()
    try:
        await a.write("k", 1)
        net.down |= {"n1", "n2"}
        await asyncio.sleep(0.2)  # a stops hearing from them
        with pytest.raises(Unavailable):
            await a.write("k", 2)
        net.down.clear()
        await asyncio.sleep(0.1)
        # b and c promise, then become unreachable before the accept: unknown outcome
        stopped = asyncio.ensure_future(a.write("k", 3))
        await asyncio.sleep(0)
        net.down |= {"n1", "n2"}
        for node in (b, c):
            await node.stop()
        with pytest.raises((Indeterminate, Unavailable)):
            await stopped
        assert a.on_message(b"garbage") in (400, 401)
    finally:
        for node in (a, b, c):
            await node.stop()


def test_async_node_configuration_errors() -> None:
    with pytest.raises(ConfigurationError):
        AsyncQuorum("a", {"a": "http://a"}, key=KEY)
