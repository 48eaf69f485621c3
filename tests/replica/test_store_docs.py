"""The code in docs/store.md runs, so the page cannot drift from the library."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

PAGE = Path(__file__).resolve().parents[2] / "docs" / "store.md"


def test_every_python_block_of_the_store_page_runs(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    blocks = re.findall(r"```python\n(.*?)```", PAGE.read_text(), flags=re.S)
    assert len(blocks) >= 2
    monkeypatch.chdir(tmp_path)  # the page writes under data/
    for block in blocks:
        namespace: dict[str, object] = {}
        exec(compile(block, str(PAGE), "exec"), namespace)
        for value in namespace.values():
            close = getattr(value, "close", None)
            if type(value).__name__ == "Store" and callable(close):
                close()
