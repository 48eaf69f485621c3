"""The shipped event-store contract, run on the in-memory and folder archives."""

from __future__ import annotations

from pathlib import Path

import pytest

from microstatedb.log import EventStore, FolderEventStore, MemoryEventStore
from microstatedb.testing import EventStoreContract


class TestMemoryEventStore(EventStoreContract):
    def make_store(self) -> EventStore:
        return MemoryEventStore()


class TestFolderEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _folder(self, tmp_path: Path) -> None:
        self.root = tmp_path
        self.made = 0

    def make_store(self) -> EventStore:
        self.made += 1
        return FolderEventStore(self.root / f"archive{self.made}")


def test_the_event_store_contract_needs_its_hook() -> None:
    with pytest.raises(NotImplementedError):
        EventStoreContract().make_store()
