"""The code in docs/stores.md runs against the real servers."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path

import pytest

pytestmark = pytest.mark.integration

PAGE = Path(__file__).resolve().parents[3] / "docs" / "stores.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_page_has_examples() -> None:
    assert len(BLOCKS) == 2


@pytest.mark.parametrize("index", range(len(BLOCKS)))
def test_example_runs(index: int, pg_dsn: str, stream_names: Callable[[], str]) -> None:
    scope: dict[str, object] = {"__name__": "docs_example", "DSN": pg_dsn}
    scope["STREAM"] = stream_names()
    try:
        exec(compile(BLOCKS[index], f"{PAGE.name}[{index}]", "exec"), scope)
    finally:
        for name in ("archive", "channel"):
            store = scope.get(name)
            if store is not None:
                store.close()  # type: ignore[attr-defined]
