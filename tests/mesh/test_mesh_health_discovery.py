"""Readiness and liveness verdicts, and the three sources of peer addresses."""

from __future__ import annotations

import os
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, DecodeError
from microstatedb.transport import (
    DnsPeers,
    HealthInputs,
    PeersFile,
    ReadinessPolicy,
    StaticPeers,
    liveness,
    readiness,
    refresh,
    system_resolver,
)


@st.composite
def inputs(draw: st.DrawFn) -> HealthInputs:
    members = draw(st.integers(1, 9))
    return HealthInputs(
        store_open=draw(st.booleans()),
        buffered=draw(st.integers(0, 3000)),
        members=members,
        reachable=draw(st.integers(0, members)),
        silence=draw(st.floats(0, 100)),
    )


@given(inputs(), st.booleans())
def test_ready_iff_every_check_passes(got: HealthInputs, linearizable: bool) -> None:
    policy = ReadinessPolicy(linearizable=linearizable)
    report = readiness(got, policy)
    assert report.ok == all(report.checks.values())
    assert report.status == (200 if report.ok else 503)
    assert report.checks["store_open"] == got.store_open
    if not linearizable:
        assert report.checks["quorum"]  # eventual work never waits on a majority
    else:
        assert report.checks["quorum"] == (got.reachable * 2 > got.members)
    if got.members == 1:
        assert report.checks["caught_up"] == (got.buffered <= policy.max_buffered)
    assert report.as_json()["status"] == ("ok" if report.ok else "fail")


@pytest.mark.parametrize(
    "bad", [HealthInputs(True, 0, 0, 0, 0.0), HealthInputs(True, 0, 3, 4, 0.0)]
)
def test_impossible_inputs_are_refused(bad: HealthInputs) -> None:
    with pytest.raises(ConfigurationError):
        readiness(bad, ReadinessPolicy())


@pytest.mark.parametrize("kwargs", [{"max_buffered": -1}, {"max_silence": 0.0}])
def test_bad_readiness_policy(kwargs: dict[str, float]) -> None:
    with pytest.raises(ConfigurationError):
        ReadinessPolicy(**kwargs)  # type: ignore[arg-type]


def test_liveness_looks_only_at_the_event_loop() -> None:
    assert liveness(0.01).status == 200
    assert liveness(6.0).status == 503
    assert liveness(1.0, max_lag=0.5).checks == {"event_loop": False}


async def test_static_peers_and_their_checks() -> None:
    assert await StaticPeers({"b": "http://h:1/"}).peers() == {"b": "http://h:1"}
    with pytest.raises(ConfigurationError):
        StaticPeers({"b": "h:1"})
    with pytest.raises(ConfigurationError):
        StaticPeers({"": "http://h:1"})


async def test_dns_peers_resolve_each_name_and_leave_out_the_missing() -> None:
    asked: list[tuple[str, int]] = []

    async def resolver(host: str, port: int) -> list[str]:
        asked.append((host, port))
        return {"a.svc": ["10.0.0.1", "10.0.0.9"], "c.svc": ["fd00::7"]}.get(host, [])

    dns = DnsPeers(["a", "b", "c"], "{name}.svc", 7400, resolver=resolver)
    assert await dns.peers() == {"a": "http://10.0.0.1:7400", "c": "http://[fd00::7]:7400"}
    assert asked == [("a.svc", 7400), ("b.svc", 7400), ("c.svc", 7400)]


async def test_dns_peers_with_the_system_resolver() -> None:
    dns = DnsPeers(["localhost", "no-such-host.invalid"], "{name}", 7400)
    found = await dns.peers()
    assert set(found) == {"localhost"}
    assert found["localhost"].endswith(":7400")
    assert await system_resolver("no-such-host.invalid", 1) == []


@pytest.mark.parametrize(
    "kwargs",
    [
        {"names": ["a"], "template": "static.svc", "port": 1},
        {"names": ["a"], "template": "{name}", "port": 0},
        {"names": ["a"], "template": "{name}", "port": 1, "scheme": "ftp"},
        {"names": [], "template": "{name}", "port": 1},
    ],
)
def test_bad_dns_settings(kwargs: dict[str, object]) -> None:
    with pytest.raises(ConfigurationError):
        DnsPeers(**kwargs)  # type: ignore[arg-type]


async def test_peers_file_is_read_again_when_it_changes(tmp_path: Path) -> None:
    path = tmp_path / "peers.json"
    source = PeersFile(path)
    assert await source.peers() == {}  # absent: nothing yet
    path.write_text('{"b": "http://10.0.0.2:7400", "x": "http://10.0.0.8:7400"}')
    assert await source.peers() == {"b": "http://10.0.0.2:7400", "x": "http://10.0.0.8:7400"}
    path.write_text('{"b": "http://10.0.0.3:7400"}')
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    assert await source.peers() == {"b": "http://10.0.0.3:7400"}
    path.unlink()
    assert await source.peers() == {"b": "http://10.0.0.3:7400"}  # the last good read

    members = {"b": "http://old:1", "c": "http://old:2"}
    path.write_text('{"b": "http://new:1", "z": "http://new:9"}')
    assert await refresh(members, source) == ["z"]  # not a member: ignored
    assert members == {"b": "http://new:1", "c": "http://old:2"}


@pytest.mark.parametrize("text", ["not json", "[1, 2]", '{"b": "ftp://x"}'])
def test_bad_peers_files_are_decode_errors(text: str) -> None:
    with pytest.raises(DecodeError):
        PeersFile.load(text)
