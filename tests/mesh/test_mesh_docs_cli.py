"""The examples of docs/mesh.md run, and ``microstatedb mesh serve`` runs in this process."""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import re
import signal
import socket
from pathlib import Path

import aiohttp
import pytest

from microstatedb.cli._mesh import _serve, _sources
from microstatedb.errors import ConfigurationError, DecodeError

DOC = Path(__file__).resolve().parents[2] / "docs" / "mesh.md"


def test_the_python_examples_of_the_mesh_page_run() -> None:
    blocks = re.findall(r"```python\n(.*?)```", DOC.read_text(), re.S)
    assert blocks
    for block in blocks:
        exec(compile(block, str(DOC), "exec"), {})


def args(**kwargs: object) -> argparse.Namespace:
    base: dict[str, object] = {
        "name": "a",
        "peer": [],
        "peers_file": None,
        "dns": None,
        "dns_port": 7400,
        "dns_peer": [],
        "path": None,
        "interval": 0.05,
        "timeout": 1.0,
        "retry_owner": "library",
        "linearizable": True,
        "dev_api": True,
    }
    base.update(kwargs)
    return argparse.Namespace(**base)


def test_peer_sources_from_the_command_line(tmp_path: Path) -> None:
    peers, source = _sources(args(peer=["b=http://h:1/b"]))
    assert (peers, source) == ({"b": "http://h:1/b"}, None)
    with pytest.raises(ConfigurationError):
        _sources(args(peer=["b=h:1"]))
    path = tmp_path / "peers.json"
    path.write_text(json.dumps({"c": "http://h:2"}))
    peers, source = _sources(args(peers_file=str(path)))
    assert peers == {"c": "http://h:2"}
    assert source is not None
    path.write_text("[]")
    with pytest.raises(DecodeError):
        _sources(args(peers_file=str(path)))
    peers, source = _sources(args(dns="{name}.svc", dns_peer=["b", "c"]))
    assert peers == {"b": "http://b.svc:7400", "c": "http://c.svc:7400"}
    assert source is not None


async def test_mesh_serve_answers_probes_and_stops_on_a_signal(
    capsys: pytest.CaptureFixture[str],
) -> None:
    task = asyncio.create_task(
        _serve(
            args(dns="{name}", dns_peer=["localhost"]),
            bytes(32),
            *_sources(args(dns="{name}", dns_peer=["localhost"])),
            "127.0.0.1",
            0,
        )
    )
    try:
        for _ in range(200):
            await asyncio.sleep(0.02)
            if "http://" in capsys.readouterr().out or task.done():
                break
    finally:
        os.kill(os.getpid(), signal.SIGTERM)  # the command's handler stops it cleanly
        await asyncio.wait_for(task, 10)
    assert task.exception() is None


def test_the_serve_command_refuses_a_bad_listen_address() -> None:
    from microstatedb.cli import main

    assert main(["mesh", "serve", "--name", "a", "--listen", "nowhere"]) == 2  # bad input


async def test_probe_a_served_node() -> None:
    # readiness of a linearizable node alone: a majority of one is itself
    ns = args(name="solo", linearizable=True)
    got: list[int] = []
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    task = asyncio.create_task(_serve(ns, bytes(32), {}, None, "127.0.0.1", port))
    try:
        async with aiohttp.ClientSession() as s:
            for _ in range(200):
                await asyncio.sleep(0.02)
                try:
                    async with s.get(f"http://127.0.0.1:{port}/healthz/ready") as r:
                        got.append(r.status)
                        break
                except aiohttp.ClientError:
                    continue
    finally:
        os.kill(os.getpid(), signal.SIGTERM)
        await asyncio.wait_for(task, 10)
    assert got == [200]
