"""SIGKILL a writing process at random points; every acknowledged write must be there."""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

import microstatedb as msdb

WRITER = """
import sys
import microstatedb as msdb
store = msdb.Store("w", path=sys.argv[1], durability="always", snapshot_every=int(sys.argv[2]))
c = store.counter("n")
tags = store.set("tags")
while True:
    c.increment()
    tags.add(c.value)
    print(c.value, flush=True)
"""


@pytest.mark.integration
def test_acknowledged_writes_survive_sigkill(tmp_path: Path) -> None:
    rng = random.Random(2026)
    path = tmp_path / "store"
    acked = 0
    printed: set[int] = set()
    for _cycle in range(12):
        proc = subprocess.Popen(
            [sys.executable, "-c", WRITER, str(path), str(rng.choice([7, 50, 1000]))],
            stdout=subprocess.PIPE,
            text=True,
        )
        assert proc.stdout is not None
        deadline = time.monotonic() + rng.uniform(0.05, 0.4)
        last = acked
        while time.monotonic() < deadline:
            line = proc.stdout.readline()
            if not line:
                break
            last = int(line)
        os.kill(proc.pid, signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
        acked = max(acked, last)
        with msdb.Store("w", path=path) as store:
            n = store.counter("n").value
            assert n >= acked, f"lost acknowledged writes: {n} < {acked}"
            tags = store.set("tags").value
            assert printed <= tags, f"lost acknowledged adds: {sorted(printed - tags)[:5]}"
    assert acked > 0
