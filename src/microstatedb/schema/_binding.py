"""The data-path binding: validate and frame on write, decode and upcast on read.

The store calls :meth:`SchemaBinding.validate_and_frame` for every value written under a key
prefix bound to a subject, and :meth:`SchemaBinding.upcast` (or :meth:`read`) when it reads or
replays one. Schemas come from a :class:`SchemaSource`: the embedded registry or a
:class:`RegistryClient` (whose cache keeps known schemas working through an outage).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Protocol

from microstatedb.errors import SchemaNotFound
from microstatedb.schema._compat import ParsedSchema, parse_schema
from microstatedb.schema._negotiate import VersionNegotiator
from microstatedb.schema._types import RegisteredSchema
from microstatedb.schema._upcast import Upcasters
from microstatedb.schema._validate import Check, compile_check, decode_value, encode_value
from microstatedb.schema._wire import frame, unframe


class SchemaSource(Protocol):
    """Where a binding finds schemas (EmbeddedRegistry and RegistryClient both are)."""

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with that id."""
        ...

    def get_version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        """A version of a subject."""
        ...

    def versions(self, subject: str) -> list[int]:
        """The versions of a subject."""
        ...


@dataclass(frozen=True)
class Decoded:
    """A framed value, decoded."""

    schema_id: int
    """The id in its frame."""
    value: Any
    """The value as written."""


@dataclass(frozen=True)
class _Writer:
    registered: RegisteredSchema
    parsed: ParsedSchema
    check: Check


class SchemaBinding:
    """Validation, framing and upcasting for the subjects a store binds key prefixes to."""

    def __init__(
        self,
        source: SchemaSource,
        *,
        upcasters: Upcasters | None = None,
        negotiator: VersionNegotiator | None = None,
    ):
        self.source = source
        self.upcasters = upcasters if upcasters is not None else Upcasters()
        self.negotiator = negotiator
        self._writers: dict[str, _Writer] = {}
        self._pinned: dict[str, int] = {}
        self._parsed: dict[int, ParsedSchema] = {}
        self._id_versions: dict[tuple[str, int], int] = {}
        self._prefixes: dict[str, str] = {}

    def bind(self, prefix: str, subject: str) -> None:
        """Values written under keys starting with ``prefix`` follow ``subject``'s schema."""
        self._prefixes[prefix] = subject

    def subject_for(self, key: str) -> str | None:
        """The subject bound to the longest prefix of ``key``, or None if none is bound."""
        best: str | None = None
        for prefix in self._prefixes:
            if key.startswith(prefix) and (best is None or len(prefix) > len(best)):
                best = prefix
        return None if best is None else self._prefixes[best]

    def pin(self, subject: str, version: int | None) -> None:
        """Write ``subject`` with this version (None: follow the latest again)."""
        if version is None:
            self._pinned.pop(subject, None)
        else:
            self._pinned[subject] = version
        self._writers.pop(subject, None)

    def negotiate(self, subject: str) -> int:
        """Pin the newest version every declared reader can read, and return it."""
        negotiator = self.negotiator if self.negotiator is not None else VersionNegotiator()
        version = negotiator.choose(subject, self.source.versions(subject))
        self.pin(subject, version)
        return version

    def refresh(self, subject: str) -> None:
        """Forget the cached writer schema of ``subject`` (a new version was registered)."""
        self._writers.pop(subject, None)

    def writer(self, subject: str) -> RegisteredSchema:
        """The schema that writes to ``subject`` now."""
        return self._writer(subject).registered

    def validate(self, subject: str, value: Any) -> None:
        """Raise SchemaViolation (with the bad field's path) if ``value`` breaks the schema."""
        self._writer(subject).check(value)

    def validate_and_frame(self, subject: str, value: Any) -> bytes:
        """Validate ``value`` and encode it in the Confluent wire format with its schema id."""
        writer = self._writer(subject)
        writer.check(value)
        if self.negotiator is not None and writer.registered.version is not None:
            self.negotiator.check(subject, writer.registered.version)
        return frame(writer.registered.id, encode_value(writer.parsed, value))

    def decode(self, data: bytes) -> Decoded:
        """The schema id and value of a framed value."""
        schema_id, payload = unframe(data)
        return Decoded(schema_id, decode_value(self.parsed(schema_id), payload))

    def version_of(self, subject: str, schema_id: int) -> int:
        """The version of ``subject`` that holds the schema ``schema_id``."""
        key = (subject, schema_id)
        if key not in self._id_versions:
            for version in self.source.versions(subject):
                found = self.source.get_version(subject, version)
                self._id_versions[(subject, found.id)] = version
        if key not in self._id_versions:
            raise SchemaNotFound(f"schema {schema_id} is not a version of {subject!r}")
        return self._id_versions[key]

    def upcast(self, subject: str, from_version: int, value: Any) -> Any:
        """``value`` of ``from_version`` migrated to the version this binding writes."""
        target = self._writer(subject).registered.version
        return self.upcasters.upcast(subject, from_version, value, target)

    def read(self, subject: str, data: bytes) -> Any:
        """Decode a framed value of ``subject`` and upcast it to the current version."""
        decoded = self.decode(data)
        return self.upcast(subject, self.version_of(subject, decoded.schema_id), decoded.value)

    def parsed(self, schema_id: int) -> ParsedSchema:
        """The parsed schema with that id (references resolved through the source)."""
        found = self._parsed.get(schema_id)
        if found is None:
            found = self._parse(self.source.schema_by_id(schema_id))
            self._parsed[schema_id] = found
        return found

    def _parse(self, registered: RegisteredSchema) -> ParsedSchema:
        references: dict[str, Any] = {}
        for ref in registered.references:
            target = self.source.get_version(ref.subject, ref.version)
            parsed = self.parsed(target.id)
            if parsed.avro is not None:
                references.update(parsed.avro.named)
            elif parsed.json is not None:
                references[ref.name] = parsed.json.value
        return parse_schema(registered.schema, registered.schema_type, references=references)

    def _writer(self, subject: str) -> _Writer:
        found = self._writers.get(subject)
        if found is None:
            registered = self.source.get_version(subject, self._pinned.get(subject, "latest"))
            parsed = self.parsed(registered.id)
            found = _Writer(registered, parsed, compile_check(parsed, subject=subject))
            self._writers[subject] = found
        return found
