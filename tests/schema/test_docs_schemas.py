"""The code on docs/schemas.md runs, and every numbered evolution rule has an example."""

from __future__ import annotations

import re
import textwrap
from pathlib import Path

import pytest

PAGE = (Path(__file__).parents[2] / "docs" / "schemas.md").read_text()
BLOCKS = [textwrap.dedent(b) for b in re.findall(r"```python\n(.*?)```", PAGE, re.S)]


def rules() -> list[str]:
    section = PAGE.split("## Evolution rules", 1)[1].split("\n## ", 1)[0]
    return re.split(r"\n(?=\d+\. )", "\n" + section.strip())[1:]


def test_every_rule_has_an_example() -> None:
    found = rules()
    assert len(found) >= 12
    for number, rule in enumerate(found, start=1):
        assert rule.startswith(f"{number}. ")
        assert "```python" in rule, f"rule {number} has no example"


@pytest.mark.parametrize("code", BLOCKS, ids=[f"block{i}" for i in range(len(BLOCKS))])
def test_block_runs(code: str, capsys: pytest.CaptureFixture[str]) -> None:
    exec(compile(code, "docs/schemas.md", "exec"), {})
