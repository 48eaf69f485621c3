"""Version negotiation: readers announce the versions they can read; writers respect them.

During a rolling upgrade some consumers still run the old code. Each service announces, per
subject, the schema versions it can read (for example in a header or at start-up); a writer
then refuses to emit a version some declared reader cannot read, and can pick the newest
version that every reader accepts.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from urllib.parse import quote, unquote

from microstatedb.errors import ConfigurationError, IncompatibleSchema


def encode_versions(versions: Mapping[str, Iterable[int]]) -> str:
    """A header value announcing readable versions: ``orders=1,2;payments=3``."""
    return ";".join(
        f"{quote(subject, safe='')}={','.join(str(v) for v in sorted(set(vs)))}"
        for subject, vs in sorted(versions.items())
    )


def decode_versions(header: str) -> dict[str, frozenset[int]]:
    """The announcement in a header made by :func:`encode_versions`."""
    out: dict[str, frozenset[int]] = {}
    for part in filter(None, header.split(";")):
        subject, sep, numbers = part.partition("=")
        try:
            versions = frozenset(int(n) for n in numbers.split(",") if n)
        except ValueError:
            versions = frozenset({0})
        if not sep or not subject or any(v < 1 for v in versions):
            raise ConfigurationError(f"malformed version announcement {part!r}")
        out[unquote(subject)] = versions
    return out


class VersionNegotiator:
    """What each reader service can read, per subject."""

    def __init__(self) -> None:
        self._readers: dict[str, dict[str, frozenset[int]]] = {}

    def announce(self, service: str, subject: str, versions: Iterable[int]) -> None:
        """``service`` can read these versions of ``subject`` (replaces its earlier word)."""
        known = frozenset(versions)
        if not known or any(v < 1 for v in known):
            raise ConfigurationError(f"{service!r} must announce positive versions, got {known}")
        self._readers.setdefault(subject, {})[service] = known

    def announce_header(self, service: str, header: str) -> None:
        """Record an announcement received as a header value."""
        for subject, versions in decode_versions(header).items():
            self.announce(service, subject, versions)

    def withdraw(self, service: str) -> None:
        """``service`` reads nothing any more (it was shut down)."""
        for readers in self._readers.values():
            readers.pop(service, None)

    def readers(self, subject: str) -> dict[str, frozenset[int]]:
        """The declared readers of ``subject`` and their versions."""
        return dict(self._readers.get(subject, {}))

    def check(self, subject: str, version: int) -> None:
        """Raise IncompatibleSchema if a declared reader of ``subject`` cannot read ``version``."""
        unable = sorted(s for s, vs in self._readers.get(subject, {}).items() if version not in vs)
        if unable:
            raise IncompatibleSchema(
                f"version {version} of {subject!r} cannot be read by {', '.join(unable)}; "
                "emit an older version or upgrade those readers first"
            )

    def choose(self, subject: str, candidates: Iterable[int]) -> int:
        """The newest of ``candidates`` that every declared reader of ``subject`` can read."""
        readers = self._readers.get(subject, {})
        ok = [v for v in candidates if all(v in vs for vs in readers.values())]
        if not ok:
            raise IncompatibleSchema(
                f"no version of {subject!r} is readable by every reader "
                f"({', '.join(sorted(readers))})"
            )
        return max(ok)
