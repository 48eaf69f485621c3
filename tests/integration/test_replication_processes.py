"""Real ``microstatedb serve`` processes over real loopback sockets.

Every directed link goes through a small TCP proxy that the test controls, so a test can cut
any link (a partition, or one direction only) while every node keeps taking writes, heal, and
check that all digests agree and no acknowledged write was lost. Waits are on conditions
with bounded timeouts; every process is stopped in ``finally``.
"""

from __future__ import annotations

import contextlib
import json
import os
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.error
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from microstatedb.transport import MESSAGE_PATH, Authenticator

pytestmark = pytest.mark.integration

KEY_HEX = "5a" * 32
SERVE = "import sys; from microstatedb.cli import main; sys.exit(main())"


class LinkProxy:
    """A TCP proxy for one direction of one link; ``cut()`` drops it, ``heal()`` restores."""

    def __init__(self) -> None:
        self._sock = socket.socket()
        self._sock.bind(("127.0.0.1", 0))
        self._sock.listen(64)
        self._sock.settimeout(0.1)
        self.port = int(self._sock.getsockname()[1])
        self.target: int | None = None
        self.blocked = False
        self._closed = False
        self._conns: list[socket.socket] = []
        self._lock = threading.Lock()
        self._thread = threading.Thread(target=self._accept, daemon=True)
        self._thread.start()

    def _accept(self) -> None:
        while not self._closed:
            try:
                conn, _ = self._sock.accept()
            except (TimeoutError, OSError):
                continue
            if self.blocked or self.target is None:
                conn.close()
                continue
            try:
                upstream = socket.create_connection(("127.0.0.1", self.target), timeout=2)
            except OSError:
                conn.close()
                continue
            with self._lock:
                self._conns += [conn, upstream]
            for a, b in ((conn, upstream), (upstream, conn)):
                threading.Thread(target=self._pump, args=(a, b), daemon=True).start()

    @staticmethod
    def _pump(src: socket.socket, dst: socket.socket) -> None:
        try:
            while data := src.recv(65536):
                dst.sendall(data)
        except OSError:
            pass
        finally:
            for s in (src, dst):
                with contextlib.suppress(OSError):
                    s.shutdown(socket.SHUT_RDWR)

    def cut(self) -> None:
        self.blocked = True
        with self._lock:
            conns, self._conns = self._conns, []
        for c in conns:
            with contextlib.suppress(OSError):
                c.shutdown(socket.SHUT_RDWR)
            c.close()

    def heal(self) -> None:
        self.blocked = False

    def close(self) -> None:
        self._closed = True
        self.cut()
        self._thread.join(timeout=2)
        self._sock.close()


class Cluster:
    def __init__(self, names: list[str], tmp: Path) -> None:
        self.names = names
        self.tmp = tmp
        self.ports: dict[str, int] = {}
        # proxies hold their ports from the start; nodes listen on port 0 and say which port
        # they got, so no port is picked and then lost to another process
        self.links = {(a, b): LinkProxy() for a in names for b in names if a != b}
        self.procs: dict[str, subprocess.Popen[bytes]] = {}
        (tmp / "key").write_text(KEY_HEX)

    def start(self, name: str) -> None:
        self.spawn(name)
        self.wait_ready(name)

    def wait_ready(self, name: str) -> None:
        proc = self.procs[name]
        assert proc.stdout is not None
        ready, _, _ = select.select([proc.stdout], [], [], 60)
        assert ready, f"{name} did not start"
        line = proc.stdout.readline().decode()
        assert "listening on" in line, f"{name} did not start: {line!r}"
        self.ports[name] = int(line.rsplit(":", 1)[1])
        for (_, b), proxy in self.links.items():
            if b == name:
                proxy.target = self.ports[name]
        wait_for(lambda: self.try_status(name) is not None, 30, f"{name} does not answer")

    def spawn(self, name: str) -> None:
        argv = [sys.executable, "-c", SERVE, "serve", "--name", name]
        argv += ["--listen", "127.0.0.1:0", "--key-file", str(self.tmp / "key")]
        argv += ["--path", str(self.tmp / name), "--interval", "0.1", "--dev-api"]
        for peer in self.names:
            if peer != name:
                argv += ["--peer", f"{peer}=http://127.0.0.1:{self.links[(name, peer)].port}"]
        self.procs[name] = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL)

    def url(self, name: str, path: str) -> str:
        return f"http://127.0.0.1:{self.ports[name]}{path}"

    def try_status(self, name: str) -> dict[str, Any] | None:
        try:
            with urllib.request.urlopen(self.url(name, "/msdb/v1/status"), timeout=2) as r:
                result: dict[str, Any] = json.loads(r.read())
                return result
        except OSError:
            return None

    def status(self, name: str) -> dict[str, Any]:
        result = self.try_status(name)
        assert result is not None, f"{name} is not answering"
        return result

    def write(self, name: str, op: dict[str, Any]) -> dict[str, Any]:
        req = urllib.request.Request(
            self.url(name, "/msdb/v1/dev/write"), data=json.dumps(op).encode(), method="POST"
        )
        with urllib.request.urlopen(req, timeout=5) as r:
            result: dict[str, Any] = json.loads(r.read())
        assert result.get("ok"), result
        return result

    def isolate(self, group: list[str]) -> None:
        for (a, b), proxy in self.links.items():
            if (a in group) != (b in group):
                proxy.cut()

    def heal(self) -> None:
        for proxy in self.links.values():
            proxy.heal()

    def digests(self, names: list[str] | None = None) -> set[str]:
        return {self.status(n)["digest"] for n in names or self.names}

    def stop(self, name: str, sig: int = signal.SIGTERM) -> None:
        proc = self.procs.pop(name)
        proc.send_signal(sig)
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait(timeout=10)
        if proc.stdout is not None:
            proc.stdout.close()

    def close(self) -> None:
        for name in list(self.procs):
            self.stop(name)
        for proxy in self.links.values():
            proxy.close()


def wait_for(cond: Callable[[], bool], timeout: float, message: str) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, message
        time.sleep(0.05)


@pytest.fixture(scope="module")
def cluster(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Cluster]:
    # One cluster for the module: starting Python processes is the slow part. Each test uses
    # its own keys and heals what it cut.
    c = Cluster(["a", "b", "c"], tmp_path_factory.mktemp("cluster"))
    try:
        for name in c.names:
            c.spawn(name)  # in parallel
        for name in c.names:
            c.wait_ready(name)
        yield c
    finally:
        c.close()


def test_partition_writes_on_every_side_then_heal(cluster: Cluster) -> None:
    acked: dict[str, int] = {}
    tags: set[str] = set()

    def write(node: str, i: int) -> None:
        cluster.write(node, {"type": "counter", "key": "visits", "n": i})
        cluster.write(node, {"type": "set", "key": "tags", "add": f"{node}-{i}"})
        acked[node] = acked.get(node, 0) + i
        tags.add(f"{node}-{i}")

    for node in cluster.names:
        write(node, 1)
    wait_for(lambda: len(cluster.digests()) == 1, 30, "no convergence before the cut")

    cluster.isolate(["a"])  # a | b c: split brain, every side keeps writing
    for i in range(2, 6):
        for node in cluster.names:
            write(node, i)
    wait_for(lambda: len(cluster.digests(["b", "c"])) == 1, 30, "b and c did not agree")
    assert cluster.status("a")["digest"] not in cluster.digests(["b", "c"])
    assert cluster.status("a")["value"]["visits"] == 1 + 1 + 1 + 2 + 3 + 4 + 5

    cluster.heal()
    wait_for(lambda: len(cluster.digests()) == 1, 30, "no convergence after the heal")
    for node in cluster.names:
        status = cluster.status(node)
        assert status["value"]["visits"] == sum(acked.values())  # no acknowledged write lost
        assert set(status["value"]["tags"]) == tags
        assert status["auth"]["tampered"] == 0
        assert status["auth"]["replayed"] == 0


def test_one_way_cut_and_a_killed_node_that_comes_back(cluster: Cluster) -> None:
    cluster.links[("a", "b")].cut()  # a cannot reach b; b still reaches a
    cluster.write("a", {"type": "counter", "key": "x", "n": 1})
    cluster.write("b", {"type": "counter", "key": "x", "n": 10})
    wait_for(lambda: len(cluster.digests()) == 1, 30, "no convergence around a one-way cut")
    cluster.heal()

    cluster.write("c", {"type": "counter", "key": "x", "n": 100})  # durable when acked
    cluster.stop("c", signal.SIGKILL)
    cluster.write("a", {"type": "counter", "key": "x", "n": 1000})
    cluster.start("c")  # same folder: its log survived the kill
    wait_for(lambda: len(cluster.digests()) == 1, 30, "no convergence after the restart")
    assert cluster.status("c")["value"]["x"] == 1111


def test_forged_tampered_and_replayed_messages_are_refused(cluster: Cluster) -> None:
    url = cluster.url("a", MESSAGE_PATH)

    def post(body: bytes) -> int:
        req = urllib.request.Request(url, data=body, method="POST")
        try:
            with urllib.request.urlopen(req, timeout=5) as r:
                return int(r.status)
        except urllib.error.HTTPError as exc:
            return int(exc.code)

    before = cluster.status("a")["auth"]
    assert post(b"not a message") == 401
    stranger = Authenticator("x", bytes.fromhex(KEY_HEX), boot=1)
    sealed = stranger.seal("a", b"\x91\x02")
    assert post(sealed) == 403  # authentic, but not a member
    assert post(sealed) == 401  # the same bytes again: a replay
    tampered = bytearray(stranger.seal("a", b"\x91\x02"))
    tampered[12] ^= 0x01
    assert post(bytes(tampered)) == 401
    wrong_key = Authenticator("b", bytes(32), boot=os.getpid()).seal("a", b"\x91\x02")
    assert post(wrong_key) == 401
    after = cluster.status("a")["auth"]
    assert after["unauthenticated"] - before["unauthenticated"] == 1
    assert after["replayed"] - before["replayed"] == 1
    assert after["tampered"] - before["tampered"] == 2
