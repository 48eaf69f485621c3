from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from microstatedb.cli import main
from microstatedb.cli._bench import find_runner

# A stand-in runner that records how it was called, so the command's plumbing is tested
# without spending minutes on the real benchmarks.
RUNNER = """
import json, os, sys
from pathlib import Path
seed = os.environ["PYTHONHASHSEED"]
Path("called.json").write_text(json.dumps({"argv": sys.argv[1:], "seed": seed}))
raise SystemExit(3 if "--only" in sys.argv and "broken" in sys.argv else 0)
"""


def _clone(tmp_path: Path) -> Path:
    (tmp_path / "benchmarks").mkdir()
    (tmp_path / "benchmarks" / "run.py").write_text(RUNNER)
    return tmp_path


def test_finds_the_runner_from_a_folder_below_the_clone(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    below = clone / "src" / "microstatedb"
    below.mkdir(parents=True)
    assert find_runner(below) == clone / "benchmarks" / "run.py"
    assert find_runner(clone) == clone / "benchmarks" / "run.py"


def test_bench_passes_options_and_runs_in_the_clone(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    assert main(["bench", "--root", str(clone), "--quick", "--only", "store"]) == 0
    called = json.loads((clone / "called.json").read_text())
    assert called == {"argv": ["--quick", "--only", "store"], "seed": "0"}


def test_bench_failure_is_exit_1(tmp_path: Path) -> None:
    clone = _clone(tmp_path)
    assert main(["bench", "--root", str(clone), "--only", "broken"]) == 1


def test_bench_outside_a_clone_says_what_to_do(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    assert main(["bench"]) == 2
    assert "run this from a clone" in capsys.readouterr().err
    assert os.listdir(tmp_path) == []
