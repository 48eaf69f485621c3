from __future__ import annotations

import json

import pytest

from microstatedb.cli import main


def test_demo_converges(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["converged"] is True
    assert out["after"]["visits"] == 5
    assert out["after"]["tags"] == ["gold", "vip"]  # the concurrent add of "vip" wins


def test_demo_text(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["demo"]) == 0
    assert "digests equal: True" in capsys.readouterr().out


def test_no_command_prints_help(capsys: pytest.CaptureFixture[str]) -> None:
    assert main([]) == 2
    assert "usage" in capsys.readouterr().out
