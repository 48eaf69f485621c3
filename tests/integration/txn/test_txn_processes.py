"""The order, stock and payment example across real processes over loopback HTTP.

Stock and payment run as their own processes (``shop_service.py``) over durable stores; the
order service is this test's process. Payment is killed with SIGKILL in the middle of a saga
and restarted from its folder: the saga still ends fully compensated, and nothing ran twice.
"""

from __future__ import annotations

import asyncio
import json
import os
import signal
import socket
import subprocess
import sys
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from microstatedb.cli._txn import fetch
from microstatedb.protocols import Journal, SagaStep
from microstatedb.replica import Store
from microstatedb.runtime import TxnNode

pytestmark = pytest.mark.integration

HERE = Path(__file__).parent
sys.path.insert(0, str(HERE))
from shop_service import CONFIG, KEY  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


class Shop:
    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.ports = {n: free_port() for n in ("order", "stock", "payment")}
        self.urls = {n: f"http://127.0.0.1:{p}" for n, p in self.ports.items()}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def spawn(self, name: str) -> None:
        peers = {n: u for n, u in self.urls.items() if n != name}
        proc = subprocess.Popen(
            [
                sys.executable,
                str(HERE / "shop_service.py"),
                name,
                str(self.ports[name]),
                json.dumps(peers),
                str(self.tmp / name),
            ],
            stdout=subprocess.PIPE,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
        self.procs[name] = proc
        assert proc.stdout is not None
        line = proc.stdout.readline()  # stop_all reaps the process if this fails
        assert line.strip() == b"READY", line

    def kill(self, name: str) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def stop_all(self) -> None:
        for proc in self.procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in self.procs.values():
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
            if proc.stdout is not None:
                proc.stdout.close()
        self.procs.clear()


@pytest.fixture
async def shop(tmp_path: Path) -> AsyncIterator[tuple[Shop, TxnNode]]:
    s = Shop(tmp_path)
    store = Store("order", path=tmp_path / "order", durability="always")
    peers = {n: u for n, u in s.urls.items() if n != "order"}
    order = TxnNode(store, peers, key=KEY, config=CONFIG)
    try:
        s.spawn("stock")
        s.spawn("payment")
        await order.start(port=s.ports["order"])
        yield s, order
    finally:
        await order.stop()
        store.close()
        s.stop_all()


def steps(amount: int, order: str) -> list[SagaStep]:
    return [
        SagaStep("reserve", "stock", "reserve", 2),
        SagaStep("charge", "payment", "charge", amount),
    ]


async def test_three_services_in_real_processes(shop: tuple[Shop, TxnNode], tmp_path: Path) -> None:
    s, order = shop
    writes = {
        "order": [("register", "order:t1", "placed")],
        "stock": [("counter", "apples", -2)],
        "payment": [("counter", "balance", -5)],
    }
    assert (await order.commit("t1", writes)).status == "committed"
    too_many = {**writes, "stock": [("counter", "apples", -100)]}
    refused = await order.commit("t2", too_many)
    assert refused.status == "aborted"
    assert refused.detail["by"] == "stock"
    assert (await order.saga("s1", steps(5, "s1"))).status == "completed"
    declined = await order.saga("s2", steps(1000, "s2"))
    assert declined.status == "compensated"

    # Payment dies: the saga's charge gets no answer, so after its attempts the saga
    # compensates in reverse order; the charge's compensation waits for payment.
    s.kill("payment")
    run = asyncio.create_task(order.saga("s3", steps(5, "s3"), timeout=30))
    await asyncio.sleep(CONFIG.step_timeout * (CONFIG.step_attempts + 1))
    assert not run.done()
    s.spawn("payment")  # restarted from its folder
    end = await run
    assert end.status == "compensated"
    assert end.detail["status"] == "exhausted"
    charge = (await asyncio.to_thread(fetch, s.urls["payment"], "s3"))[1]
    # Either the charge never reached payment (null compensation, action now refused) or it
    # ran and was refunded: never charged without a refund.
    assert charge["b/charge/compensate"]["status"] in ("null", "ok")
    if charge["b/charge/compensate"]["status"] == "null":
        assert charge["b/charge/action"]["status"] == "refused"
    await asyncio.sleep(0.5)  # the last acknowledgements
    s.stop_all()

    with Store("stock", path=tmp_path / "stock") as stock:
        assert stock.counter("apples").value == 10 - 2 - 2  # t1 and s1
        assert Journal(stock).get("t2")["outcome/stock"]["commit"] is False
    with Store("payment", path=tmp_path / "payment") as payment:
        assert payment.counter("balance").value == -5 - 5  # t1 and s1
    assert order.store.register("order:t1").value == "placed"
    assert "order:t2" not in order.store.value()
