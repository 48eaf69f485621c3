"""Run every benchmark and write docs/performance.md.

    uv run python benchmarks/run.py            # full run (several minutes)
    uv run python benchmarks/run.py --quick    # smoke run with small sizes
    uv run python benchmarks/run.py --only store

Each ``bench_*.py`` besides the store's is a standalone script that writes its own
``docs/performance-<name>.md``; this runner runs them in turn and gathers every page into
docs/performance.md, so one command refreshes all figures. Every benchmark also draws its
plot (``_plot.plot``) into docs/img/performance/<name>.svg and links it from its page; the
store's plots are linked here, under its section.
"""

from __future__ import annotations

import argparse
import datetime as dt
import os
import platform
import subprocess
import sys
from pathlib import Path

HERE = Path(__file__).resolve().parent
DOCS = HERE.parent / "docs"

HEADER = """# Performance

Figures from `uv run python benchmarks/run.py` on this project's standard machine (2 cores,
24 GiB, Python {python}), {date}. Every figure is the median over repeated runs, and every
comparison is a ratio against a baseline measured in the same run: these machines are noisy,
so single runs and absolute numbers from other machines mean little. Latencies are per
operation, in microseconds.

Each benchmark has a plot under its tables, drawn by the same command from the same run: a
bar per row and measure (p50 and p99, or the benchmark's main measure), ours in blue and the
baseline in grey, each row's ratio to its baseline beside its bars, on a log scale where the
values span orders of magnitude. The plots are SVG files in docs/img/performance/.

"""


def _others() -> list[str]:
    return sorted(
        p.stem.removeprefix("bench_") for p in HERE.glob("bench_*.py") if p.stem != "bench_store"
    )


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawTextHelpFormatter
    )
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--only", action="append", help="run only these benchmarks (repeatable)")
    args = parser.parse_args(argv)
    wanted = set(args.only or ["store", *_others()])
    sections: list[str] = []
    failed: list[str] = []
    if "store" in wanted:
        print("== store", flush=True)
        sys.path.insert(0, str(HERE))
        import _plot
        import bench_store

        drawn = len(_plot.DRAWN)
        bench_store.main(["--quick"] if args.quick else [])
        plots = "\n\n".join(_plot.DRAWN[drawn:])
        sections.append(
            "## The single-node store\n\n"
            + bench_store.main.report  # type: ignore[attr-defined]
            + (f"\n### Plots\n\n{plots}\n" if plots else "")
        )
    for name in _others():
        if name not in wanted:
            continue
        print(f"== {name}", flush=True)
        cmd = [sys.executable, str(HERE / f"bench_{name}.py")]
        if args.quick and "--quick" in (HERE / f"bench_{name}.py").read_text():
            cmd.append("--quick")
        done = subprocess.run(cmd, check=False, env={**os.environ, "PYTHONHASHSEED": "0"})
        if done.returncode != 0:
            failed.append(name)
    for page in sorted(DOCS.glob("performance-*.md")):
        name = page.stem.removeprefix("performance-")
        body = page.read_text().split("\n", 1)
        title = body[0].lstrip("# ").strip() or name
        sections.append(f"## {title}\n\n(from [{page.name}]({page.name}))\n\n{body[1].strip()}\n")
    text = HEADER.format(
        python=platform.python_version(), date=dt.date.today().isoformat()
    ) + "\n".join(sections)
    (DOCS / "performance.md").write_text(text)
    print(f"wrote {DOCS / 'performance.md'}")
    if failed:
        print(f"benchmarks that failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
