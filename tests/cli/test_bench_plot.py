"""The benchmarks' plots (benchmarks/_plot.py): one SVG per benchmark, the same bytes each run."""

from __future__ import annotations

import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from types import ModuleType

import pytest

ROOT = Path(__file__).resolve().parents[2]
PLOT = ROOT / "benchmarks" / "_plot.py"
TITLE = "Demo writes: latency per operation"
# rows as a benchmark builds them for its table: label, p50, p99, ratio
ROWS = [
    ["plain dict (baseline)", "0.26", "0.31", "1.00×"],
    ["Store in memory", "1.73", "2.06", "4.91×"],
    ["Store durable `always`", "2,000.50", "5,000.00", "7,000.0×"],
]
# the same drawing in a fresh process, with another hash seed: what a re-run does
DRAW = """
import importlib.util, sys
from pathlib import Path
spec = importlib.util.spec_from_file_location("_plot", sys.argv[1])
plot = sys.modules["_plot"] = importlib.util.module_from_spec(spec)
spec.loader.exec_module(plot)
rows = {rows!r}
panel = plot.from_rows(rows, {{"p50": 1, "p99": 2}}, axis="µs per operation", note=lambda r: r[3])
plot.plot("demo", {title!r}, panel, folder=Path(sys.argv[2]))
"""


@pytest.fixture(scope="module")
def plotting() -> Iterator[ModuleType]:
    # the benchmarks are scripts beside the package, not part of it: load the module by path
    name = "_bench_plot_under_test"
    spec = importlib.util.spec_from_file_location(name, PLOT)
    assert spec is not None
    assert spec.loader is not None
    module = sys.modules[name] = importlib.util.module_from_spec(spec)  # for its dataclass
    try:
        spec.loader.exec_module(module)
        yield module
    finally:
        del sys.modules[name]


def _draw(plotting: ModuleType, folder: Path) -> str:
    panel = plotting.from_rows(
        ROWS, {"p50": 1, "p99": 2}, axis="µs per operation", note=lambda r: r[3]
    )
    line: str = plotting.plot("demo", TITLE, panel, folder=folder)
    return line


def test_plot_writes_an_svg_with_its_title_labels_and_link(
    plotting: ModuleType, tmp_path: Path
) -> None:
    line = _draw(plotting, tmp_path)
    svg = (tmp_path / "demo.svg").read_text(encoding="utf-8")
    assert svg.startswith("<?xml")
    assert "<svg" in svg
    for text in (
        TITLE,
        "µs per operation (log scale)",  # 0.26 to 5,000 spans orders of magnitude
        "plain dict (baseline)",
        "Store in memory",
        "Store durable always",  # the table's code marks are dropped
        "p50, baseline",
        "p99",
        "1.73   (4.91×)",
        "5,000",
    ):
        assert text in svg, text
    assert "<dc:date>" not in svg
    # the page links the figure with a path that is right from any page in docs/
    assert line == f"![{TITLE}](img/performance/demo.svg)"
    assert plotting.IMG == ROOT / "docs" / plotting.LINK
    assert plotting.DRAWN[-1] == line


def test_plot_is_byte_identical_when_drawn_again(plotting: ModuleType, tmp_path: Path) -> None:
    _draw(plotting, tmp_path / "first")
    _draw(plotting, tmp_path / "second")
    first = (tmp_path / "first" / "demo.svg").read_bytes()
    assert (tmp_path / "second" / "demo.svg").read_bytes() == first
    done = subprocess.run(
        [sys.executable, "-c", DRAW.format(rows=ROWS, title=TITLE), str(PLOT), str(tmp_path)],
        env={**os.environ, "PYTHONHASHSEED": "1"},
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert (tmp_path / "demo.svg").read_bytes() == first


def test_panels_share_a_figure_each_with_its_own_scale(
    plotting: ModuleType, tmp_path: Path
) -> None:
    throughput = plotting.Panel(
        "Archive throughput",
        "events per second",
        ["folder", "postgres"],
        {"events/s": [12_000.0, 30_000.0]},
        baselines=["folder"],
    )
    latency = plotting.from_rows(ROWS, {"p50": 1, "p99": 2}, axis="µs per operation")
    plotting.plot("two", "Two tables", throughput, latency, folder=tmp_path)
    svg = (tmp_path / "two.svg").read_text(encoding="utf-8")
    assert "Archive throughput" in svg
    assert "events per second<" in svg  # linear: 12,000 to 30,000 is no span for a log scale
    assert "µs per operation (log scale)" in svg
    assert "events/s, baseline" in svg


def test_a_measure_needs_one_value_per_row(plotting: ModuleType, tmp_path: Path) -> None:
    short = plotting.Panel("short", "µs", ["a", "b"], {"p50": [1.0]})
    with pytest.raises(ValueError, match="p50 needs one value per row"):
        plotting.plot("short", "Short", short, folder=tmp_path)


def test_no_write_leaves_the_files_alone(plotting: ModuleType, tmp_path: Path) -> None:
    plotting.writing(False)
    try:
        line = _draw(plotting, tmp_path)
    finally:
        plotting.writing(True)
    assert line == f"![{TITLE}](img/performance/demo.svg)"
    assert not (tmp_path / "demo.svg").exists()
