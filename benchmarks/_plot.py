"""One figure per benchmark: our measured figures beside the baseline measured in the same run.

``plot(name, title, *panels)`` draws ``docs/img/performance/<name>.svg`` and returns the
Markdown line that shows it, which the benchmark puts in its page under the table it draws.
A panel is one table of the page: a horizontal bar per row and measure (p50 and p99, or the
table's main measure), the baseline rows in grey, each row's ratio to its baseline (as the
table gives it) beside its bars, and a log scale when the values span orders of magnitude.

The same figures draw the same bytes (fixed SVG ids, no date in the metadata), so a re-run
changes a file only when a figure changed. Text stays text in the SVG (not glyph outlines):
the files are small and their labels can be searched. A benchmark's ``--no-write`` calls
``writing(False)``, which leaves the files alone. matplotlib is a dev dependency; it is
imported only when a figure is drawn.
"""

from __future__ import annotations

import textwrap
from collections.abc import Callable, Collection, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

IMG = Path(__file__).resolve().parent.parent / "docs" / "img" / "performance"
LINK = "img/performance"
"""Where the figures are from docs/performance.md and docs/performance-<name>.md alike."""
DRAWN: list[str] = []
"""The Markdown line of every figure drawn in this process, in order (for the runner)."""
_writing = True

OURS = ("#1f5fa6", "#6f9fd8", "#b9d0ee")
BASELINE = ("#4d4d4d", "#959595", "#cfcfcf")
LOG_SPAN = 20.0
"""A log scale when the largest value is at least this many times the smallest."""


@dataclass(frozen=True)
class Panel:
    """One chart of a figure: a group of bars per row of a table, one bar per measure."""

    title: str
    """Above the chart; empty when the figure's title says it all."""
    axis: str
    """The value axis label, with its unit (``"µs per operation"``)."""
    rows: Sequence[str]
    """Row labels, top to bottom, as in the table."""
    values: Mapping[str, Sequence[float]]
    """Measure name (``"p50"``, ``"p99"``, ``"events/s"``...) to one value per row."""
    baselines: Collection[str] = ()
    """The labels of the baseline rows, drawn in grey."""
    notes: Sequence[str] = ()
    """Text beside each row's bars, such as its ratio to the baseline; empty for none."""


def from_rows(
    rows: Sequence[Sequence[str]],
    measures: Mapping[str, int],
    *,
    axis: str,
    label: Sequence[int] | Callable[[Sequence[str]], str] = (0,),
    baselines: Collection[int] = (0,),
    note: Callable[[Sequence[str]], str] | None = None,
    title: str = "",
) -> Panel:
    """A panel from the rows of a table as the benchmark builds them (lists of cells).

    ``measures`` names the columns to draw (``{"p50": 1, "p99": 2}``), ``label`` the columns
    joined into a row's label (or makes it from the row), ``baselines`` the indexes of the
    baseline rows, and ``note`` makes the text beside a row (``lambda r: r[4]`` for its ratio
    column). A cell is read as its number, with thousands separators and a trailing ``x`` or
    ``×`` dropped.
    """
    if callable(label):
        names = [label(r) for r in rows]
    else:
        names = [", ".join(r[i] for i in label) for r in rows]
    return Panel(
        title,
        axis,
        names,
        {m: [_number(r[i]) for r in rows] for m, i in measures.items()},
        baselines=[names[i] for i in baselines],
        notes=[note(r) for r in rows] if note else (),
    )


def image(name: str, title: str) -> str:
    """The Markdown line that shows figure ``name`` from a page in docs/."""
    return f"![{title}]({LINK}/{name}.svg)"


def writing(enabled: bool) -> None:
    """Whether ``plot`` writes its file: a benchmark's ``--no-write`` leaves the plots alone."""
    global _writing
    _writing = enabled


def plot(name: str, title: str, *panels: Panel, folder: Path = IMG) -> str:
    """Draw ``panels`` under ``title`` into ``folder/<name>.svg``; return its Markdown line."""
    line = image(name, title)
    DRAWN.append(line)
    if not _writing:
        return line
    import matplotlib
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure

    heights = [0.9 + 0.2 * len(p.rows) * len(p.values) + (0.25 if p.title else 0) for p in panels]
    # fixed SVG ids, and text kept as text (see the module's docstring)
    with matplotlib.rc_context(
        {
            "svg.hashsalt": "msdb",
            "svg.fonttype": "none",
            "font.family": "sans-serif",
            "font.size": 9,
        }
    ):
        fig = Figure(figsize=(10, 0.5 + sum(heights)), layout="constrained")
        FigureCanvasAgg(fig)
        axes = fig.subplots(len(panels), 1, squeeze=False, height_ratios=heights)[:, 0]
        for ax, panel in zip(axes, panels, strict=True):
            _draw(ax, panel)
        fig.suptitle(title, fontsize=11, fontweight="bold")
        folder.mkdir(parents=True, exist_ok=True)
        fig.savefig(folder / f"{name}.svg", format="svg", metadata={"Date": None})
    return line


def _draw(ax: Any, panel: Panel) -> None:
    from matplotlib.patches import Patch
    from matplotlib.ticker import FuncFormatter

    measures = list(panel.values)
    for measure in measures:
        if len(panel.values[measure]) != len(panel.rows):
            raise ValueError(f"{panel.title or 'panel'}: {measure} needs one value per row")
    everything = [v for m in measures for v in panel.values[m]]
    positive = [v for v in everything if v > 0]
    log = bool(positive) and max(positive) >= LOG_SPAN * min(positive)
    top = max(everything, default=0.0) or 1.0
    height = 0.8 / len(measures)
    base = [label in panel.baselines for label in panel.rows]
    for j, measure in enumerate(measures):
        offset = (j - (len(measures) - 1) / 2) * height
        ys = [i + offset for i in range(len(panel.rows))]
        colours = [(BASELINE if b else OURS)[j % 3] for b in base]
        ax.barh(ys, panel.values[measure], height=height, color=colours)
        for i, (y, value) in enumerate(zip(ys, panel.values[measure], strict=True)):
            text = _fmt(value)
            if j == 0 and i < len(panel.notes) and panel.notes[i]:
                text += f"   ({panel.notes[i]})"
            at = value if value > 0 or not log else min(positive)
            ax.annotate(
                text, (at, y), xytext=(3, 0), textcoords="offset points", va="center", fontsize=7
            )
    ax.set_yticks(
        range(len(panel.rows)), [textwrap.fill(r.replace("`", ""), 44) for r in panel.rows]
    )
    ax.set_ylim(len(panel.rows) - 0.5, -0.5)  # the table's first row on top
    if log:
        ax.set_xscale("log")
        ax.set_xlim(min(positive) / 2, top * 12)
    else:
        ax.set_xlim(0, top * 1.4)
    ax.xaxis.set_major_formatter(FuncFormatter(lambda v, _: _tick(v)))
    ax.set_xlabel(panel.axis + (" (log scale)" if log else ""))
    if panel.title:
        ax.set_title(panel.title, loc="left", fontsize=10)
    ax.grid(axis="x", which="major", alpha=0.3)
    ax.set_axisbelow(True)
    ax.spines[["top", "right"]].set_visible(False)
    handles = [Patch(color=OURS[j % 3], label=m) for j, m in enumerate(measures)]
    if any(base):
        handles += [
            Patch(color=BASELINE[j % 3], label=f"{m}, baseline") for j, m in enumerate(measures)
        ]
    ax.legend(handles=handles, loc="upper left", bbox_to_anchor=(1.01, 1.0), frameon=False)


def _fmt(value: float) -> str:
    if abs(value) >= 1000:
        return f"{value:,.0f}"
    if abs(value) >= 100:
        return f"{value:.0f}"
    if abs(value) >= 10:
        return f"{value:.1f}"
    return f"{value:.2f}"


def _tick(value: float) -> str:
    return f"{int(value):,}" if value == int(value) else f"{value:g}"


def _number(cell: str) -> float:
    return float(cell.replace(",", "").rstrip("x× "))
