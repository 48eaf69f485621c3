"""The append-only event log: segments, framing, compression, snapshots, recovery, archives.

The log knows ``codec.Event`` envelopes (origin, seq) and nothing of CRDT semantics; snapshot
state is opaque bytes. The store above it (``replica``) decides when to snapshot and release.
Formats, durability and recovery are described in docs/log-format.md, docs/durability.md and
docs/recovery.md.
"""

from microstatedb.log._format import SEGMENT_FORMAT
from microstatedb.log._log import DURABILITY_POLICIES, EventLog
from microstatedb.log._records import LogStats, RecoveryReport, Snapshot, SnapshotInfo
from microstatedb.log._snapshots import SNAPSHOT_FORMAT
from microstatedb.log._stores import EventStore, FolderEventStore, MemoryEventStore

__all__ = [
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
]
