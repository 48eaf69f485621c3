"""The plugin in a fresh project that only installs the package (built wheel, new venv)."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]

ENTRY_POINT = """
[project.entry-points.pytest11]
"microstatedb.testing.plugin" = "microstatedb.testing.plugin"
"""

USER_TESTS = """
import pytest
from hypothesis import given, settings, strategies as st
from microstatedb.testing import Cluster, crdt_ops, apply_op
from microstatedb.crdt import AWSet


@pytest.mark.msdb(nodes=4, seed=3, check="linearizable")
def test_cluster_and_history(msdb_cluster, msdb_nemesis, msdb_history):
    assert len(msdb_cluster.names) == 4
    msdb_nemesis.chaos(steps=4)
    msdb_cluster.settle()
    reg = msdb_cluster["n000"].register("status")
    msdb_history.call(0, "write", "status", "open", reg.set, "open")
    assert msdb_history.call(0, "read", "status", None, lambda: reg.value) == "open"


@settings(max_examples=20, deadline=None)
@given(ops=st.lists(crdt_ops("set"), max_size=5))
def test_strategies(ops):
    s = AWSet("a")
    for op in ops:
        apply_op(s, op)
    assert s.value <= {"x", "y", "z"}


def test_split_brain(msdb_cluster):
    a, b, c = msdb_cluster.names
    msdb_cluster.partition([a], [b, c])
    msdb_cluster.write(a)
    msdb_cluster.run(1.0)
    assert msdb_cluster.converged()
"""


def _run(args: list[str], cwd: Path, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    return subprocess.run(args, cwd=cwd, env=env, capture_output=True, text=True, timeout=400)


@pytest.mark.integration
def test_installing_the_wheel_enables_the_plugin(tmp_path: Path) -> None:
    uv = shutil.which("uv")
    assert uv is not None, "uv is needed to build the wheel"
    env = {
        k: v
        for k, v in os.environ.items()
        if not k.startswith(("VIRTUAL_ENV", "COV", "PYTEST", "UV_PROJECT", "HYPOTHESIS"))
    }
    project = tmp_path / "project"
    shutil.copytree(ROOT / "src", project / "src", ignore=shutil.ignore_patterns("__pycache__"))
    shutil.copy(ROOT / "README.md", project / "README.md")
    pyproject = (ROOT / "pyproject.toml").read_text()
    if "[project.entry-points.pytest11]" not in pyproject:
        pyproject += ENTRY_POINT  # what the package declares once the entry point is in
    (project / "pyproject.toml").write_text(pyproject)

    dist, venv, user = tmp_path / "dist", tmp_path / "venv", tmp_path / "user"
    built = _run([uv, "build", "--wheel", "--out-dir", str(dist), str(project)], tmp_path, env)
    assert built.returncode == 0, built.stderr
    [wheel] = dist.glob("microstatedb-*.whl")
    made = _run([uv, "venv", "--python", sys.executable, str(venv)], tmp_path, env)
    assert made.returncode == 0, made.stderr
    python = venv / "bin" / "python"
    installed = _run(
        [uv, "pip", "install", "--python", str(python), str(wheel), "pytest", "hypothesis"],
        tmp_path,
        env,
    )
    assert installed.returncode == 0, installed.stderr

    user.mkdir()
    (user / "test_user.py").write_text(USER_TESTS)
    ran = _run(
        [str(python), "-m", "pytest", "-p", "no:cacheprovider", "--strict-markers", "-q"],
        user,
        env,
    )
    out = ran.stdout
    assert "1 failed, 2 passed" in out, out + ran.stderr
    # The failing test reports its seed and schedule through the plugin.
    assert "msdb seed=" in out
    assert "('partition', (('n000',), ('n001', 'n002')))" in out
