"""The public surface is pinned: a change to it must change this test on purpose."""

from __future__ import annotations

import re
from pathlib import Path

import microstatedb as msdb


def test_all_is_pinned() -> None:
    assert sorted(msdb.__all__) == sorted(
        ["Consistency", "Store", "StoreStats", "__version__", "crdt", "errors", "sync"]
    )
    for name in msdb.__all__:
        assert hasattr(msdb, name)


def test_crdt_names_of_the_contract() -> None:
    for name in ("PNCounter", "LWWRegister", "MVRegister", "AWSet", "ORMap", "Document"):
        assert name in msdb.crdt.__all__
    c = msdb.crdt.PNCounter(replica="a")
    c.increment(2)
    assert c.value == 2


def test_every_error_is_a_microstate_error() -> None:
    for name in msdb.errors.__all__:
        assert issubclass(getattr(msdb.errors, name), msdb.errors.MicroStateError)


def test_consistency_levels() -> None:
    assert {c.name for c in msdb.Consistency} >= {"EVENTUAL", "CAUSAL", "LINEARIZABLE"}


def test_readme_code_runs() -> None:
    readme = (Path(__file__).parents[1] / "README.md").read_text()
    blocks = re.findall(r"```python\n(.*?)```", readme, re.S)
    assert blocks, "the README shows Python code"
    for block in blocks:
        exec(compile(block, "README.md", "exec"), {})


def test_importing_the_package_loads_nothing_else() -> None:
    import subprocess
    import sys

    code = (
        "import sys, microstatedb; "
        "print(sorted(m for m in sys.modules if m.startswith('microstatedb.')))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"  # the pytest plugin imports the package first


def test_the_pytest_plugin_is_registered() -> None:
    from importlib.metadata import entry_points

    names = {e.value for e in entry_points(group="pytest11")}
    assert "microstatedb.testing.plugin" in names


def test_unknown_attribute() -> None:
    import pytest

    with pytest.raises(AttributeError, match="no attribute"):
        _ = msdb.no_such_name  # type: ignore[attr-defined]
    assert "Store" in dir(msdb)
