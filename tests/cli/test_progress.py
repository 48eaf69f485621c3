"""Progress bars of ``demo`` and ``chaos``: drawn on a terminal's stderr, never on stdout."""

from __future__ import annotations

import io
import json
import re
import sys

import pytest

from microstatedb.cli import main
from microstatedb.runtime import run_chaos


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def _run(argv: list[str], monkeypatch: pytest.MonkeyPatch, *, terminal: bool) -> tuple[str, str]:
    """Run a command with stdout captured and stderr a terminal (or not): (stdout, stderr)."""
    out = io.StringIO()
    err = _Terminal() if terminal else io.StringIO()
    monkeypatch.setattr(sys, "stdout", out)
    monkeypatch.setattr(sys, "stderr", err)
    assert main(argv) == 0
    monkeypatch.undo()
    return out.getvalue(), err.getvalue()


def _wall_time_free(out: str) -> list[str]:
    """The demo's output without the wall time it measured, which differs from run to run."""
    lines = [re.sub(r"\(\d+\.\d ms of wall time\)", "(...)", line) for line in out.splitlines()]
    summary = json.loads(lines[-1])
    del summary["reconcile_seconds"]
    return [*lines[:-1], json.dumps(summary)]


def test_demo_draws_its_phases_on_a_terminal_and_leaves_stdout_alone(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    out, err = _run(["demo"], monkeypatch, terminal=True)
    assert "start, split and write, heal and merge" in err
    assert "3/3" in err
    assert "started 3 in-memory stores" not in err  # the narrative stays on stdout
    plain_out, plain_err = _run(["demo"], monkeypatch, terminal=False)
    assert plain_err == ""
    assert _wall_time_free(out) == _wall_time_free(plain_out)


def test_demo_json_draws_nothing(monkeypatch: pytest.MonkeyPatch) -> None:
    out, err = _run(["demo", "--json"], monkeypatch, terminal=True)
    assert err == ""
    (line,) = out.splitlines()
    assert json.loads(line)["converged"] is True


@pytest.mark.parametrize("consistency", ["linearizable", "causal"])
def test_chaos_draws_every_operation_on_a_terminal_and_leaves_stdout_alone(
    monkeypatch: pytest.MonkeyPatch, consistency: str
) -> None:
    argv = ["chaos", "--consistency", consistency, "--ops", "40", "--seed", "3"]
    out, err = _run(argv, monkeypatch, terminal=True)
    assert "client operations, heal, check" in err
    assert "42/42" in err  # 40 operations, the heal and the check
    plain_out, plain_err = _run(argv, monkeypatch, terminal=False)
    assert plain_err == ""
    assert out == plain_out
    assert "holds" in out


def test_chaos_json_draws_nothing_and_prints_the_same_object(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    argv = ["chaos", "--ops", "40", "--seed", "3", "--json"]
    out, err = _run(argv, monkeypatch, terminal=True)
    assert err == ""
    plain_out, _ = _run(argv, monkeypatch, terminal=False)
    assert out == plain_out
    assert json.loads(out)["verdict"] == "holds"


@pytest.mark.parametrize("level", ["linearizable", "eventual"])
def test_run_chaos_reports_ops_plus_two_steps_and_the_same_run(level: str) -> None:
    steps: list[int] = []
    reported = run_chaos(level, ops=25, seed=7, progress=steps.append)
    silent = run_chaos(level, ops=25, seed=7)
    assert sum(steps) == 25 + 2
    assert all(s > 0 for s in steps)
    assert list(reported.history) == list(silent.history)  # reporting does not change the run
