"""The code of docs/transactions.md runs, block after block, in one namespace."""

from __future__ import annotations

import asyncio
import re
from pathlib import Path

DOC = Path(__file__).parents[2] / "docs" / "transactions.md"


def test_transactions_page_runs() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert len(blocks) == 2
    namespace: dict[str, object] = {"__name__": "docs_transactions"}
    exec(compile(blocks[0], str(DOC), "exec"), namespace)
    # The second block calls asyncio.run, so the test itself is synchronous.
    code = compile(blocks[1], str(DOC), "exec")
    exec(code, namespace)
    sim = namespace["sim"]
    assert sim.finished["t1"].status == "committed"  # type: ignore[attr-defined]
    assert sim.stats().crashes == 1  # type: ignore[attr-defined]
    assert asyncio.iscoroutinefunction(namespace["main"])
