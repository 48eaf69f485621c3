"""The code in docs/operations.md runs, so the page cannot drift from the library."""

from __future__ import annotations

import logging
import re
from pathlib import Path

from microstatedb import observability as obs

PAGE = Path(__file__).resolve().parents[2] / "docs" / "operations.md"
BLOCKS = re.findall(r"```python\n(.*?)```", PAGE.read_text(encoding="utf-8"), re.DOTALL)


def test_the_example_runs() -> None:
    assert len(BLOCKS) == 1
    scope: dict[str, object] = {"__name__": "docs_example"}
    try:
        exec(compile(BLOCKS[0], PAGE.name, "exec"), scope)
        assert obs.metrics_enabled()
        assert obs.tracing_enabled()
        assert scope["registry"] is obs.metrics.registry()
    finally:
        logging.getLogger("microstatedb").removeHandler(scope["handler"])  # type: ignore[arg-type]
        obs.disable_metrics()
        obs.disable_tracing()
