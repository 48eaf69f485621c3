"""``microstatedb check``: exit codes 0 (holds), 1 (violated), 2 (malformed or inconclusive)."""

from __future__ import annotations

from pathlib import Path

import pytest

import microstatedb.verify as verify
from microstatedb.cli import main
from microstatedb.verify import History, HistoryEvent

FIXTURES = Path(__file__).parent.parent / "fixtures" / "porcupine"


def test_linearizable_holds(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["check", "linearizable", str(FIXTURES / "jepsen" / "etcd_005.log")]) == 0
    assert capsys.readouterr().out.startswith("linearizable (register)")


def test_linearizable_violated_prints_the_explanation(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "kv" / "c01-bad.txt"
    code = main(["check", "linearizable", str(path), "--format", "edn", "--model", "kv-append"])
    assert code == 1
    out = capsys.readouterr().out
    assert out.startswith("NOT linearizable (kv-append)")
    assert "no order of these" in out


def test_kv_history_passes_with_kv_append(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "kv" / "c10-ok.txt"
    assert (
        main(["check", "linearizable", str(path), "--format", "edn", "--model", "kv-append"]) == 0
    )


def test_timeout_is_inconclusive(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "jepsen" / "etcd_002.log"
    assert main(["check", "linearizable", str(path), "--timeout", "0.000001"]) == 2
    assert "inconclusive" in capsys.readouterr().out


def test_malformed_history_names_the_line(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    path.write_text('{"process": 0, "type": "invoke", "f": "read", "time": 1}\n{oops}\n')
    assert main(["check", "linearizable", str(path)]) == 2
    assert "line 2" in capsys.readouterr().err
    assert main(["check", "linearizable", str(tmp_path / "missing.jsonl")]) == 2
    assert "cannot read" in capsys.readouterr().err


def test_model_mismatch_is_malformed(capsys: pytest.CaptureFixture[str]) -> None:
    path = FIXTURES / "kv" / "c01-ok.txt"
    assert main(["check", "linearizable", str(path), "--format", "edn"]) == 2
    assert "not 'append'" in capsys.readouterr().err


def _write(path: Path, steps: list[tuple[str, str, str, int | None]]) -> None:
    events = []
    for i, (session, f, key, v) in enumerate(steps):
        arg, out = (v, v) if f == "write" else (None, v)
        events.append(HistoryEvent(i, "invoke", f, key, arg, 2 * i, session=session))
        events.append(HistoryEvent(i, "ok", f, key, out, 2 * i + 1, session=session))
    History(events).dump(path)


def test_causal_and_sessions(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    good = tmp_path / "good.jsonl"
    _write(good, [("a", "write", "x", 1), ("a", "read", "x", 1)])
    assert main(["check", "causal", str(good)]) == 0
    assert main(["check", "sessions", str(good)]) == 0
    assert "causally consistent (CC)" in capsys.readouterr().out
    bad = tmp_path / "bad.jsonl"
    _write(bad, [("a", "write", "x", 1), ("a", "read", "x", None)])
    assert main(["check", "causal", str(bad), "--level", "ccv"]) == 1
    assert "WriteCOInitRead" in capsys.readouterr().out
    assert main(["check", "sessions", str(bad)]) == 1
    out = capsys.readouterr().out
    assert "read-your-writes: 1" in out
    assert main(["check", "sessions", str(bad), "--guarantee", "monotonic-reads"]) == 0


def test_public_names_are_pinned() -> None:
    assert sorted(verify.__all__) == sorted(
        [
            "FORMATS",
            "GUARANTEES",
            "LEVELS",
            "MODELS",
            "PATTERNS",
            "BadPattern",
            "CausalResult",
            "ConvergenceResult",
            "Explanation",
            "History",
            "HistoryEvent",
            "KVAppendModel",
            "KVModel",
            "Keyword",
            "LinearizabilityResult",
            "Operation",
            "Pending",
            "Recorder",
            "RegisterModel",
            "SearchStats",
            "SequentialModel",
            "SessionResult",
            "SessionViolation",
            "Verdict",
            "brute_force_linearizable",
            "check_causal",
            "check_convergence",
            "check_linearizable",
            "check_sessions",
            "default_classify",
            "synthetic_history",
        ]
    )
    for name in verify.__all__:
        assert hasattr(verify, name)


def test_verify_does_not_import_the_store() -> None:
    src = Path(verify.__file__).parent
    for module in src.glob("*.py"):
        text = module.read_text()
        for layer in ("replica", "log", "crdt", "protocols", "runtime", "transport", "stores"):
            assert f"microstatedb.{layer}" not in text, (module.name, layer)
