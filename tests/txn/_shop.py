"""The order, stock and payment example shared by the transaction tests."""

from __future__ import annotations

from collections import Counter
from typing import Any

from microstatedb.protocols import Outcome, SagaStep, Write, failed, ok, retry
from microstatedb.replica import Store
from microstatedb.runtime import CrashPoint, TxnSim

NODES = ("order", "payment", "stock")
APPLES, BALANCE = 10, 100


def stock_check(store: Store, writes: list[Write]) -> Any:
    need = -sum(w[2] for w in writes if w[0] == "counter" and w[1] == "apples")
    return None if store.counter("apples").value >= need else "not enough apples"


def order_writes(n: int = 2, amount: int = 5, order: str = "1") -> dict[str, list[Write]]:
    return {
        "order": [("register", f"order:{order}", "placed")],
        "stock": [("counter", "apples", -n)],
        "payment": [("counter", "balance", -amount)],
    }


class Shop:
    """Saga handlers that count how often each body applied its effect."""

    def __init__(self, *, retries: int = 0) -> None:
        self.applied: Counter[tuple[str, str]] = Counter()
        self.retries_left = retries

    def _note(self, name: str, op: str, out: Outcome) -> Outcome:
        if out.status == "ok":
            self.applied[(name, op)] += 1
        return out

    def reserve(self, store: Store, n: int) -> Outcome:
        if store.counter("apples").value < n:
            return failed("out of stock")
        return self._note("reserve", "action", ok(("counter", "apples", -n)))

    def release(self, store: Store, n: int) -> Outcome:
        return self._note("reserve", "compensate", ok(("counter", "apples", n)))

    def charge(self, store: Store, amount: int) -> Outcome:
        if self.retries_left > 0:
            self.retries_left -= 1
            return retry("card processor busy")
        if amount > store.counter("balance").value + BALANCE:
            return failed("card declined")
        return self._note("charge", "action", ok(("counter", "balance", -amount)))

    def refund(self, store: Store, amount: int) -> Outcome:
        return self._note("charge", "compensate", ok(("counter", "balance", amount)))

    def confirm(self, store: Store, order: str) -> Outcome:
        return self._note("confirm", "action", ok(("register", f"order:{order}", "confirmed")))

    def cancel(self, store: Store, order: str) -> Outcome:
        return self._note("confirm", "compensate", ok(("register", f"order:{order}", "cancelled")))

    def handlers(self) -> dict[str, Any]:
        return {
            "stock": {"reserve": (self.reserve, self.release)},
            "payment": {"charge": (self.charge, self.refund)},
            "order": {"confirm": (self.confirm, self.cancel)},
        }


def saga_steps(n: int = 2, amount: int = 5, order: str = "1") -> list[SagaStep]:
    return [
        SagaStep("reserve", "stock", "reserve", n),
        SagaStep("charge", "payment", "charge", amount),
        SagaStep("confirm", "order", "confirm", order),
    ]


def make_sim(
    seed: int = 0,
    crashes: tuple[CrashPoint, ...] = (),
    *,
    shop: Shop | None = None,
    loss: float = 0.0,
    duplicate: float = 0.0,
    replica: bool = False,
) -> TxnSim:
    """The three services; with ``replica``, also order-r holding a replica of order's store."""
    sim = TxnSim(
        [*NODES, "order-r"] if replica else list(NODES),
        replicas={"order": ["order-r"]} if replica else None,
        seed=seed,
        checks={"stock": stock_check},
        handlers=(shop or Shop()).handlers(),
        crashes=crashes,
        loss=loss,
        duplicate=duplicate,
    )
    sim.stores["stock"].counter("apples").increment(APPLES)
    return sim


def replicate(sim: TxnSim) -> None:
    """Anti-entropy from order to order-r (one direction is all the replica needs)."""
    dst = sim.stores["order-r"]
    dst.apply(sim.stores["order"].events_since(dst.version_vector))
