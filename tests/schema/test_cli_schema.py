"""``microstatedb schema compat`` exit codes and ``microstatedb registry serve`` over HTTP."""

from __future__ import annotations

import json
import os
import signal
import socket
import threading
from collections.abc import Callable
from pathlib import Path

import pytest

from microstatedb.cli import main
from microstatedb.schema import RegistryClient, registry_retry

V1 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]}
V2 = {"type": "record", "name": "R", "fields": [{"name": "a", "type": "long"}]}


def write(tmp_path: Path, name: str, schema: object) -> str:
    path = tmp_path / name
    path.write_text(json.dumps(schema))
    return str(path)


def test_compatible_exits_0(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    code = main(
        [
            "schema",
            "compat",
            "--level",
            "backward",
            write(tmp_path, "v2", V2),
            write(tmp_path, "v1", V1),
        ]
    )
    assert code == 0
    assert "compatible (BACKWARD)" in capsys.readouterr().out


def test_incompatible_exits_1_and_prints_each(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    args = [
        "schema",
        "compat",
        "--level",
        "FORWARD",
        write(tmp_path, "v2", V2),
        write(tmp_path, "v1", V1),
    ]
    assert main(args) == 1
    out = capsys.readouterr().out
    assert "/fields/0/type" in out
    assert "reader type: int not compatible with writer type: long" in out


def test_json_schemas_inline(capsys: pytest.CaptureFixture[str]) -> None:
    new = json.dumps({"type": "object", "additionalProperties": False})
    old = json.dumps({"type": "object", "properties": {"x": {"type": "string"}}})
    assert main(["schema", "compat", "--type", "json", "--level", "FULL", new, old]) == 1
    assert "additionalProperties" in capsys.readouterr().out


@pytest.mark.parametrize(
    "args",
    [
        ["schema", "compat", "no-such-file.avsc", "{}"],
        ["schema", "compat", "{not json", '"int"'],
        ["schema", "compat", '{"type": "bogus"}', '"int"'],
        ["schema", "compat", "--level", "SIDEWAYS", '"int"', '"int"'],
    ],
)
def test_invalid_input_exits_2(args: list[str], capsys: pytest.CaptureFixture[str]) -> None:
    assert main(args) == 2
    assert capsys.readouterr().err.startswith("error:")


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def serve_and_drive(args: list[str], port: int, drive: Callable[[RegistryClient], None]) -> int:
    # The command runs in this (main) thread, as from a shell; a helper thread talks to it
    # over HTTP and then stops it with SIGTERM, which the command handles to exit cleanly.
    def helper_body() -> None:
        client = RegistryClient(
            f"http://127.0.0.1:{port}",
            retry=registry_retry(max_attempts=200, base_delay=0.01, max_delay=0.02),
        )
        try:
            drive(client)
        finally:
            os.kill(os.getpid(), signal.SIGTERM)

    helper = threading.Thread(target=helper_body)
    helper.start()
    code = main(["registry", "serve", "--port", str(port), *args])
    helper.join()
    return code


def test_registry_serve_answers_the_rest_api(capsys: pytest.CaptureFixture[str]) -> None:
    port = free_port()
    seen: dict[str, object] = {}

    def drive(client: RegistryClient) -> None:
        seen["level"] = client.get_config().value
        seen["id"] = client.register("s", V1)

    assert serve_and_drive(["--level", "FULL"], port, drive) == 0
    assert seen == {"level": "FULL", "id": 1}
    assert f"serving on http://127.0.0.1:{port}" in capsys.readouterr().out


def test_registry_serve_keeps_schemas_in_a_durable_store(tmp_path: Path) -> None:
    data = str(tmp_path / "registry")
    seen: list[object] = []
    first, second = free_port(), free_port()
    assert serve_and_drive(["--data", data], first, lambda c: seen.append(c.register("s", V1))) == 0
    assert serve_and_drive(["--data", data], second, lambda c: seen.append(c.versions("s"))) == 0
    assert seen == [1, [1]]
