"""The EventStore contract, run against both stores the log package ships."""

from __future__ import annotations

import itertools
from pathlib import Path

import pytest

from microstatedb.codec import Event
from microstatedb.errors import ConfigurationError, CorruptData, InvalidOperation
from microstatedb.log import EventStore, FolderEventStore, MemoryEventStore
from microstatedb.testing import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    def make_store(self) -> EventStore:
        return MemoryEventStore()


class TestFolderEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.counter = itertools.count()

    def make_store(self) -> EventStore:
        return FolderEventStore(self.root / f"store{next(self.counter)}")


def ev(origin: str, seq: int) -> Event:
    return Event(origin, seq, seq, {}, "k", "counter", seq)


def test_both_satisfy_the_protocol(tmp_path: Path) -> None:
    folder = FolderEventStore(tmp_path)
    assert isinstance(folder, EventStore)
    assert isinstance(MemoryEventStore(), EventStore)
    folder.close()


def test_folder_store_survives_reopen_and_ignores_leftover_temporaries(tmp_path: Path) -> None:
    store = FolderEventStore(tmp_path)
    store.append([ev("a", 1), ev("a", 2)])
    store.append([ev("b", 1)])
    store.close()
    (tmp_path / "00000000000000000003.batch.tmp").write_bytes(b"half a batch")
    store = FolderEventStore(tmp_path)
    assert [e.dot for e in store.read()] == [("a", 1), ("a", 2), ("b", 1)]
    assert len(store) == 3
    store.append([ev("a", 2), ev("a", 3)])
    assert [e.dot for e in store.read(2)] == [("b", 1), ("a", 3)]
    assert not list(tmp_path.glob("*.tmp"))
    store.close()


def test_folder_store_refuses_a_second_opener(tmp_path: Path) -> None:
    store = FolderEventStore(tmp_path)
    with pytest.raises(InvalidOperation):
        FolderEventStore(tmp_path)
    store.close()


@pytest.mark.parametrize("where", ["header", "body", "missing", "short", "magic"])
def test_folder_store_detects_damage(tmp_path: Path, where: str) -> None:
    store = FolderEventStore(tmp_path)
    store.append([ev("a", 1), ev("a", 2)])
    store.append([ev("a", 3)])
    store.close()
    files = sorted(tmp_path.glob("*.batch"))
    if where == "missing":
        files[0].unlink()
        with pytest.raises(CorruptData) as info:
            FolderEventStore(tmp_path)
        assert info.value.path == str(files[1])
        return
    data = bytearray(files[0].read_bytes())
    if where == "short":
        data = data[:5]
    elif where == "magic":
        data[0] ^= 0x40
    else:
        data[5 if where == "header" else len(data) - 20] ^= 0x40
    files[0].write_bytes(bytes(data))
    if where != "body":
        with pytest.raises(CorruptData) as info:
            FolderEventStore(tmp_path)
    else:
        store = FolderEventStore(tmp_path)
        with pytest.raises(CorruptData) as info:
            list(store.read())
        store.close()
    assert info.value.path == str(files[0])


def test_bad_arguments_are_configuration_errors(tmp_path: Path) -> None:
    store = MemoryEventStore()
    with pytest.raises(ConfigurationError):
        list(store.read(-1))
    with pytest.raises(ConfigurationError):
        list(store.read(0, limit=-2))
    with pytest.raises(ConfigurationError):
        store.append(ev("a", 1))  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        FolderEventStore(42)  # type: ignore[arg-type]
