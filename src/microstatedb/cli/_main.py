"""Entry point: builds the argument parser from the sub-command modules and runs one.

Exit codes: 0 success or property holds, 1 property violated or command failed (the error
is printed), 2 bad input (an unknown option, a missing argument, an option value out of range,
a malformed file, an invalid schema).
"""

from __future__ import annotations

import argparse
import importlib
import os
import sys
from collections.abc import Sequence

from microstatedb.errors import ConfigurationError, MicroStateError

# Sub-command modules; each defines register(subparsers) which sets a `run(args) -> int` default.
COMMANDS: tuple[str, ...] = (
    "microstatedb.cli._demo",
    "microstatedb.cli._check",
    "microstatedb.cli._schema",
    "microstatedb.cli._serve",
    "microstatedb.cli._simulate",
    "microstatedb.cli._chaos",
    "microstatedb.cli._mesh",
    "microstatedb.cli._txn",
    "microstatedb.cli._inspect",
    "microstatedb.cli._bench",
)


EPILOG = """\
'microstatedb COMMAND --help' describes a command and its options; start with 'demo'.
Exit codes: 0 success or the property holds; 1 the property is violated, damage was found
or the command failed (the message says what to do); 2 bad input. docs/cli.md has more.
"""


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="microstatedb",
        description="Embedded, event-sourced, replicated state for microservices.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name in COMMANDS:
        importlib.import_module(name).register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if not hasattr(args, "run"):
        parser.print_help()
        return 2
    try:
        code: int = args.run(args)
    except ConfigurationError as exc:  # an option value the command cannot take: bad input
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except MicroStateError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 1
    except BrokenPipeError:
        # the reader left (`microstatedb demo | head`): drop the rest quietly, and point stdout
        # at devnull so that the flush at exit does not fail on the closed pipe again
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 1
    return code
