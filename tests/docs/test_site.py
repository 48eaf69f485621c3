"""The documentation site builds with warnings as errors, and the code in its pages runs."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
DOCS = ROOT / "docs"
# The pages this suite owns; other pages' examples run in their packages' tests.
LEVELS = ["levels/eventual.md", "levels/causal.md", "levels/bounded.md", "levels/linearizable.md"]
PAGES = [
    "index.md",
    "concepts.md",
    *LEVELS,
    "guides/embedding.md",
    "guides/operating.md",
    "guides/mesh.md",
    "guides/schema-migration.md",
]


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def test_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        # not -q: it silences the warnings that --strict turns into a failure
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert "WARNING" not in done.stderr, done.stderr
    # the API reference is generated from the docstrings
    reference = (tmp_path / "site" / "reference" / "replica" / "index.html").read_text()
    assert 'id="microstatedb.replica.Store"' in reference
    assert (tmp_path / "site" / "comparison" / "index.html").is_file()


def test_every_reference_page_names_a_public_package() -> None:
    import importlib

    for page in sorted((DOCS / "reference").glob("*.md")):
        (target,) = re.findall(r"^::: (\S+)$", page.read_text(), flags=re.M)
        assert importlib.import_module(target).__name__ == target


def test_guides_have_examples() -> None:
    for page in PAGES:
        assert _blocks(page), page


def test_owned_pages_are_in_the_nav() -> None:
    # other pages may build before they are placed (omitted_files: info); these may not
    nav = re.findall(r":\s+(\S+\.md)\s*$", (ROOT / "mkdocs.yml").read_text(), flags=re.M)
    assert set(PAGES) <= set(nav), sorted(set(PAGES) - set(nav))


@pytest.mark.parametrize("page", LEVELS)
def test_level_pages_answer_the_same_questions(page: str) -> None:
    # each level states its guarantee, cost, partition behaviour, checker and proof
    headings = re.findall(r"^## (.+)$", (DOCS / page).read_text(), flags=re.M)
    assert headings[:4] == [
        "The guarantee",
        "What it costs",
        "In a partition",
        "Verified by and proved by",
    ]
    assert headings[4].startswith("Example")
    text = (DOCS / page).read_text()
    partition = text.split("## In a partition")[1].split("\n## ")[0].lower()
    assert "minority" in partition
    assert "majority" in partition


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str) -> None:
    # the blocks of one page share a namespace, as a reader copying them in order would
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for code in _blocks(page):
        exec(compile(code, page, "exec"), namespace)
