"""Execute every notebook in notebooks/ headless, so none of them rots.

Each notebook ends with assertions about what its plots show (divergence during the
partition, convergence after the heal, the breaker's refusals...), so a behaviour change fails
here and not only in a reader's eyes. Notebooks are kept without outputs.
"""

from __future__ import annotations

import time
from pathlib import Path

import nbformat
import pytest
from nbclient import NotebookClient

NOTEBOOKS = sorted((Path(__file__).resolve().parents[2] / "notebooks").glob("*.ipynb"))


def test_the_four_notebooks_are_there() -> None:
    assert [p.name for p in NOTEBOOKS] == [
        "1-convergence.ipynb",
        "2-consistency-levels.ipynb",
        "3-circuit-breakers.ipynb",
        "4-saga-timeline.ipynb",
    ]


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_saved_without_outputs(path: Path) -> None:
    nb = nbformat.read(path, as_version=4)
    nbformat.validate(nb)
    for cell in nb.cells:
        if cell.cell_type == "code":
            assert cell.outputs == [], f"{path.name}: clear the outputs before committing"
            assert cell.execution_count is None


@pytest.mark.parametrize("path", NOTEBOOKS, ids=lambda p: p.stem)
def test_notebook_runs_and_plots(path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # the kernel inherits the environment: the inline backend is headless and turns each
    # plt.show() into a PNG output, which the test counts
    monkeypatch.setenv("MPLBACKEND", "module://matplotlib_inline.backend_inline")
    monkeypatch.setenv("PYTHONHASHSEED", "0")
    nb = nbformat.read(path, as_version=4)
    start = time.perf_counter()
    NotebookClient(
        nb, timeout=60, kernel_name="python3", resources={"metadata": {"path": str(path.parent)}}
    ).execute()
    took = time.perf_counter() - start
    assert took < 30, f"{path.name} took {took:.1f}s; keep each notebook fast"
    outputs = [o for c in nb.cells for o in c.get("outputs", [])]
    assert [o for o in outputs if o.output_type == "error"] == []
    assert [o for o in outputs if o.get("name") == "stderr"] == [], "warnings in the notebook"
    images = [o for o in outputs if "image/png" in o.get("data", {})]
    source = "\n".join(c.source for c in nb.cells if c.cell_type == "code")
    assert len(images) == source.count("plt.show()") >= 1
