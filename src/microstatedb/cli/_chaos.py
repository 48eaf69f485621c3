"""``microstatedb chaos``: clients against a cluster under faults, with a history.

The cluster is simulated by default (virtual time, every fault replayable from the seed);
``--real`` starts one OS process per node talking HTTP on loopback and kills them.

Exit codes: 0 the level's promise held (linearizability, session guarantees or convergence),
1 it was violated (the explanation is printed), 2 an unknown option or choice, an option's
value out of range (the message names it), or an inconclusive check (time budget).
"""

from __future__ import annotations

import argparse
import json
import sys
from typing import Any


def register(sub: Any) -> None:
    """Add the ``chaos`` sub-command."""
    from microstatedb.cli._output import describe
    from microstatedb.runtime._chaos import NEMESES, WORKLOADS

    parser = sub.add_parser(
        "chaos",
        help="run clients against a cluster under faults and check the history",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--workload",
        choices=WORKLOADS,
        default="register",
        help="what the clients do: reads, writes and compare-and-sets on shared registers",
    )
    parser.add_argument(
        "--consistency",
        choices=("eventual", "causal", "linearizable"),
        default="linearizable",
        help="the level the clients ask for (default %(default)s)",
    )
    parser.add_argument(
        "--nodes", type=int, default=3, help="nodes in the cluster (default %(default)s)"
    )
    parser.add_argument(
        "--ops", type=int, default=300, help="client operations in total (default %(default)s)"
    )
    parser.add_argument(
        "--clients", type=int, default=5, help="concurrent clients (default %(default)s)"
    )
    parser.add_argument(
        "--keys", type=int, default=3, help="registers the clients share (default %(default)s)"
    )
    parser.add_argument(
        "--nemesis",
        choices=NEMESES,
        default="partition",
        help=(
            "the faults: a minority cut off (partition), crashed and restarted (kill), clock "
            "rates changed (clock-drift), messages delayed past the lease (delay), all of "
            "these (mixed), or none; clock-drift and delay act on linearizable runs only "
            "(default %(default)s)"
        ),
    )
    parser.add_argument(
        "--interval",
        type=float,
        default=1.0,
        help="virtual seconds between faults; wall seconds with --real (default %(default)s)",
    )
    parser.add_argument(
        "--seed", type=int, default=0, help="seed of every random choice (default %(default)s)"
    )
    parser.add_argument("--no-leases", action="store_true", help="every read is a quorum round")
    parser.add_argument("--history", help="write the history here as JSON Lines")
    parser.add_argument(
        "--real",
        action="store_true",
        help="one OS process per node over HTTP on loopback (linearizable; nemesis kill/none)",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    from microstatedb.cli._output import progress
    from microstatedb.errors import ConfigurationError
    from microstatedb.runtime._chaos import run_chaos, run_chaos_real
    from microstatedb.verify import Verdict

    if args.real and (args.consistency != "linearizable" or args.no_leases):
        raise ConfigurationError(
            "--real runs the linearizable registers with leases; drop --consistency "
            "and --no-leases, or run the simulator"
        )
    steps = max(args.ops, 0) + 2  # one per operation, then heal and check (run_chaos)
    with progress("client operations, heal, check", steps, enabled=not args.json) as advance:
        common: dict[str, Any] = {
            "nodes": args.nodes,
            "ops": args.ops,
            "nemesis": args.nemesis,
            "seed": args.seed,
            "clients": args.clients,
            "keys": args.keys,
            "interval": args.interval,
            "progress": advance,
        }
        if args.real:
            result = run_chaos_real(**common)
        else:
            result = run_chaos(
                args.consistency, workload=args.workload, leases=not args.no_leases, **common
            )
    if args.history:
        result.history.dump(args.history)
    summary = {
        "consistency": result.level.value,
        "nemesis": result.nemesis,
        "seed": result.seed,
        "checker": result.checker,
        "verdict": result.verdict.value,
        "anomalies": result.anomalies.value if result.anomalies is not None else None,
        "counts": result.counts,
        "faults": result.faults,
        "lease_reads": result.lease_reads,
        "virtual_seconds": round(result.virtual_seconds, 3),
        "detail": result.detail,
    }
    if args.json:
        print(json.dumps(summary))
    else:
        print(
            f"{result.level.value} under {result.nemesis} (seed {result.seed}): "
            f"{result.checker} {result.verdict.value}; ok {result.counts['ok']}, "
            f"fail {result.counts['fail']}, info {result.counts['info']}; "
            f"{result.faults} faults, {result.lease_reads} lease reads"
        )
        if result.anomalies is not None:
            print(f"linearizability of this weaker level's history: {result.anomalies.value}")
        print(result.detail)
    if result.verdict is Verdict.VIOLATED:
        return 1
    if result.verdict is Verdict.UNKNOWN:
        print("the check was inconclusive (time budget)", file=sys.stderr)
        return 2
    return 0
