"""``microstatedb demo``: a few stores split apart, write on every side, heal and merge.

The stores are the embedded default (in memory) and replicate through the real anti-entropy
protocol over the simulated network, so the demo runs anywhere in a second. The last line is
one JSON object (``converged``, ``nodes``, ``events``, ``reconcile_seconds``, ...).
"""

from __future__ import annotations

import argparse
import json
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from microstatedb.replica import Store


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "demo",
        help="stores split apart, write on every side, heal and merge",
        description=(
            "Start a few in-memory stores, partition them, write on every side, heal the "
            "network and show the merge. The last line is a JSON summary."
        ),
    )
    parser.add_argument(
        "--nodes", type=int, default=3, help="stores to start, at least 2 (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=1, help="seed of the simulated network (default %(default)s)"
    )
    parser.add_argument("--json", action="store_true", help="print only the JSON summary")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from microstatedb.cli._output import progress
    from microstatedb.errors import ConfigurationError
    from microstatedb.runtime import plain
    from microstatedb.runtime.sim import Simulation

    if args.nodes < 2:
        raise ConfigurationError("--nodes must be at least 2 to show a partition")

    def say(line: str) -> None:
        if not args.json:
            print(line, flush=True)

    sim = Simulation(args.nodes, seed=args.seed)
    try:
        with progress("start, split and write, heal and merge", 3, enabled=not args.json) as step:
            names = sim.names
            left, right = names[:1], names[1:]
            say(f"started {len(names)} in-memory stores: {', '.join(names)}")
            sim.run(2.0)
            step()
            sim.partition(left, right)
            say(
                f"partition: {', '.join(left)} | {', '.join(right)} (each side keeps taking writes)"
            )
            for i, name in enumerate(names):
                sim.write(name, _writes(i, name))
            # a remove on one side of an add it never saw: the add wins after the merge
            sim.write(right[0], lambda s: s.set("tags").add("vip"))
            sim.write(left[0], lambda s: s.set("tags").add("vip"))
            sim.run(1.0)
            sim.write(right[0], lambda s: s.set("tags").remove("vip"))
            sim.run(5.0)
            before = {n: plain(sim.store(n).value()) for n in (left[0], right[0])}
            for side, node in (("left", left[0]), ("right", right[0])):
                say(f"  {node} ({side} side) during the split: {before[node]}")
            step()
            say("healing the network...")
            sim.heal()
            start = time.perf_counter()
            took = sim.run_until_converged(timeout=120.0, check_every=0.1)
            reconcile = time.perf_counter() - start
            step()
        report = sim.report()
        after = plain(sim.store(names[0]).value())
        events = sum(sim.store(names[0]).version_vector.values())
        say(f"converged after {took} virtual seconds ({reconcile * 1000:.1f} ms of wall time)")
        say(f"  every store now: {after}")
    finally:
        sim.close()
    summary = {
        "converged": report.converged,
        "nodes": report.nodes,
        "events": events,
        "reconcile_seconds": round(reconcile, 6),
        "virtual_seconds_to_converge": took,
        "messages": report.messages,
        "bytes": report.bytes,
        "before": before,
        "after": after,
    }
    print(json.dumps(summary))
    return 0 if report.converged else 1


def _writes(i: int, name: str) -> Callable[[Store], None]:
    def op(store: Store) -> None:
        store.counter("visits").increment(i + 1)
        store.set("tags").add(f"from-{name}")
        store.register("status").set(f"set by {name}")

    return op
