"""Small file-system helpers: crash-safe replace, directory fsync, exclusive lock."""

from __future__ import annotations

import os
from pathlib import Path

from microstatedb.errors import InvalidOperation, OperationalError

try:
    import fcntl
except ImportError:  # pragma: no cover - not POSIX: no advisory lock
    fcntl = None  # type: ignore[assignment]


def fsync_dir(path: Path) -> None:
    """Make a rename or a new file in ``path`` durable."""
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def write_temporary(path: Path, data: bytes) -> Path:
    """Write and fsync ``data`` beside ``path`` as ``<name>.tmp``; returns that file."""
    tmp = path.with_name(path.name + ".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    try:
        view = memoryview(data)
        while view:
            view = view[os.write(fd, view) :]
        os.fsync(fd)
    finally:
        os.close(fd)
    return tmp


def write_atomic(path: Path, data: bytes) -> None:
    """Write ``data`` to ``path`` through a temporary file and a rename (crash-safe)."""
    os.replace(write_temporary(path, data), path)
    fsync_dir(path.parent)


def remove_temporaries(folder: Path) -> None:
    """Delete ``*.tmp`` leftovers of writes a crash interrupted."""
    for tmp in folder.glob("*.tmp"):
        tmp.unlink(missing_ok=True)


class FolderLock:
    """An exclusive advisory lock on a folder, so two writers never share one log."""

    def __init__(self, folder: Path) -> None:
        self._fd = os.open(folder / "LOCK", os.O_RDWR | os.O_CREAT, 0o644)
        if fcntl is not None:
            try:
                fcntl.flock(self._fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                os.close(self._fd)
                raise InvalidOperation(
                    f"{folder} is already open (in this or another process); close it first"
                ) from None

    def release(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)  # closing drops the flock
            self._fd = -1


def os_error(what: str, exc: OSError) -> OperationalError:
    """Translate an OS error into the storage error tree, naming what failed."""
    return OperationalError(f"{what} failed: {exc}")
