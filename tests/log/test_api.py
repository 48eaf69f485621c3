"""The public names of the log and testing packages are pinned."""

from __future__ import annotations

import subprocess
import sys

import microstatedb.log
import microstatedb.testing


def test_log_public_names() -> None:
    assert set(microstatedb.log.__all__) == {
        "DURABILITY_POLICIES",
        "SEGMENT_FORMAT",
        "SNAPSHOT_FORMAT",
        "EventLog",
        "EventStore",
        "FolderEventStore",
        "LogStats",
        "MemoryEventStore",
        "RecoveryReport",
        "Snapshot",
        "SnapshotInfo",
    }
    assert len(microstatedb.log.__all__) == 11
    for name in microstatedb.log.__all__:
        assert getattr(microstatedb.log, name) is not None


def test_testing_ships_the_event_store_contract() -> None:
    # the whole list is pinned in tests/testing/test_plugin.py
    assert "EventStoreContract" in microstatedb.testing.__all__


def test_the_contracts_import_without_pytest_or_hypothesis() -> None:
    code = (
        "import sys\n"
        "sys.modules['pytest'] = None\n"
        "sys.modules['hypothesis'] = None\n"
        "from microstatedb.testing.contracts import EventStoreContract\n"
        "print(EventStoreContract.__name__)\n"
    )
    out = subprocess.run(
        [sys.executable, "-c", code], check=True, capture_output=True, text=True
    ).stdout
    assert out.strip() == "EventStoreContract"
