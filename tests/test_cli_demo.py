from __future__ import annotations

import json

import pytest

from microstatedb.cli import main


def test_demo_converges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out.strip().splitlines()[-1])
    assert out["converged"] is True
    assert out["nodes"] == 3
    assert out["events"] == 12
    assert out["reconcile_seconds"] >= 0
    assert out["after"]["visits"] == 6
    # "vip" was removed on one side concurrently with an add on the other: the add wins
    assert out["after"]["tags"] == ["from-n000", "from-n001", "from-n002", "vip"]


def test_demo_shows_progress_and_ends_with_json(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--nodes", "4"]) == 0
    lines = capsys.readouterr().out.strip().splitlines()
    assert lines[0].startswith("started 4 in-memory stores")
    assert any(line.startswith("partition:") for line in lines)
    assert any(line.startswith("healing") for line in lines)
    summary = json.loads(lines[-1])
    assert summary["converged"] is True
    assert summary["nodes"] == 4


def test_demo_needs_two_nodes(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--nodes", "1"]) == 2  # bad input
    assert "at least 2" in capsys.readouterr().err


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
