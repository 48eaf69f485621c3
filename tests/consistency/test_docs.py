"""The Python examples of docs/consistency.md run as written."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import microstatedb as msdb

DOC = Path(__file__).resolve().parents[2] / "docs" / "consistency.md"
BLOCKS = re.findall(r"```python\n(.*?)```", DOC.read_text(), flags=re.S)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) >= 3


@pytest.mark.parametrize("i", range(len(BLOCKS)))
def test_example_runs(i: int, capsys: pytest.CaptureFixture[str]) -> None:
    code = BLOCKS[i]
    if "await" in code:
        # a fragment of a coroutine: it must at least be valid inside one
        body = "\n".join("    " + line for line in code.splitlines())
        compile("async def _example():\n" + body, f"{DOC.name} block {i}", "exec")
        return
    namespace: dict[str, object] = {"store": msdb.Store("docs")}
    exec(compile(code, f"{DOC.name} block {i}", "exec"), namespace)
    if "print(exc)" in code:
        assert "strongly consistent" in capsys.readouterr().out
