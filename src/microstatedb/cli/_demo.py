"""``microstatedb demo``: two stores, concurrent writes on both, a merge, the values shown."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="two in-process stores write concurrently, then merge",
        description="Two stores write concurrently while apart, then sync and show one state.",
    )
    parser.add_argument("--json", action="store_true", help="print the result as JSON")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from microstatedb import Store, sync

    with Store("orders-1") as a, Store("orders-2") as b:
        a.counter("visits").increment(3)
        b.counter("visits").increment(2)
        a.set("tags").add("vip")
        b.set("tags").add("gold")
        b.set("tags").remove("vip")  # b never saw a's add: the add wins
        a.register("status").set("open")
        b.register("status").set("shipped")
        cart = a.map("cart:42")
        cart.counter("items").increment(2)
        b.map("cart:42").register("currency").set("EUR")
        before = {"orders-1": _plain(a.value()), "orders-2": _plain(b.value())}
        sync(a, b)
        after = _plain(a.value())
        same = a.digest() == b.digest()
    if args.json:
        print(json.dumps({"before": before, "after": after, "converged": same}, indent=2))
    else:
        for node, value in before.items():
            print(f"{node} before sync: {value}")
        print(f"both after sync:     {after}")
        print(f"digests equal: {same}")
    return 0 if same else 1


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, frozenset | set):
        return sorted(value, key=repr)
    if isinstance(value, tuple):
        return list(value)
    return value
