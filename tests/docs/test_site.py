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
PAGES = ["index.md", "guides/embedding.md", "guides/operating.md"]


def _blocks(page: str) -> list[str]:
    return re.findall(r"```python\n(.*?)```", (DOCS / page).read_text(), flags=re.S)


def test_site_builds_strict(tmp_path: Path) -> None:
    done = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "-q", "-d", str(tmp_path / "site")],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 0, done.stderr
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
    assert _blocks("guides/embedding.md")
    assert _blocks("guides/operating.md")


@pytest.mark.parametrize("page", PAGES)
def test_python_blocks_run(page: str) -> None:
    # the blocks of one page share a namespace, as a reader copying them in order would
    namespace: dict[str, object] = {"__name__": "__docs__"}
    for code in _blocks(page):
        exec(compile(code, page, "exec"), namespace)
