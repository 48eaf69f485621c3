"""Shared output of the sub-commands: tables for people, ``--json`` for scripts, progress bars.

Tables and progress bars come from rich. Progress goes to stderr and only when stderr is a
terminal, so a script that reads stdout (or ``--json``) never sees it.
"""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any, Protocol

from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Table


class Advance(Protocol):
    def __call__(self, steps: int = 1) -> None: ...


def add_json_flag(parser: Any) -> None:
    """Add the ``--json`` flag every result-printing sub-command shares."""
    parser.add_argument(
        "--json", action="store_true", help="print one JSON object instead of tables"
    )


def describe(doc: str | None) -> str:
    """A command module's docstring as its ``--help`` text: no reST quotes, no name label."""
    text, labelled = re.subn(r"^``microstatedb [^`]*``:\s*", "", doc or "")
    if labelled:
        text = text[:1].upper() + text[1:]
    return text.replace("``", "")


def print_json(data: Any) -> None:
    """One JSON object on one line; values JSON does not know are shown by their repr."""
    print(json.dumps(data, default=_jsonable, sort_keys=True))


def _jsonable(value: Any) -> Any:
    if isinstance(value, bytes):
        return value.hex()
    if isinstance(value, frozenset | set):
        return sorted(value, key=repr)
    return repr(value)


def print_table(title: str, columns: Sequence[str], rows: Sequence[Sequence[Any]]) -> None:
    """A table on stdout; the console is made per call so redirected stdout is honoured."""
    table = Table(title=title, title_justify="left", show_edge=False)
    for column in columns:
        table.add_column(column)
    for row in rows:
        table.add_row(*(str(cell) for cell in row))
    Console(file=sys.stdout, width=max(100, _width())).print(table)


def _width() -> int:
    return Console(file=sys.stdout).width


@contextmanager
def progress(description: str, total: int | None, *, enabled: bool = True) -> Iterator[Advance]:
    """A progress bar on stderr for long work; a no-op when disabled or stderr is no terminal."""
    if not enabled or not sys.stderr.isatty():

        def nothing(steps: int = 1) -> None:
            return None

        yield nothing
        return
    bar = Progress(
        TextColumn("{task.description}"),
        BarColumn(),
        TextColumn("{task.completed}/{task.total}"),
        TimeElapsedColumn(),
        console=Console(file=sys.stderr),
        transient=True,
        # lines printed meanwhile go above the bar when stdout is the terminal too; when
        # stdout is a pipe or a file they stay there rather than move to the bar's stderr
        redirect_stdout=sys.stdout.isatty(),
    )
    with bar:
        task = bar.add_task(description, total=total)

        def advance(steps: int = 1) -> None:
            bar.advance(task, steps)

        yield advance
