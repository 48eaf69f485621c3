"""``microstatedb simulate`` and ``microstatedb serve`` in process."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
import time
import urllib.request
from pathlib import Path

import pytest

from microstatedb.cli import main


def test_simulate_prints_one_json_object(capsys: pytest.CaptureFixture[str]) -> None:
    argv = ["simulate", "--nodes", "12", "--seed", "5", "--partition-seconds", "5"]
    assert main([*argv, "--loss", "0.1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    for key in ("converged", "nodes", "seed", "virtual_seconds_to_converge", "messages", "bytes"):
        assert key in out
    assert out["converged"] is True
    assert (out["nodes"], out["seed"]) == (12, 5)
    assert main([*argv, "--loss", "0.1", "--json"]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] == out["bytes"]  # same seed, same run


def test_simulate_text_and_bad_flags(capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["simulate", "--nodes", "3", "--partition-seconds", "0"]) == 0
    assert "converged: True" in capsys.readouterr().out
    # values out of range are bad input (2), like an unknown option
    assert main(["simulate", "--loss", "1.5"]) == 2
    assert main(["simulate", "--writes-per-node", "-1"]) == 2
    # no time to converge: the property fails (1), the input was fine
    assert main(["simulate", "--nodes", "2", "--timeout", "0", "--partition-seconds", "3"]) == 1
    assert "replay with --seed 0" in capsys.readouterr().out


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_serve_runs_until_sigterm(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    port = _free_port()
    key_file = tmp_path / "key"
    key_file.write_text("ab" * 32)
    config = tmp_path / "node.json"
    config.write_text(
        json.dumps({"name": "a", "peers": {"b": "http://127.0.0.1:1"}, "dev_api": True})
    )
    seen: dict[str, object] = {}

    def poke() -> None:
        deadline = time.monotonic() + 10
        url = f"http://127.0.0.1:{port}/msdb/v1/status"
        while time.monotonic() < deadline and not finished.is_set():
            try:
                with urllib.request.urlopen(url, timeout=1) as resp:
                    seen.update(json.loads(resp.read()))
                    break
            except OSError:
                time.sleep(0.05)
        if not finished.is_set():  # only while serve's own handler is installed
            os.kill(os.getpid(), signal.SIGTERM)

    finished = threading.Event()
    poker = threading.Thread(target=poke, daemon=True)
    poker.start()
    argv = ["serve", "--config", str(config), "--listen", f"127.0.0.1:{port}"]
    try:
        code = main([*argv, "--key-file", str(key_file), "--path", str(tmp_path / "data")])
    finally:
        finished.set()
        poker.join(timeout=15)
    assert code == 0
    assert seen["name"] == "a"
    assert "listening on" in capsys.readouterr().out


@pytest.mark.parametrize(
    ("argv", "env", "message"),
    [
        (["serve"], "ab" * 32, "--name"),
        (["serve", "--name", "a"], "", "shared key is required"),
        (["serve", "--name", "a"], "zz", "64 hex digits"),
        (["serve", "--name", "a"], "abcd", "64 hex digits"),
        (["serve", "--name", "a", "--peer", "b"], "ab" * 32, "NAME=http"),
        (["serve", "--name", "a", "--listen", "nope"], "ab" * 32, "HOST:PORT"),
        (["serve", "--config", "/nonexistent.json"], "ab" * 32, "cannot read config"),
    ],
)
def test_serve_refuses_bad_settings(
    argv: list[str],
    env: str,
    message: str,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("MICROSTATEDB_KEY", env)
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_serve_config_must_be_an_object(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    config = tmp_path / "c.json"
    config.write_text("[1]")
    assert main(["serve", "--config", str(config)]) == 2
    assert "JSON object" in capsys.readouterr().err
