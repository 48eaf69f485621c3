"""External event stores: archive throughput, bootstrap time, replication lag via JetStream.

Run: ``uv run python benchmarks/bench_stores.py`` (about a minute; ``--quick`` for a smoke
run). Needs PostgreSQL on 127.0.0.1:5432 and NATS with JetStream on 127.0.0.1:4222 (``.ci/
services`` starts both). Writes docs/performance-stores.md. The local folder store
(``log.FolderEventStore``) is the baseline, measured in the same run: every backend figure
comes with its ratio to it. Each run uses a database and streams of its own, dropped at the
end whatever happens.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import shutil
import statistics
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import nats
import psycopg
from psycopg import sql

import microstatedb as msdb
from _harness import table
from _plot import from_rows, plot, writing
from microstatedb.codec import Event
from microstatedb.log import EventStore, FolderEventStore
from microstatedb.replica import decode_batch
from microstatedb.stores import (
    DEFAULT_DSN,
    DEFAULT_SERVERS,
    JetStreamEventStore,
    JetStreamReplicator,
    PostgresEventStore,
    bootstrap,
)

DOC = Path(__file__).resolve().parents[1] / "docs" / "performance-stores.md"
RUN = uuid.uuid4().hex[:8]


# ------------------------------------------------------------------------- resources


@contextmanager
def database() -> Iterator[str]:
    name = f"msdb_bench_{RUN}"
    admin = psycopg.connect(DEFAULT_DSN, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    finally:
        from microstatedb.stores._postgres import close_idle_connections

        close_idle_connections()
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


async def _drop_streams(prefix: str) -> None:
    nc = await nats.connect(DEFAULT_SERVERS)
    try:
        js = nc.jetstream()
        for info in await js.streams_info():
            if (info.config.name or "").startswith(prefix):
                await js.delete_stream(info.config.name or "")
    finally:
        await nc.close()


class Backends:
    """Makes fresh, empty stores of each kind; removes everything at the end."""

    def __init__(self, dsn: str, folder: Path) -> None:
        self.dsn = dsn
        self.folder = folder
        self.count = 0
        self.opened: list[EventStore] = []

    def make(self, kind: str) -> EventStore:
        if kind == "jetstream":
            return self.jetstream()
        self.count += 1
        name = f"b{RUN}_{self.count}"
        store: EventStore
        if kind == "folder":
            store = FolderEventStore(self.folder / name)
        else:
            store = PostgresEventStore(self.dsn, table=name)
        self.opened.append(store)
        return store

    def jetstream(self) -> JetStreamEventStore:
        self.count += 1
        store = JetStreamEventStore(f"msdbbench_b{RUN}_{self.count}", page_size=2000)
        self.opened.append(store)
        return store

    def close(self) -> None:
        for store in self.opened:
            store.close()
        asyncio.run(_drop_streams(f"msdbbench_b{RUN}_"))


KINDS = ("folder", "postgres", "jetstream")


# ---------------------------------------------------------------------- the history


def history(events: int, origins: int = 4) -> list[Event]:
    """A realistic archived history: counter and set writes from several replicas, synced."""
    stores = [msdb.Store(f"node{i}") for i in range(origins)]
    per = events // origins
    for step in range(per):
        for i, s in enumerate(stores):
            if step % 3:
                s.counter(f"visits:{step % 50}").increment()
            else:
                s.set(f"tags:{step % 20}").add(f"t{(step + i) % 30}")
        if step % 100 == 99:
            for s in stores[1:]:
                msdb.sync(stores[0], s)
    for s in stores[1:]:
        msdb.sync(stores[0], s)
    return decode_batch(stores[0].events_since({})).events


# ------------------------------------------------------------------------ measuring


def archive_rate(backends: Backends, kind: str, events: list[Event], batch: int) -> float:
    """Events per second appended in batches of ``batch`` (as a log releases them)."""
    store = backends.make(kind)
    t0 = time.perf_counter()
    for i in range(0, len(events), batch):
        store.append(events[i : i + batch])
    return len(events) / (time.perf_counter() - t0)


def bootstrap_time(source: EventStore) -> tuple[float, str]:
    """Seconds to rebuild a new in-memory replica from ``source``; and its digest."""
    replica = msdb.Store("rebuilt", snapshot_every=10**9)
    t0 = time.perf_counter()
    bootstrap(replica, source)
    return time.perf_counter() - t0, replica.digest().hex()


def read_time(source: EventStore) -> float:
    t0 = time.perf_counter()
    for _ in source.read():
        pass
    return time.perf_counter() - t0


def lag(
    channel_factory: Callable[[], JetStreamEventStore], writes: int, rounds: int
) -> dict[str, float]:
    """Median milliseconds from ``writes`` local writes on A until B has applied them."""
    direct: list[float] = []
    via: list[float] = []
    a1, b1 = msdb.Store("a"), msdb.Store("b")
    a2, b2 = msdb.Store("a"), msdb.Store("b")
    channel = channel_factory()
    ra, rb = JetStreamReplicator(a2, channel), JetStreamReplicator(b2, channel)
    for _ in range(rounds):
        t0 = time.perf_counter()
        for _ in range(writes):
            a1.counter("n").increment()
        b1.apply(a1.events_since(b1.version_vector))
        direct.append(time.perf_counter() - t0)
        t0 = time.perf_counter()
        for _ in range(writes):
            a2.counter("n").increment()
        ra.publish()
        rb.pull()
        via.append(time.perf_counter() - t0)
    if b1.digest() != a1.digest() or b2.digest() != a2.digest():
        raise SystemExit("replication lag run: B did not converge to A")
    return {"direct": statistics.median(direct) * 1000, "jetstream": statistics.median(via) * 1000}


# ----------------------------------------------------------------------------- main


def main(argv: list[str] | None = None) -> str:
    parser = argparse.ArgumentParser(description=__doc__.split("\n", 1)[0])
    parser.add_argument("--quick", action="store_true", help="small sizes, for a smoke run")
    parser.add_argument("--events", type=int, help="archived events for the bootstrap")
    parser.add_argument("--no-write", action="store_true", help="print only, keep the docs")
    args = parser.parse_args(argv)
    writing(not args.no_write)  # --no-write leaves the plots alone too
    quick = args.quick
    # Sized for about a minute on a shared 2-core machine: the bootstrap dominates.
    archive_events = 2_000 if quick else 8_000
    boot_events = args.events or (4_000 if quick else 20_000)
    repeats = 1 if quick else 3
    started = time.perf_counter()
    cpu = time.process_time()

    tmp = Path(tempfile.mkdtemp(prefix="msdb-bench-stores-"))
    try:
        with database() as dsn:
            backends = Backends(dsn, tmp)
            try:
                report = run(backends, archive_events, boot_events, repeats, quick)
            finally:
                backends.close()
    finally:
        shutil.rmtree(tmp, ignore_errors=True)
    elapsed = time.perf_counter() - started
    cpu = time.process_time() - cpu
    load = os.getloadavg()[0]
    head = (
        "# Performance: external event stores\n\n"
        "Written by `uv run python benchmarks/bench_stores.py`"
        + (" --quick" if quick else "")
        + f" in {elapsed:.0f} s ({cpu:.0f} s of CPU in this process); every backend measured"
        " in the same run on the same machine,"
        " against the local folder store (`log.FolderEventStore`) as the baseline.\n\n"
        f"Machine: {platform.machine()}, {platform.system()}, {os.cpu_count()} cores, load "
        f"average {load:.1f} at the end of the run (the machine is shared; PostgreSQL 15 and "
        f"NATS 2.9 run on it too, over loopback), Python {platform.python_version()}.\n\n"
    )
    text = head + report
    print(text)
    if not args.no_write:
        DOC.write_text(text, encoding="utf-8")
    return text


def run(
    backends: Backends, archive_events: int, boot_events: int, repeats: int, quick: bool
) -> str:
    out: list[str] = []
    events = history(archive_events)
    # ------------------------------------------------------------ archive throughput
    out.append("## Archive throughput\n")
    out.append(
        f"{len(events):,} events of a 4-replica history (counters and sets) appended to a "
        "new, empty store in batches, as a log's release hands them over (a batch per "
        f"snapshot interval). Events per second, median of {repeats} runs, each on a fresh "
        "table, stream or folder.\n"
    )
    rows = []
    rates: dict[tuple[str, int], float] = {}
    for batch in (100, 1_000):
        for kind in KINDS:
            runs = [archive_rate(backends, kind, events, batch) for _ in range(repeats)]
            rates[(kind, batch)] = statistics.median(runs)
        for kind in KINDS:
            rate = rates[(kind, batch)]
            ratio = rate / rates[("folder", batch)]
            rows.append([kind, f"{batch:,}", f"{rate:,.0f}", f"{ratio:.2f}x"])
    out.append(table(["backend", "batch", "events/s", "vs folder"], rows) + "\n")
    panels = [
        from_rows(
            rows,
            {"events/s": 2},
            axis="events per second (higher is better)",
            label=lambda r: f"{r[0]}, batches of {r[1]}",
            baselines=[i for i, r in enumerate(rows) if r[0] == "folder"],
            note=lambda r: f"{r[3]} folder",
            title="Archive throughput",
        )
    ]
    out.append(
        "The folder store writes, fsyncs and renames one file per batch, so small batches "
        "cost it an fsync each; PostgreSQL commits one transaction per batch; JetStream "
        "looks up every dot (a direct get) and publishes one acknowledged message per event, "
        "pipelined, so its rate hardly depends on the batch size.\n"
    )
    # --------------------------------------------------------------------- bootstrap
    out.append("## Bootstrap of a new replica\n")
    boot = history(boot_events)
    out.append(
        f"A new in-memory replica rebuilt with `stores.bootstrap` from {len(boot):,} archived "
        "events (4 origins, 70 keys), read back in append order and applied in batches of "
        f"10,000 through `Store.apply`. Median of {repeats} runs; the read alone is timed "
        "separately (a plain iteration over `read()`). Every rebuilt replica's digest is "
        "checked against the others.\n"
    )
    rows = []
    seconds: dict[str, float] = {}
    digests: set[str] = set()
    for kind in KINDS:
        source = backends.make(kind)
        for i in range(0, len(boot), 10_000):
            source.append(boot[i : i + 10_000])
        runs = []
        for _ in range(repeats):
            s, digest = bootstrap_time(source)
            runs.append(s)
            digests.add(digest)
        seconds[kind] = statistics.median(runs)
        reading = statistics.median(read_time(source) for _ in range(repeats))
        rows.append(
            [
                kind,
                f"{seconds[kind]:.2f}",
                f"{len(boot) / seconds[kind]:,.0f}",
                f"{reading:.2f}",
                f"{seconds[kind] / seconds['folder']:.2f}x",
            ]
        )
    if len(digests) != 1:
        raise SystemExit("bootstrap: the rebuilt replicas differ")
    out.append(
        table(["source", "bootstrap (s)", "events/s", "read alone (s)", "time vs folder"], rows)
        + "\n"
    )
    panels.append(
        from_rows(
            rows,
            {"bootstrap": 1, "read alone": 3},
            axis="seconds",
            note=lambda r: f"{r[4]} folder",
            title=f"Bootstrap of a new replica from {len(boot):,} events",
        )
    )
    per_million = {k: v * 1_000_000 / len(boot) for k, v in seconds.items()}
    out.append(
        "Extrapolated to a million archived events (linear: the replay holds one batch at a "
        "time): "
        + ", ".join(f"{k} {v:.0f} s" for k, v in per_million.items())
        + ". Most of the time is `Store.apply` (decoding, checking each operation on a "
        "scratch CRDT, applying), the same for every source; what differs is the read.\n"
    )
    # ------------------------------------------------------------- replication lag
    out.append("## Replication lag: JetStream versus direct\n")
    writes, rounds = (50, 5) if quick else (100, 30)
    got = lag(backends.jetstream, writes, rounds)
    out.append(
        f"Milliseconds from {writes} local writes on store A until store B has applied them, "
        f"median of {rounds} rounds: **direct** is `b.apply(a.events_since(b.version_vector))` "
        "in the same process (what an anti-entropy round does, without the network); "
        "**JetStream** is `JetStreamReplicator.publish()` on A then `pull()` on B (publish "
        "with acknowledgements, durable consumer fetch, apply, acknowledgement).\n"
    )
    rows = [
        ["direct", f"{got['direct']:.2f}", "1.00x"],
        ["JetStream", f"{got['jetstream']:.2f}", f"{got['jetstream'] / got['direct']:.1f}x"],
    ]
    out.append(table(["path", "lag (ms)", "vs direct"], rows) + "\n")
    panels.append(
        from_rows(
            rows,
            {"lag": 1},
            axis="milliseconds",
            note=lambda r: f"{r[2]} direct",
            title=f"Replication lag of {writes} writes",
        )
    )
    out.append(
        plot("stores", "External event stores against their baselines, same run", *panels) + "\n"
    )
    return "\n".join(out)


if __name__ == "__main__":
    main()
