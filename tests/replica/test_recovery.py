"""Damaged files under a durable store: the right data, or a clear error, never wrong data."""

from __future__ import annotations

import random
import shutil
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.errors import CorruptData, InvalidOperation

EVENTS = 40


def _write(path: Path, snapshot_every: int = 1000) -> list[bytes]:
    """Write EVENTS events; return the digest after each one (every prefix state)."""
    digests = [msdb.Store("w").digest()]
    with msdb.Store("w", path=path, durability="always", snapshot_every=snapshot_every) as s:
        for i in range(EVENTS):
            if i % 3 == 0:
                s.set("tags").add(f"t{i}")
            elif i % 3 == 1:
                s.counter("n").increment(i)
            else:
                s.map("cart").register("note").set(f"n{i}")
            digests.append(s.digest())
    return digests


@pytest.fixture(scope="module")
def pristine(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, list[bytes]]:
    path = tmp_path_factory.mktemp("pristine") / "store"
    return path, _write(path, snapshot_every=15)


def _files(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file() and p.suffix != ".lock")


@settings(max_examples=40, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.data())
def test_flipped_bytes_give_right_data_or_corrupt_data(
    pristine: tuple[Path, list[bytes]],
    tmp_path_factory: pytest.TempPathFactory,
    data: st.DataObject,
) -> None:
    src, digests = pristine
    path = tmp_path_factory.mktemp("flip") / "store"
    shutil.copytree(src, path)
    files = [f for f in _files(path) if f.stat().st_size > 0]
    victim = data.draw(st.sampled_from(files))
    raw = bytearray(victim.read_bytes())
    for _ in range(data.draw(st.integers(1, 3))):
        i = data.draw(st.integers(0, len(raw) - 1))
        raw[i] ^= data.draw(st.integers(1, 255))
    victim.write_bytes(bytes(raw))
    try:
        store = msdb.Store("w", path=path)
    except CorruptData as exc:
        error = exc
    else:
        error = None
    if error is not None:
        assert error.path is not None  # the error names the file
        return
    with store:
        got = store.digest()
        assert got in digests, "opened with a state that never existed"
        if got != digests[-1]:
            assert not store.recovery.clean, "lost events without saying so"


def test_repair_moves_damage_aside_and_reports_lost_events(tmp_path: Path) -> None:
    path = tmp_path / "store"
    digests = _write(path)
    segments = [f for f in _files(path) if ".seg" in f.name]
    victim = segments[-1]
    raw = bytearray(victim.read_bytes())
    raw[len(raw) // 2] ^= 0xFF
    victim.write_bytes(bytes(raw))
    with pytest.raises(CorruptData) as info:
        msdb.Store("w", path=path)
    assert str(victim) in str(info.value)
    with msdb.Store("w", path=path, repair=True) as store:
        assert store.recovery.quarantined
        assert store.digest() in digests
        kept = sum(store.version_vector.values())
        assert kept < EVENTS
        first, last = store.lost["w"]
        assert first == kept + 1  # exactly the events after the damage
        assert last == EVENTS or store.recovery.undecodable_bytes > 0
        with pytest.raises(InvalidOperation, match="lost its own events"):
            store.counter("n").increment()


def test_lost_events_come_back_from_a_peer(tmp_path: Path) -> None:
    path = tmp_path / "store"
    peer = msdb.Store("peer")
    with msdb.Store("w", path=path, durability="always") as s:
        for i in range(30):
            s.counter("n").increment(i)
        peer.apply(s.events_since({}))
        full = s.digest()
    seg = next(f for f in _files(path) if ".seg" in f.name)
    raw = bytearray(seg.read_bytes())
    raw[len(raw) // 2] ^= 0x55
    seg.write_bytes(bytes(raw))
    with msdb.Store("w", path=path, repair=True) as store:
        assert store.lost
        msdb.sync(store, peer)
        assert store.lost == {}
        assert store.digest() == full
        store.counter("n").increment()  # writes are allowed again
        assert store.version_vector["w"] == 31


def test_accept_loss_allows_writes(tmp_path: Path) -> None:
    path = tmp_path / "store"
    _write(path)
    seg = next(f for f in _files(path) if ".seg" in f.name)
    raw = bytearray(seg.read_bytes())
    raw[-5] ^= 0x01
    seg.write_bytes(bytes(raw))
    with msdb.Store("w", path=path, repair=True) as store:
        if "w" in store.lost:
            store.accept_loss()
        store.counter("n").increment()
        assert store.lost.get("w") is None


def test_torn_tail_is_cut_and_reported(tmp_path: Path) -> None:
    path = tmp_path / "store"
    digests = _write(path)
    seg = [f for f in _files(path) if f.name.endswith(".seg")][-1]
    raw = seg.read_bytes()
    seg.write_bytes(raw[: len(raw) - 3])  # the last frame is now incomplete
    with msdb.Store("w", path=path) as store:
        assert store.recovery.torn_bytes > 0
        assert store.digest() == digests[-2]  # everything but the torn last event


def test_damaged_snapshot_falls_back(tmp_path: Path) -> None:
    path = tmp_path / "store"
    digests = _write(path, snapshot_every=10)
    snaps = [f for f in _files(path) if "snap" in f.name and "quarantine" not in str(f)]
    assert snaps
    for snap in snaps:
        raw = bytearray(snap.read_bytes())
        raw[len(raw) // 2] ^= 0xFF
        snap.write_bytes(bytes(raw))
    with msdb.Store("w", path=path) as store:
        assert store.recovery.damaged_snapshots
        assert store.digest() == digests[-1]  # full replay from the log


def test_random_damage_never_returns_wrong_data_seeded(tmp_path: Path) -> None:
    rng = random.Random(7)
    src = tmp_path / "src"
    digests = _write(src, snapshot_every=12)
    outcomes = {"error": 0, "right": 0, "prefix": 0}
    for round_ in range(25):
        path = tmp_path / f"r{round_}"
        shutil.copytree(src, path)
        victim = rng.choice([f for f in _files(path) if f.stat().st_size])
        raw = bytearray(victim.read_bytes())
        raw[rng.randrange(len(raw))] ^= rng.randrange(1, 256)
        victim.write_bytes(bytes(raw))
        try:
            with msdb.Store("w", path=path) as store:
                got = store.digest()
                assert got in digests
                outcomes["right" if got == digests[-1] else "prefix"] += 1
        except CorruptData:
            outcomes["error"] += 1
    assert outcomes["error"] + outcomes["right"] + outcomes["prefix"] == 25
