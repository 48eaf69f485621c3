"""``microstatedb txn show``: a timeline from stopped services' folders."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microstatedb.cli._main import main
from microstatedb.cli._txn import describe, timeline
from microstatedb.replica import Store

from ._shop import NODES, Shop, make_sim, order_writes, saga_steps


def dump(sim_stores: dict[str, Store], tmp_path: Path) -> list[str]:
    """Copy each simulated store into a folder, as a stopped service leaves it."""
    args = []
    for name, src in sim_stores.items():
        with Store(name, path=tmp_path / name, durability="always") as dst:
            dst.apply(src.events_since({}))
        args += ["--store", f"{name}={tmp_path / name}"]
    return args


def test_timeline_of_a_compensated_saga(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = make_sim(shop=Shop())
    sim.begin_saga("order", "s1", saga_steps(amount=1000, order="s1"))
    sim.run(10)
    assert main(["txn", "show", "s1", *dump(sim.stores, tmp_path)]) == 0
    out = capsys.readouterr().out
    lines = out.splitlines()
    assert lines[0] == "transaction s1"
    assert "saga began; steps reserve@stock -> charge@payment -> confirm@order" in lines[1]
    assert any("payment ran action of charge: failed (card declined)" in x for x in lines)
    assert any("stock ran compensate of reserve: ok" in x for x in lines)
    assert "saga compensated" in lines[-1]


def test_timeline_json_of_a_2pc(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    sim = make_sim()
    sim.begin_2pc("order", "t1", order_writes(order="t1"))
    sim.run(10)
    assert main(["txn", "show", "t1", "--json", *dump(sim.stores, tmp_path)]) == 0
    rows = json.loads(capsys.readouterr().out)
    fields = [r["field"] for r in rows]
    assert fields[0] == "begin"
    assert fields.index("decision") > max(fields.index(f"prepared/{n}") for n in NODES)
    assert fields[-1] == "end"


def test_bad_input(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["txn", "show", "x"]) == 2  # bad input: no place to look
    assert main(["txn", "show", "x", "--store", "nope"]) == 2
    assert main(["txn", "show", "x", "--store", f"a={tmp_path / 'a'}"]) == 1
    assert "no records of transaction 'x'" in capsys.readouterr().err
    assert main(["txn"]) == 2


def test_descriptions_cover_every_record() -> None:
    assert describe("n", "b/x/action", {"status": "refused"}) == (
        "n blocks action x: its compensation came first"
    )
    assert "null compensation of x" in describe("n", "b/x/compensate", {"status": "null"})
    assert describe("n", "outcome/n", {"commit": False, "why": "late"}) == (
        "n voted NO or aborted (late)"
    )
    assert describe("n", "end", {}) == "coordinator forgot it (all acknowledged)"
    assert describe("n", "other", {"a": 1}) == "other: {'a': 1}"
    rows = timeline({"a": {"x": {"at": 2, "seq": 1}, "y": "junk"}, "b": {"x": {"at": 2, "seq": 1}}})
    assert len(rows) == 1  # a replicated record shows once
