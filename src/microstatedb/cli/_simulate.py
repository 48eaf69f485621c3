"""``microstatedb simulate``: the deterministic simulator on a mixed CRDT workload."""

from __future__ import annotations

import argparse
import json
from typing import Any


def register(sub: Any) -> None:
    parser = sub.add_parser(
        "simulate",
        help="run the deterministic replication simulator",
        description=(
            "Split a simulated fleet in two, write on both sides, heal, and measure how long "
            "the replicas take to converge. A run replays exactly from its seed."
        ),
    )
    parser.add_argument(
        "--nodes", type=int, default=10, help="nodes in the fleet (default %(default)s)"
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default %(default)s)"
    )
    parser.add_argument(
        "--partition-seconds",
        type=float,
        default=10.0,
        help="virtual seconds of the split (default %(default)s)",
    )
    parser.add_argument(
        "--loss", type=float, default=0.0, help="message loss probability (default %(default)s)"
    )
    parser.add_argument(
        "--duplicate", type=float, default=0.0, help="duplication probability (default %(default)s)"
    )
    parser.add_argument(
        "--writes-per-node",
        type=float,
        default=2.0,
        help="writes per node during the split (default %(default)s)",
    )
    parser.add_argument(
        "--timeout",
        type=float,
        default=600.0,
        help="virtual seconds to wait for convergence (default %(default)s)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from microstatedb.cli._output import progress
    from microstatedb.errors import ConfigurationError
    from microstatedb.runtime.sim import Simulation

    if not 0 <= args.loss < 1 or not 0 <= args.duplicate < 1:
        raise ConfigurationError("--loss and --duplicate are probabilities in [0, 1)")
    if args.partition_seconds < 0 or args.writes_per_node < 0:
        raise ConfigurationError("--partition-seconds and --writes-per-node must be >= 0")
    sim = Simulation(args.nodes, seed=args.seed, loss=args.loss, duplicate=args.duplicate)
    try:
        with progress("split, write, heal, converge", 3, enabled=not args.json) as advance:
            half = sim.names[: max(1, args.nodes // 2)]
            span = max(args.partition_seconds, 1.0)
            writes = args.nodes * args.writes_per_node
            if args.partition_seconds > 0:
                sim.partition(half)
            if writes > 0:
                sim.workload(rate=writes / span, until=sim.now + span)
            sim.run(span)
            advance()
            sim.heal()
            sim.loss = 0.0  # the heal: messages flow again
            advance()
            took = sim.run_until_converged(args.timeout)
            advance()
        report = sim.report()
    finally:
        sim.close()
    out = {
        "converged": report.converged,
        "nodes": report.nodes,
        "seed": report.seed,
        "virtual_seconds_to_converge": took,
        "messages": report.messages,
        "bytes": report.bytes,
        "events": report.events,
        "dropped": report.dropped,
        "duplicated": report.duplicated,
        "refused": report.refused,
        "lost_writes": report.lost_writes,
        "wall_seconds": round(report.wall_seconds, 3),
    }
    if args.json:
        print(json.dumps(out))
    else:
        for k, v in out.items():
            print(f"{k}: {v}")
        if not report.converged:
            print(f"did not converge: replay with --seed {args.seed}")
    return 0 if report.converged and report.lost_writes == 0 else 1
