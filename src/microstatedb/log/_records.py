"""Frozen records the log hands out: recovery report, statistics, snapshot descriptors."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field

Dot = tuple[str, int]


@dataclass(frozen=True, slots=True)
class RecoveryReport:
    """What opening the log found and did about damage."""

    torn_bytes: int = 0
    """Bytes of an incomplete final frame (or segment header) cut off the end of the log."""
    quarantined: tuple[str, ...] = ()
    """Paths of the files moved aside into ``<path>/quarantine/`` (repair mode only)."""
    lost_dots: tuple[Dot, ...] = ()
    """Dots of the events still decodable from the moved-aside bytes, in log order."""
    undecodable_bytes: int = 0
    """Bytes of the moved-aside data that no verified frame accounts for."""
    damaged_snapshots: tuple[str, ...] = ()
    """Paths of snapshots that failed verification and were skipped."""

    @property
    def clean(self) -> bool:
        """True when nothing was cut, moved aside or skipped."""
        return (
            self.torn_bytes == 0
            and not self.quarantined
            and not self.lost_dots
            and self.undecodable_bytes == 0
            and not self.damaged_snapshots
        )


@dataclass(frozen=True, slots=True)
class LogStats:
    """A point-in-time summary of one event log."""

    events: int
    """Events held locally (``next_position - first_position``, gaps left by repair included)."""
    bytes: int
    """Bytes of the segments on disk (compressed size for sealed ones); 0 in memory."""
    segments: int
    """Segment files held locally, the active one included (0 in memory)."""
    sealed_segments: int
    """Segments that are complete and compressed (or closed for writing)."""
    first_position: int
    """Position of the first event still held locally."""
    next_position: int
    """Position the next appended event will get."""
    fsyncs: int
    """fsync calls made on segment files since the log was opened."""


@dataclass(frozen=True, slots=True)
class SnapshotInfo:
    """Describes one stored snapshot of the derived state."""

    id: str
    """blake3 hex digest of the snapshot's content (position, version vector and state)."""
    vv: Mapping[str, int]
    """The version vector the state covers."""
    position: int
    """Number of log events the state covers: replay resumes at this position."""
    path: str | None
    """The snapshot's file, or None for an in-memory log."""
    size: int
    """Size of the state bytes."""


@dataclass(frozen=True, slots=True)
class Snapshot:
    """A verified snapshot: its descriptor and the opaque state bytes."""

    info: SnapshotInfo
    """Identity, coverage and location."""
    state: bytes = field(repr=False)
    """The state bytes exactly as given to ``write_snapshot``."""
