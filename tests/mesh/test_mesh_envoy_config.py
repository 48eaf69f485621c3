"""The generated Envoy bootstrap and the ``microstatedb mesh envoy-config`` command."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.cli import main
from microstatedb.errors import ConfigurationError
from microstatedb.transport import (
    Endpoint,
    SidecarSpec,
    envoy_bootstrap,
    parse_upstreams,
    peer_urls,
)

names = st.from_regex(r"[a-z][a-z0-9-]{0,8}", fullmatch=True)


def spec(**kwargs: Any) -> SidecarSpec:
    base: dict[str, Any] = {
        "node": "a",
        "app": Endpoint("127.0.0.1", 7400),
        "ingress": Endpoint("0.0.0.0", 15006),
        "egress": Endpoint("127.0.0.1", 15001),
        "upstreams": {"b": Endpoint("10.0.0.2", 15006), "c": Endpoint("c.svc", 15006)},
    }
    base.update(kwargs)
    return SidecarSpec(**base)


def routes(boot: dict[str, Any], listener: str) -> list[dict[str, Any]]:
    found = next(x for x in boot["static_resources"]["listeners"] if x["name"] == listener)
    hcm = found["filter_chains"][0]["filters"][0]["typed_config"]
    result: list[dict[str, Any]] = hcm["route_config"]["virtual_hosts"][0]["routes"]
    return result


@given(st.sets(names, min_size=1, max_size=5), st.integers(0, 10))
def test_egress_retries_never_replay_a_status_code(peers: set[str], retries: int) -> None:
    upstreams = {p: Endpoint("10.0.0.1", 15006) for p in peers if p != "self"}
    boot = envoy_bootstrap(spec(node="self", upstreams=upstreams, retries=retries))
    egress = routes(boot, "egress")
    assert [r["match"]["prefix"] for r in egress] == [f"/{p}/" for p in sorted(upstreams)]
    for r in egress:
        policy = r["route"].get("retry_policy")
        if retries == 0:
            assert policy is None
        else:
            assert set(policy["retry_on"].split(",")) == {"connect-failure", "refused-stream"}
            assert policy["num_retries"] == retries
    text = json.dumps(boot)
    assert "5xx" not in text
    assert "retriable-4xx" not in text
    assert "retriable-status-codes" not in text


def test_bootstrap_parts() -> None:
    boot = envoy_bootstrap(spec(admin=Endpoint("127.0.0.1", 9901), timeout=1.5))
    assert boot["admin"]["address"]["socket_address"]["port_value"] == 9901
    clusters = {c["name"]: c for c in boot["static_resources"]["clusters"]}
    assert clusters["peer_c"]["type"] == "STRICT_DNS"  # a DNS name, as a headless service
    assert clusters["peer_b"]["type"] == "STATIC"
    assert "outlier_detection" in clusters["peer_b"]
    assert "outlier_detection" not in clusters["local_app"]
    ingress = routes(boot, "ingress")
    assert ingress[0]["route"] == {"cluster": "local_app", "timeout": "1.500s"}
    assert "admin" not in envoy_bootstrap(spec())
    assert peer_urls(spec()) == {"b": "http://127.0.0.1:15001/b", "c": "http://127.0.0.1:15001/c"}


@pytest.mark.parametrize(
    "kwargs",
    [
        {"node": "bad name"},
        {"upstreams": {"a": Endpoint("h", 1)}},
        {"timeout": 0.0},
        {"retries": 11},
    ],
)
def test_bad_specs(kwargs: dict[str, Any]) -> None:
    with pytest.raises(ConfigurationError):
        spec(**kwargs)


def test_endpoints_and_upstreams_parse() -> None:
    assert Endpoint.parse("[fd00::1]:80") == Endpoint("fd00::1", 80)
    assert parse_upstreams(["b=h:1"]) == {"b": Endpoint("h", 1)}
    for bad in ("h", "h:0", ":1", "h:x"):
        with pytest.raises(ConfigurationError):
            Endpoint.parse(bad)
    for items in (["b"], ["=h:1"], ["b=h:1", "b=h:2"]):
        with pytest.raises(ConfigurationError):
            parse_upstreams(items)


def test_the_command_prints_or_writes_the_bootstrap(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["mesh", "envoy-config", "--node", "a", "--app", "127.0.0.1:7400"]
    argv += ["--ingress", "127.0.0.1:15006", "--egress", "127.0.0.1:15001"]
    argv += ["--upstream", "b=127.0.0.1:16006", "--admin", "127.0.0.1:9901"]
    assert main(argv) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["node"]["id"] == "a"
    out = tmp_path / "a.json"
    assert main([*argv, "--output", str(out)]) == 0
    assert json.loads(out.read_text()) == printed
    assert (
        main(
            [
                "mesh",
                "envoy-config",
                "--node",
                "a",
                "--app",
                "x",
                "--ingress",
                "h:1",
                "--egress",
                "h:2",
            ]
        )
        == 2
    )  # bad input: a typed error, exit 2
    assert "HOST:PORT" in capsys.readouterr().err
    assert main(["mesh"]) == 2
