"""The code in the log's docs pages runs."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

DOCS = Path(__file__).resolve().parents[2] / "docs"
PAGES = ["log-format.md", "durability.md", "recovery.md"]


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def test_the_format_page_has_an_example() -> None:
    assert _blocks("log-format.md")


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str) -> None:
    for code in _blocks(page):
        exec(compile(code, f"{page}", "exec"), {})
