"""``microstatedb bench``: run every benchmark and rewrite docs/performance.md.

The benchmarks live beside the package in a clone of the repository (``benchmarks/``), not in
the installed wheel; this command finds ``benchmarks/run.py`` from the current folder upward
(or under ``--root``) and runs it with this interpreter.

Exit codes: 0 every benchmark ran, 1 one failed (named on stderr), 2 no benchmarks found.
"""

from __future__ import annotations

import argparse
import os
import subprocess
import sys
from pathlib import Path
from typing import Any


def register(sub: Any) -> None:
    from microstatedb.cli._output import describe

    parser = sub.add_parser(
        "bench",
        help="run every benchmark and rewrite docs/performance.md",
        description=describe(__doc__),
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument(
        "--quick",
        action="store_true",
        help="small sizes: a smoke run (it rewrites the pages too, with its figures)",
    )
    parser.add_argument(
        "--only",
        action="append",
        metavar="NAME",
        help="run only this benchmark (repeatable): store, replication, resilience, ...",
    )
    parser.add_argument(
        "--root", default=None, help="the repository clone (default: found from the current folder)"
    )
    parser.set_defaults(run=run)


def find_runner(start: Path) -> Path | None:
    """``benchmarks/run.py`` in ``start`` or the nearest folder above it that has one."""
    for folder in (start, *start.parents):
        candidate = folder / "benchmarks" / "run.py"
        if candidate.is_file():
            return candidate
    return None


def run(args: argparse.Namespace) -> int:
    start = Path(args.root) if args.root is not None else Path.cwd()
    runner = find_runner(start.resolve())
    if runner is None:
        print(
            f"error: no benchmarks/run.py in {start} or above it; the benchmarks ship with the "
            "repository, not the package: run this from a clone (or pass --root CLONE)",
            file=sys.stderr,
        )
        return 2
    cmd = [sys.executable, str(runner)]
    if args.quick:
        cmd.append("--quick")
    for name in args.only or ():
        cmd += ["--only", name]
    # the benchmarks hash strings: a fixed seed keeps runs comparable
    env = {**os.environ, "PYTHONHASHSEED": "0"}
    done = subprocess.run(cmd, cwd=runner.parent.parent, env=env, check=False)
    return 0 if done.returncode == 0 else 1
