"""The runner: Spin reports are read right, a small model and its mutants check, z3 verdicts
come out, and a missing tool is a typed error."""

from __future__ import annotations

import shutil
from pathlib import Path

import proofs.__main__ as cli
import pytest
from proofs._z3 import check, quorum_intersection

from microstatedb.errors import ConfigurationError, DecodeError
from proofs import MODELS, PROOFS, SpinModel, parse_pan, run_spin

REPORT = """pan:1: assertion violated (x>0) (at depth 3)
State-vector 20 byte, depth reached 5, errors: 1
       7 states, stored
"""


def test_parse_pan_reads_states_errors_and_the_violation() -> None:
    res = parse_pan(REPORT, 0.5)
    assert (res.states, res.errors, res.complete, res.holds) == (7, 1, True, False)
    assert res.violation.startswith("pan:1: assertion violated")
    cut = parse_pan(REPORT.replace("errors: 1", "errors: 0") + "max search depth too small")
    assert not cut.complete
    assert not cut.holds


def test_parse_pan_refuses_what_is_not_a_report() -> None:
    with pytest.raises(DecodeError):
        parse_pan("spin: syntax error")


def _small() -> list[SpinModel]:
    return [m for m in MODELS if m.name in ("saga-barrier", "breaker")]


def test_small_models_hold_and_their_mutants_fail() -> None:
    if shutil.which("spin") is None:
        with pytest.raises(ConfigurationError):
            run_spin(_small()[0].path)
        return
    for model in _small():
        assert run_spin(model.path).holds, model.name
        for macro in model.mutants.values():
            res = run_spin(model.path, (macro,))
            assert res.errors == 1, f"{model.name} -D{macro}"


def test_a_model_that_does_not_compile_is_a_configuration_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.pml"
    bad.write_text("active proctype p() { this is not promela }\n")
    with pytest.raises(ConfigurationError):
        run_spin(bad)


@pytest.mark.parametrize("proof", PROOFS, ids=lambda p: p.name)
def test_each_z3_proof_holds_and_its_mutant_fails(proof: object) -> None:
    assert check(proof).holds  # type: ignore[arg-type]
    assert not check(proof, mutant=True).holds  # type: ignore[arg-type]


def test_quorum_intersection_holds_per_size_and_half_is_never_enough() -> None:
    from proofs._z3 import Z3Proof

    for n in (2, 3, 4, 5, 7):
        one = Z3Proof("q", lambda m, n=n: quorum_intersection(m, range(n, n + 1)), "m", ())
        assert check(one).holds, n
        assert not check(one, mutant=True).holds, n


def test_main_prints_every_verdict_and_exits_zero(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(cli, "MODELS", tuple(_small()))
    if shutil.which("spin") is None:
        with pytest.raises(ConfigurationError):
            cli.main()
        return
    assert cli.main() == 0
    out = capsys.readouterr().out
    assert "spin breaker:" in out
    assert "holds" in out
    for model in _small():
        for name in model.mutants:
            assert f"mutant {name}: caught" in out
    for proof in PROOFS:
        assert f"mutant {proof.mutant}: caught" in out


def test_main_exits_nonzero_when_a_mutant_survives(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    # A "mutant" macro the model never reads leaves the check passing: it must be reported.
    saga = next(m for m in MODELS if m.name == "saga-barrier")
    fake = SpinModel(saga.name, saga.file, {"does-nothing": "UNUSED_MACRO"})
    monkeypatch.setattr(cli, "MODELS", (fake,))
    monkeypatch.setattr(cli, "PROOFS", ())
    if shutil.which("spin") is None:
        with pytest.raises(ConfigurationError):
            cli.main()
        return
    assert cli.main() == 1
    assert "mutant does-nothing: NOT CAUGHT" in capsys.readouterr().out
