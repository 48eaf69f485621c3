"""What ``--help`` says: every command readable as plain text, defaults shown, exit codes."""

from __future__ import annotations

import subprocess
import sys

import pytest

from microstatedb.cli import main
from microstatedb.cli._main import COMMANDS
from microstatedb.cli._output import describe

NAMES = [module.rsplit("._", 1)[1] for module in COMMANDS] + ["registry"]


def _help(argv: list[str], capsys: pytest.CaptureFixture[str]) -> str:
    with pytest.raises(SystemExit) as done:
        main([*argv, "--help"])
    assert done.value.code == 0
    return capsys.readouterr().out


def test_the_command_help_names_the_next_step_and_the_exit_codes(
    capsys: pytest.CaptureFixture[str],
) -> None:
    out = _help([], capsys)
    assert "'microstatedb COMMAND --help'" in out
    assert "start with 'demo'" in out
    assert "Exit codes: 0" in out


@pytest.mark.parametrize("name", NAMES)
def test_every_command_help_is_plain_text(name: str, capsys: pytest.CaptureFixture[str]) -> None:
    out = _help([name], capsys)
    assert out.startswith(f"usage: microstatedb {name}")
    assert "``" not in out  # docstring markup stays in the docstrings


def test_chaos_help_explains_every_option_and_its_default(
    capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("COLUMNS", "400")  # one line per option: no wrapped words
    out = _help(["chaos"], capsys)
    assert "(default partition)" in out
    assert "(default 300)" in out
    assert "reads, writes and compare-and-sets" in out
    assert "value out of range (the message names it)" in out


def test_describe_drops_the_label_and_the_quotes() -> None:
    doc = "``microstatedb check PROPERTY HISTORY``: check a history.\n\nSee ``--format``.\n"
    assert describe(doc) == "Check a history.\n\nSee --format.\n"
    assert describe("``mesh serve`` runs a node.") == "mesh serve runs a node."
    assert describe(None) == ""


def test_a_reader_that_leaves_early_gets_no_traceback() -> None:
    code = "from microstatedb.cli import main; raise SystemExit(main(['demo']))"
    with subprocess.Popen(
        [sys.executable, "-c", code], stdout=subprocess.PIPE, stderr=subprocess.PIPE
    ) as proc:
        assert proc.stdout is not None
        assert proc.stderr is not None
        proc.stdout.close()  # as `| head -0` does: every write meets a closed pipe
        err = proc.stderr.read().decode()
        assert proc.wait(timeout=60) == 1
    assert "Traceback" not in err
    assert "BrokenPipeError" not in err
