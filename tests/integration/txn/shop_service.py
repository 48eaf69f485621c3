"""One service of the order/stock/payment example as a real process.

``python shop_service.py NAME PORT PEERS_JSON DATA_DIR``: a ``TxnNode`` over a durable store
in DATA_DIR, serving on PORT, until SIGTERM. Prints ``READY`` once it listens.
"""

from __future__ import annotations

import asyncio
import json
import signal
import sys
from typing import Any

from microstatedb.protocols import Outcome, TxnConfig, Write, failed, ok
from microstatedb.replica import Store
from microstatedb.runtime import TxnNode

KEY = bytes(range(32))
APPLES = 10
CONFIG = TxnConfig(
    vote_timeout=0.5, retry_base=0.05, retry_max=0.3, query_after=0.3, step_timeout=0.5
)


def stock_check(store: Store, writes: list[Write]) -> Any:
    need = -sum(w[2] for w in writes if w[0] == "counter" and w[1] == "apples")
    return None if store.counter("apples").value >= need else "not enough apples"


def reserve(store: Store, n: int) -> Outcome:
    if store.counter("apples").value < n:
        return failed("out of stock")
    return ok(("counter", "apples", -n))


def release(store: Store, n: int) -> Outcome:
    return ok(("counter", "apples", n))


def charge(store: Store, amount: int) -> Outcome:
    if amount > 100 + store.counter("balance").value:
        return failed("card declined")
    return ok(("counter", "balance", -amount))


def refund(store: Store, amount: int) -> Outcome:
    return ok(("counter", "balance", amount))


HANDLERS = {"stock": {"reserve": (reserve, release)}, "payment": {"charge": (charge, refund)}}


async def serve(name: str, port: int, peers: dict[str, str], path: str) -> None:
    store = Store(name, path=path, durability="always")
    if name == "stock" and "apples" not in store:
        store.counter("apples").increment(APPLES)
    node = TxnNode(
        store,
        peers,
        key=KEY,
        check=stock_check if name == "stock" else None,
        handlers=HANDLERS.get(name),
        config=CONFIG,
    )
    await node.start(port=port)
    print("READY", flush=True)
    stop = asyncio.Event()
    asyncio.get_running_loop().add_signal_handler(signal.SIGTERM, stop.set)
    await stop.wait()
    await node.stop()
    store.close()


if __name__ == "__main__":
    asyncio.run(serve(sys.argv[1], int(sys.argv[2]), json.loads(sys.argv[3]), sys.argv[4]))
