"""``microstatedb check linearizable|causal|sessions HISTORY``: check a recorded history.

Exit codes: 0 the property holds, 1 it is violated (the explanation is printed), 2 the history
is malformed (the line at fault is printed) or the search was inconclusive (timeout).
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

from microstatedb.errors import ConfigurationError, DataError
from microstatedb.verify import (
    FORMATS,
    GUARANTEES,
    LEVELS,
    MODELS,
    History,
    Verdict,
    check_causal,
    check_linearizable,
    check_sessions,
)

PROPERTIES = ("linearizable", "causal", "sessions")


def register(subparsers: Any) -> None:
    """Add the ``check`` sub-command."""
    from microstatedb.cli._output import describe

    parser = subparsers.add_parser(
        "check",
        help="check a history for linearizability, causal consistency or session guarantees",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("property", choices=PROPERTIES, help="what to check")
    parser.add_argument("history", help="the history file")
    parser.add_argument(
        "--format",
        choices=FORMATS,
        default=None,
        help="history form (default: from the suffix: .edn, .log = jepsen-log, else jsonl)",
    )
    parser.add_argument(
        "--model",
        choices=sorted(MODELS),
        default="register",
        help="sequential model for linearizable (default: register)",
    )
    parser.add_argument(
        "--level", choices=LEVELS, default="cc", help="causal level for causal (default: cc)"
    )
    parser.add_argument(
        "--guarantee",
        action="append",
        choices=GUARANTEES,
        help="session guarantee to check (repeatable; default: all four)",
    )
    parser.add_argument(
        "--timeout", type=float, default=None, help="seconds before giving up (exit 2)"
    )
    parser.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Check the history; returns the exit code."""
    try:
        history = History.load(args.history, args.format)
        return _check(args, history)
    except (DataError, ConfigurationError) as exc:
        print(f"malformed history {args.history}: {exc}", file=sys.stderr)
        return 2
    except OSError as exc:
        print(f"cannot read {args.history}: {exc.strerror or exc}", file=sys.stderr)
        return 2


def _check(args: argparse.Namespace, history: History) -> int:
    if args.property == "linearizable":
        result = check_linearizable(history, args.model, timeout=args.timeout)
        stats = result.stats
        summary = (
            f"{stats.operations} operations in {stats.partitions} parts,"
            f" {stats.configurations} configurations, {stats.elapsed:.3f}s"
        )
        if result.verdict is Verdict.HOLDS:
            print(f"linearizable ({args.model}): {summary}")
            return 0
        if result.verdict is Verdict.UNKNOWN:
            parts = ", ".join(repr(k) for k in result.unknown_partitions)
            print(f"inconclusive: the search ran out of time on {parts} ({summary})")
            return 2
        print(f"NOT linearizable ({args.model}): {summary}")
        if result.explanation is not None:
            print(result.explanation.text)
        return 1
    if args.property == "causal":
        causal = check_causal(history, args.level)
        if causal.ok:
            print(f"causally consistent ({args.level.upper()})")
            return 0
        print(f"NOT causally consistent ({args.level.upper()}):")
        for pattern in causal.patterns:
            print(f"  {pattern.name}: {pattern.text}")
        return 1
    sessions = check_sessions(history, args.guarantee or GUARANTEES)
    if sessions.ok:
        print("session guarantees hold: " + ", ".join(args.guarantee or GUARANTEES))
        return 0
    print("session guarantees violated:")
    for guarantee, count in sessions.counts.items():
        if count:
            print(f"  {guarantee}: {count}")
    for violation in sessions.violations:
        print(f"  {violation.text}")
    return 1
