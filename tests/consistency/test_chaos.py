"""Chaos runs of the weaker levels and the ``microstatedb chaos`` command."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from microstatedb.cli._main import main
from microstatedb.errors import ConfigurationError
from microstatedb.replica import Consistency
from microstatedb.runtime import run_chaos
from microstatedb.runtime._chaos import run_chaos_real
from microstatedb.verify import History, Verdict, check_linearizable, check_sessions


@pytest.mark.parametrize("seed", range(4))
def test_causal_sessions_hold_under_partitions_and_kills(seed: int) -> None:
    nemesis = ("partition", "kill", "mixed", "clock-drift")[seed]
    result = run_chaos(Consistency.CAUSAL, nodes=3, ops=250, nemesis=nemesis, seed=seed)
    assert result.checker == "sessions"
    assert result.verdict is Verdict.HOLDS, result.detail
    assert check_sessions(result.history).ok
    assert result.counts["ok"] > 100
    assert result.faults >= 1


def test_eventual_converges_but_is_not_linearizable_under_partitions() -> None:
    anomalies = []
    for seed in range(4):
        result = run_chaos("eventual", nodes=3, ops=250, nemesis="partition", seed=seed)
        assert result.checker == "convergence"
        assert result.verdict is Verdict.HOLDS
        assert result.counts == {"ok": 250, "fail": 0, "info": 0}  # always available
        anomalies.append(result.anomalies)
    assert Verdict.VIOLATED in anomalies  # stale reads: the anomalies eventual allows


def test_chaos_command_writes_a_jsonl_history(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    path = tmp_path / "h.jsonl"
    code = main(
        [
            "chaos",
            "--workload",
            "register",
            "--consistency",
            "linearizable",
            "--nodes",
            "3",
            "--ops",
            "120",
            "--nemesis",
            "partition",
            "--seed",
            "2",
            "--history",
            str(path),
        ]
    )
    assert code == 0
    out = capsys.readouterr().out
    assert "linearizability holds" in out
    history = History.load(path)
    assert len(history) == 240
    first = json.loads(path.read_text().splitlines()[0])
    assert set(first) == {"process", "type", "f", "key", "value", "time"}
    assert {e.type for e in history} <= {"invoke", "ok", "fail", "info"}
    assert all(e.value is None or isinstance(e.value, int | tuple) for e in history)


def test_chaos_command_json_and_weaker_levels(capsys: pytest.CaptureFixture[str]) -> None:
    code = main(["chaos", "--consistency", "eventual", "--ops", "100", "--seed", "1", "--json"])
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["checker"] == "convergence"
    assert summary["verdict"] == "holds"
    code = main(["chaos", "--consistency", "causal", "--ops", "100", "--nemesis", "none"])
    assert code == 0
    assert "linearizability of this weaker level's history" in capsys.readouterr().out
    code = main(["chaos", "--ops", "60", "--no-leases", "--nemesis", "kill"])
    assert code == 0
    assert ", 0 lease reads" in capsys.readouterr().out


def test_chaos_command_real_argument_errors(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["chaos", "--real", "--consistency", "causal"]) == 2
    assert "--real" in capsys.readouterr().err
    assert main(["chaos", "--real", "--nemesis", "partition"]) == 2
    assert "simulator" in capsys.readouterr().err
    with pytest.raises(ConfigurationError):
        run_chaos_real(ops=0, nemesis="none")


@pytest.mark.integration
def test_real_processes_killed_and_restarted_stay_linearizable(tmp_path: Path) -> None:
    """Three OS processes over HTTP on loopback; a minority is SIGKILLed and restarted from
    its fsynced acceptor file while clients keep going."""
    path = tmp_path / "real.jsonl"
    code = main(
        [
            *("chaos", "--real", "--nodes", "3", "--ops", "120", "--nemesis", "kill"),
            *("--seed", "4", "--interval", "0.7", "--history", str(path)),
        ]
    )
    assert code == 0
    history = History.load(path)
    assert check_linearizable(history, "register").verdict is Verdict.HOLDS
    assert sum(1 for e in history if e.type == "ok") > 40


async def test_a_served_node_answers_client_operations(tmp_path: Path) -> None:
    """The node process's HTTP face, run in this event loop: ok, fail and refusals."""
    import asyncio

    import aiohttp

    from microstatedb.runtime._chaos import _free_ports, _serve_node
    from microstatedb.transport import WRITE_PATH

    solo, pair = _free_ports(2)
    key = bytes(range(32))
    alone = asyncio.ensure_future(_serve_node("a", solo, {}, key, str(tmp_path)))
    lonely = asyncio.ensure_future(
        _serve_node("b", pair, {"c": "http://127.0.0.1:9"}, key, str(tmp_path))
    )
    try:
        await asyncio.sleep(0.7)  # a restarted acceptor waits one lease period

        async def post(port: int, body: dict[str, object]) -> dict[str, object]:
            async with (
                aiohttp.ClientSession() as http,
                http.post(f"http://127.0.0.1:{port}{WRITE_PATH}", json=body) as resp,
            ):
                return await resp.json()  # type: ignore[no-any-return]

        assert (await post(solo, {"f": "write", "key": "k", "value": 1}))["type"] == "ok"
        assert await post(solo, {"f": "read", "key": "k"}) == {"type": "ok", "value": 1}
        assert (await post(solo, {"f": "cas", "key": "k", "value": [1, 2]}))["type"] == "ok"
        assert (await post(solo, {"f": "cas", "key": "k", "value": [1, 3]}))["type"] == "fail"
        assert (await post(solo, {"f": "append", "key": "k"}))["type"] == "fail"
        refused = await post(pair, {"f": "write", "key": "k", "value": 1})
        assert refused["type"] == "fail"  # no majority: refused at once
    finally:
        for task in (alone, lonely):
            task.cancel()
        await asyncio.gather(alone, lonely, return_exceptions=True)
