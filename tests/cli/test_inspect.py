from __future__ import annotations

import contextlib
import io
import json
import sys
import tempfile
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.cli import main
from microstatedb.cli._inspect import inspect_folder
from microstatedb.cli._output import print_json, progress


def _store(folder: Path, *, snapshot: bool = False) -> Path:
    path = folder / "orders-1"
    with msdb.Store("orders-1", path=path) as store:
        store.counter("visits").increment(3)
        store.set("tags").add("vip")
        other = msdb.Store("orders-2")
        other.counter("visits").increment(2)
        msdb.sync(store, other)
        other.close()
        if snapshot:
            store.snapshot()
        store.register("status").set("open")
    return path


def test_inspect_json_shows_log_vector_and_events(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store(tmp_path)
    assert main(["inspect", str(path), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is True
    assert report["path"] == str(path)
    assert report["version_vector"] == {"orders-1": 3, "orders-2": 1}
    assert report["log"]["events"] == 4
    assert report["log"]["verified_events"] == 4
    assert [e["key"] for e in report["last_events"]] == ["visits", "tags", "visits", "status"]
    assert report["last_events"][-1]["kind"] == "register"


def test_inspect_limits_events_and_shows_snapshot(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store(tmp_path, snapshot=True)
    assert main(["inspect", str(path), "--json", "--events", "1"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert len(report["last_events"]) == 1
    (snap,) = report["snapshots"]
    assert snap["vv"] == {"orders-1": 2, "orders-2": 1}
    assert snap["path"].startswith(str(path))
    # the vector covers the snapshot and the event written after it
    assert report["version_vector"] == {"orders-1": 3, "orders-2": 1}


def test_inspect_tables(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _store(tmp_path)
    assert main(["inspect", str(path)]) == 0
    out = capsys.readouterr().out
    assert "every header, frame and snapshot verifies" in out
    assert "no snapshot" in out
    assert "orders-2" in out
    assert "status" in out


def test_inspect_leaves_the_folder_untouched(tmp_path: Path) -> None:
    path = _store(tmp_path)
    before = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert main(["inspect", str(path), "--json"]) == 0
    after = {p: p.read_bytes() for p in path.rglob("*") if p.is_file()}
    assert after == before


def test_inspect_reports_a_flipped_byte_with_its_file(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store(tmp_path)
    (segment,) = path.glob("*.seg")
    data = bytearray(segment.read_bytes())
    data[60] ^= 0xFF
    segment.write_bytes(bytes(data))
    assert main(["inspect", str(path)]) == 1
    err = capsys.readouterr().err
    assert str(segment) in err
    assert "repair=True" in err
    assert main(["inspect", str(path), "--json"]) == 1
    report = json.loads(capsys.readouterr().out)
    assert report["ok"] is False
    assert segment.name in report["error"]


def test_inspect_reports_a_torn_tail_but_passes(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store(tmp_path)
    (segment,) = path.glob("*.seg")
    segment.write_bytes(segment.read_bytes()[:-5])
    assert main(["inspect", str(path)]) == 0
    assert "torn tail" in capsys.readouterr().out


def test_inspect_damaged_snapshot_fails(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = _store(tmp_path, snapshot=True)
    (snap,) = (path / "snapshots").glob("*.snap")
    data = bytearray(snap.read_bytes())
    data[-1] ^= 0xFF
    snap.write_bytes(bytes(data))
    assert main(["inspect", str(path)]) == 1
    out = capsys.readouterr().out
    assert "damaged snapshot skipped" in out
    assert str(snap) in out


@pytest.mark.parametrize("make", ["missing", "empty"])
def test_inspect_refuses_a_folder_that_is_no_store(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], make: str
) -> None:
    target = tmp_path / "nothing"
    if make == "empty":
        target.mkdir()
    assert main(["inspect", str(target)]) == 2
    assert "not a store folder" in capsys.readouterr().err
    assert not target.exists() or not any(target.iterdir())


def test_inspect_negative_events_is_bad_input(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = _store(tmp_path)
    assert main(["inspect", str(path), "--events", "-1"]) == 2
    assert "--events" in capsys.readouterr().err


class _Terminal(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_progress_draws_on_a_terminal_only(monkeypatch: pytest.MonkeyPatch) -> None:
    terminal = _Terminal()
    monkeypatch.setattr(sys, "stderr", terminal)
    with progress("counting", 3) as advance:
        for _ in range(3):
            advance()
    assert "counting" in terminal.getvalue()
    quiet = _Terminal()
    monkeypatch.setattr(sys, "stderr", quiet)
    with progress("counting", 3, enabled=False) as advance:
        advance()
    assert quiet.getvalue() == ""


def test_print_json_shows_bytes_sets_and_objects(capsys: pytest.CaptureFixture[str]) -> None:
    print_json({"b": b"\x01\xff", "s": frozenset({2, 1}), "o": object})
    out = json.loads(capsys.readouterr().out)
    assert out["b"] == "01ff"
    assert out["s"] == [1, 2]
    assert out["o"] == repr(object)


_OPS = st.lists(
    st.tuples(st.sampled_from(["a", "b"]), st.sampled_from(["counter", "set", "sync"])),
    min_size=1,
    max_size=12,
)


@settings(max_examples=25, deadline=None)
@given(ops=_OPS)
def test_inspect_vector_and_count_match_the_store(ops: list[tuple[str, str]]) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = Path(scratch) / "a"
        a, b = msdb.Store("a", path=path), msdb.Store("b")
        for who, op in ops:
            store = a if who == "a" else b
            if op == "counter":
                store.counter("c").increment()
            elif op == "set":
                store.set("s").add(who)
            else:
                msdb.sync(a, b)
        expected = {k: v for k, v in a.version_vector.items() if v}
        a.close()
        b.close()
        report = inspect_folder(path, last=100)
    assert report["ok"] is True
    assert report["version_vector"] == expected
    assert report["log"]["events"] == sum(expected.values()) == len(report["last_events"])


@settings(max_examples=40, deadline=None)
@given(where=st.floats(min_value=0, max_value=1, exclude_max=True), bit=st.integers(0, 7))
def test_no_flipped_bit_goes_unnoticed(where: float, bit: int) -> None:
    with tempfile.TemporaryDirectory() as scratch:
        path = _store(Path(scratch))
        (segment,) = path.glob("*.seg")
        data = bytearray(segment.read_bytes())
        data[int(where * len(data))] ^= 1 << bit
        segment.write_bytes(bytes(data))
        out, err = io.StringIO(), io.StringIO()
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            code = main(["inspect", str(path), "--json"])
    report = json.loads(out.getvalue())
    # either the damage is refused, or it was a cut tail: never a clean report
    if code == 0:
        assert report["recovery"]["torn_bytes"] > 0
    else:
        assert code == 1
        assert report["ok"] is False
