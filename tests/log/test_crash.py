"""Crash tests: a child process appends, the parent SIGKILLs it at random points and reopens.

Under ``always`` every acknowledged event must survive; under ``batch`` everything up to the
last completed ``flush()`` must, and whatever else survived must be exactly what was appended.
"""

from __future__ import annotations

import os
import random
import signal
import subprocess
import sys
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

from microstatedb.log import EventLog

pytestmark = pytest.mark.skipif(not hasattr(signal, "SIGKILL"), reason="needs POSIX signals")

CYCLES = 30
LANES = 3

CHILD = r"""
import importlib.util, sys, threading, types

# Only the log layer is needed: skip the package's top-level imports (CRDTs, pycrdt, the store)
# so that the many process starts stay fast.
_spec = importlib.util.find_spec("microstatedb")
_pkg = types.ModuleType("microstatedb")
_pkg.__path__ = list(_spec.submodule_search_locations)
sys.modules["microstatedb"] = _pkg

from microstatedb.codec import Event
from microstatedb.log import EventLog

path, durability, origin, threads = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
log = EventLog(path, durability=durability, segment_bytes=2048, batch_interval=0.002)
out_lock = threading.Lock()
print("open", log.next_position, flush=True)

def say(*words):
    with out_lock:
        sys.stdout.write(" ".join(map(str, words)) + "\n")
        sys.stdout.flush()

def run(name):
    seq = 0
    while True:
        seq += 1
        pos = log.append(Event(name, seq, seq, {}, "k", "counter", ["payload", name, seq]))
        if durability == "always":
            say("ack", pos, name, seq)
        elif seq % 5 == 0:
            log.flush()
            say("flushed", pos, name, seq)

workers = [threading.Thread(target=run, args=(f"{origin}-{i}",)) for i in range(threads)]
for w in workers:
    w.start()
for w in workers:
    w.join()
"""


def _cycle(path: Path, durability: str, origin: str, threads: int, acks: int) -> list[list[str]]:
    """Run one child until it acknowledged ``acks`` lines, SIGKILL it, return every line."""
    proc = subprocess.Popen(
        [sys.executable, "-c", CHILD, str(path), durability, origin, str(threads)],
        stdout=subprocess.PIPE,
        text=True,
    )
    assert proc.stdout is not None
    lines = [proc.stdout.readline().split()]
    assert lines[0][0] == "open", lines
    while len(lines) <= acks:
        line = proc.stdout.readline()
        if not line:
            break
        lines.append(line.split())
    os.kill(proc.pid, signal.SIGKILL)
    # Lines the child wrote before the signal landed were acknowledged too.
    lines += [line.split() for line in proc.stdout.read().splitlines()]
    proc.wait()
    proc.stdout.close()
    assert proc.returncode == -signal.SIGKILL
    return lines


def _dots(path: Path) -> list[tuple[str, int]]:
    with EventLog(path, durability="none") as log:
        return [ev.dot for ev in log.read()]


def _always_lane(path: Path, seed: int) -> None:
    """Kill-and-reopen cycles on one folder (a torn tail may be cut at any reopening)."""
    rng = random.Random(seed)
    for cycle in range(CYCLES // LANES):
        lines = _cycle(path, "always", f"c{cycle}", threads=2, acks=rng.randint(0, 16))
        with EventLog(path, durability="none") as log:
            assert not log.recovery.quarantined
            events = list(log.read())
        start = int(lines[0][1])
        for _word, pos, name, seq in (line for line in lines[1:] if line[0] == "ack"):
            assert events[int(pos)].dot == (name, int(seq))
        # Nothing else than this cycle's appends, each once, each writer's in order.
        mine = [ev.dot for ev in events[start:]]
        assert len(set(mine)) == len(mine)
        for thread in ("0", "1"):
            seqs = [seq for name, seq in mine if name == f"c{cycle}-{thread}"]
            assert seqs == list(range(1, len(seqs) + 1))


def _batch_lane(path: Path, seed: int) -> None:
    rng = random.Random(seed)
    for cycle in range(CYCLES // LANES):
        lines = _cycle(path, "batch", f"c{cycle}", threads=1, acks=rng.randint(0, 8))
        dots = _dots(path)
        start = int(lines[0][1])
        flushed = [int(line[1]) for line in lines[1:] if line[0] == "flushed"]
        last = flushed[-1] if flushed else start - 1
        assert len(dots) >= last + 1
        # What survived of this cycle is exactly a prefix of what it appended, in order.
        origin = f"c{cycle}-0"
        assert dots[start:] == [(origin, seq) for seq in range(1, len(dots) - start + 1)]


def _run_lanes(tmp_path: Path, lane: Callable[[Path, int], None], seed: int) -> None:
    # Independent folders side by side: process starts overlap with other lanes' fsyncs.
    with ThreadPoolExecutor(LANES) as pool:
        futures = [pool.submit(lane, tmp_path / f"lane{i}", seed + i) for i in range(LANES)]
        for future in futures:
            future.result()  # re-raises a lane's failed assertion


@pytest.mark.integration
def test_always_never_loses_an_acknowledged_event(tmp_path: Path) -> None:
    _run_lanes(tmp_path, _always_lane, 20261130)


@pytest.mark.integration
def test_batch_keeps_everything_up_to_the_last_flush(tmp_path: Path) -> None:
    _run_lanes(tmp_path, _batch_lane, 7)
