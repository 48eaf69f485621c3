"""The embedded schema registry: Confluent's semantics in process, over a small storage protocol.

Subjects hold versions (1, 2, ...) that point to schemas with global ids; the same schema text
registered under several subjects keeps one id. A new version is checked against the subject's
compatibility level (its own, else the global one, BACKWARD by default) before it is stored.
Deletes are soft first and permanent second, as in Confluent. Every failure is a typed error
that carries the registry's error code, so the REST layer and the client agree on them.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Protocol

from microstatedb.errors import (
    ConfigurationError,
    IncompatibleSchema,
    RegistryError,
    SchemaNotFound,
    SubjectNotFound,
)
from microstatedb.schema._compat import ParsedSchema, parse_schema, reader_writer
from microstatedb.schema._types import (
    CompatibilityResult,
    Incompatibility,
    Level,
    Reference,
    RegisteredSchema,
    SchemaType,
)

MODES = ("READWRITE", "READONLY", "IMPORT")
"""The registry modes (READONLY refuses new versions and deletes)."""

# Confluent's error codes.
SUBJECT_NOT_FOUND = 40401
VERSION_NOT_FOUND = 40402
SCHEMA_NOT_FOUND = 40403
SUBJECT_SOFT_DELETED = 40404
SUBJECT_NOT_SOFT_DELETED = 40405
VERSION_SOFT_DELETED = 40406
VERSION_NOT_SOFT_DELETED = 40407
SUBJECT_LEVEL_NOT_CONFIGURED = 40408
SUBJECT_MODE_NOT_CONFIGURED = 40409
INCOMPATIBLE = 409
INVALID_SCHEMA = 42201
INVALID_VERSION = 42202
INVALID_LEVEL = 42203
INVALID_MODE = 42204
NOT_PERMITTED = 42205
REFERENCE_EXISTS = 42206


@dataclass(frozen=True)
class SchemaRecord:
    """A stored schema: its id, text, language and references."""

    id: int
    """Global id."""
    schema: str
    """Schema text as registered."""
    schema_type: SchemaType
    """Language."""
    references: tuple[Reference, ...]
    """Referenced schemas."""
    fingerprint: str
    """Identity of the schema (language, canonical text, references): equal schemas share ids."""


@dataclass(frozen=True)
class VersionRecord:
    """One version of a subject."""

    subject: str
    """The subject."""
    version: int
    """Its number, from 1."""
    schema_id: int
    """The schema it points to."""
    deleted: bool = False
    """Soft-deleted: hidden unless asked for, removable permanently."""


class RegistryStorage(Protocol):
    """Where the registry keeps its state; an in-memory and a store-backed one exist."""

    def next_id(self) -> int:
        """A fresh schema id (never reused)."""
        ...

    def put_schema(self, record: SchemaRecord) -> None:
        """Store a schema under its id."""
        ...

    def schema(self, schema_id: int) -> SchemaRecord | None:
        """The schema with that id."""
        ...

    def find_schema(self, fingerprint: str) -> SchemaRecord | None:
        """The schema with that fingerprint."""
        ...

    def subjects(self) -> list[str]:
        """Every subject that has versions (soft-deleted ones included)."""
        ...

    def versions(self, subject: str) -> list[VersionRecord]:
        """The versions of ``subject``, oldest first."""
        ...

    def put_version(self, record: VersionRecord) -> None:
        """Insert or replace a version."""
        ...

    def drop_version(self, subject: str, version: int) -> None:
        """Remove a version for good."""
        ...

    def setting(self, kind: str, subject: str | None) -> str | None:
        """A setting (``"config"`` or ``"mode"``) of a subject, or the global one for None."""
        ...

    def set_setting(self, kind: str, subject: str | None, value: str | None) -> None:
        """Set (or with None remove) a setting."""
        ...


class InMemoryStorage:
    """Registry storage in dictionaries: for tests and single-process deployments."""

    def __init__(self) -> None:
        self._last_id = 0
        self._schemas: dict[int, SchemaRecord] = {}
        self._fingerprints: dict[str, int] = {}
        self._versions: dict[str, list[VersionRecord]] = {}
        self._settings: dict[tuple[str, str | None], str] = {}

    def next_id(self) -> int:
        self._last_id += 1
        return self._last_id

    def put_schema(self, record: SchemaRecord) -> None:
        self._schemas[record.id] = record
        self._fingerprints[record.fingerprint] = record.id

    def schema(self, schema_id: int) -> SchemaRecord | None:
        return self._schemas.get(schema_id)

    def find_schema(self, fingerprint: str) -> SchemaRecord | None:
        found = self._fingerprints.get(fingerprint)
        return None if found is None else self._schemas[found]

    def subjects(self) -> list[str]:
        return sorted(s for s, v in self._versions.items() if v)

    def versions(self, subject: str) -> list[VersionRecord]:
        return list(self._versions.get(subject, ()))

    def put_version(self, record: VersionRecord) -> None:
        versions = self._versions.setdefault(record.subject, [])
        versions[:] = [v for v in versions if v.version != record.version] + [record]
        versions.sort(key=lambda v: v.version)

    def drop_version(self, subject: str, version: int) -> None:
        versions = self._versions.get(subject, [])
        versions[:] = [v for v in versions if v.version != version]

    def setting(self, kind: str, subject: str | None) -> str | None:
        return self._settings.get((kind, subject))

    def set_setting(self, kind: str, subject: str | None, value: str | None) -> None:
        if value is None:
            self._settings.pop((kind, subject), None)
        else:
            self._settings[(kind, subject)] = value


def _error(cls: type[RegistryError], code: int, message: str) -> RegistryError:
    return cls(message, code=code)


class EmbeddedRegistry:
    """A schema registry in process, with the Confluent REST API's operations as methods.

    Thread-safe (one lock): the HTTP server and in-process callers may share it.
    """

    def __init__(
        self,
        storage: RegistryStorage | None = None,
        *,
        default_level: str | Level = Level.BACKWARD,
    ):
        self.storage: RegistryStorage = storage if storage is not None else InMemoryStorage()
        self.default_level = Level.of(default_level)
        self._lock = threading.RLock()
        self._parsed: dict[int, ParsedSchema] = {}

    # -- schemas ---------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        references: Sequence[Reference] = (),
    ) -> int:
        """Register ``schema`` under ``subject`` and return its id (the existing one if known).

        Raises IncompatibleSchema when the subject's level refuses it, InvalidSchema when it
        does not parse, RegistryError (42205) when the registry or subject is read-only.
        """
        kind = SchemaType.of(schema_type)
        text = schema if isinstance(schema, str) else json.dumps(schema)
        with self._lock:
            parsed = self._parse(text, kind, tuple(references))
            fingerprint = _fingerprint(parsed, references)
            live = [v for v in self.storage.versions(subject) if not v.deleted]
            for v in live:
                if self._record(v.schema_id).fingerprint == fingerprint:
                    return v.schema_id
            if self.get_mode(subject) == "READONLY":
                raise _error(
                    RegistryError, NOT_PERMITTED, f"subject {subject!r} is in read-only mode"
                )
            result = self._check(subject, parsed, [v.schema_id for v in live], None)
            if not result.is_compatible:
                details = "; ".join(str(m) for m in result.messages)
                raise IncompatibleSchema(
                    f"schema being registered is incompatible with an earlier schema for subject "
                    f"{subject!r}: {details}"
                )
            existing = self.storage.find_schema(fingerprint)
            if existing is None:
                existing = SchemaRecord(
                    self.storage.next_id(), text, kind, tuple(references), fingerprint
                )
                self.storage.put_schema(existing)
            all_versions = self.storage.versions(subject)
            number = max((v.version for v in all_versions), default=0) + 1
            self.storage.put_version(VersionRecord(subject, number, existing.id))
            return existing.id

    def lookup(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        references: Sequence[Reference] = (),
        *,
        deleted: bool = False,
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``."""
        kind = SchemaType.of(schema_type)
        text = schema if isinstance(schema, str) else json.dumps(schema)
        with self._lock:
            versions = self._versions(subject, deleted=deleted)
            fingerprint = _fingerprint(self._parse(text, kind, tuple(references)), references)
            for v in versions:
                if self._record(v.schema_id).fingerprint == fingerprint:
                    return self._registered(v)
        raise _error(SchemaNotFound, SCHEMA_NOT_FOUND, f"schema not found under {subject!r}")

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with that global id."""
        with self._lock:
            record = self._record(schema_id)
        return RegisteredSchema(
            record.id, record.schema, record.schema_type, None, None, record.references
        )

    def parsed(self, schema_id: int) -> ParsedSchema:
        """The parsed schema with that id (references resolved), cached."""
        with self._lock:
            found = self._parsed.get(schema_id)
            if found is None:
                record = self._record(schema_id)
                found = self._parse(record.schema, record.schema_type, record.references)
                self._parsed[schema_id] = found
            return found

    def ids_versions(self, schema_id: int) -> list[tuple[str, int]]:
        """Every (subject, version) that points to the schema ``schema_id``."""
        with self._lock:
            self._record(schema_id)
            return [
                (s, v.version)
                for s in self.storage.subjects()
                for v in self.storage.versions(s)
                if v.schema_id == schema_id and not v.deleted
            ]

    # -- subjects and versions ---------------------------------------------------------------

    def subjects(self, *, deleted: bool = False) -> list[str]:
        """The subjects with live versions (with ``deleted``, soft-deleted ones too)."""
        with self._lock:
            return [
                s
                for s in self.storage.subjects()
                if any(deleted or not v.deleted for v in self.storage.versions(s))
            ]

    def versions(self, subject: str, *, deleted: bool = False) -> list[int]:
        """The version numbers of ``subject``, oldest first."""
        with self._lock:
            return [v.version for v in self._versions(subject, deleted=deleted)]

    def get_version(
        self, subject: str, version: int | str = "latest", *, deleted: bool = False
    ) -> RegisteredSchema:
        """One version of ``subject`` (``"latest"`` or ``-1`` for the newest)."""
        with self._lock:
            return self._registered(self._version(subject, version, deleted=deleted))

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Soft-delete every version of ``subject``; ``permanent`` removes soft-deleted ones."""
        with self._lock:
            self._writable(subject)
            versions = self.storage.versions(subject)
            if not versions:
                raise _error(SubjectNotFound, SUBJECT_NOT_FOUND, f"subject {subject!r} not found")
            if permanent:
                if any(not v.deleted for v in versions):
                    raise _error(
                        RegistryError,
                        SUBJECT_NOT_SOFT_DELETED,
                        f"subject {subject!r} was not deleted first; delete it without "
                        "permanent=true, then permanently",
                    )
                for v in versions:
                    self.storage.drop_version(subject, v.version)
                self.storage.set_setting("config", subject, None)
                self.storage.set_setting("mode", subject, None)
                return [v.version for v in versions]
            live = [v for v in versions if not v.deleted]
            if not live:
                raise _error(
                    RegistryError, SUBJECT_SOFT_DELETED, f"subject {subject!r} was soft-deleted"
                )
            for v in live:
                self.storage.put_version(replace(v, deleted=True))
            return [v.version for v in live]

    def delete_version(self, subject: str, version: int | str, *, permanent: bool = False) -> int:
        """Soft-delete one version; with ``permanent``, remove a soft-deleted one."""
        with self._lock:
            self._writable(subject)
            record = self._version(subject, version, deleted=permanent)
            if permanent:
                if not record.deleted:
                    raise _error(
                        RegistryError,
                        VERSION_NOT_SOFT_DELETED,
                        f"version {record.version} of {subject!r} was not deleted first",
                    )
                self.storage.drop_version(subject, record.version)
            else:
                self.storage.put_version(replace(record, deleted=True))
            return record.version

    # -- compatibility and settings ----------------------------------------------------------

    def check(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        version: int | str | None = "latest",
        references: Sequence[Reference] = (),
    ) -> CompatibilityResult:
        """Whether ``schema`` could be registered under ``subject`` (``version=None``: all)."""
        kind = SchemaType.of(schema_type)
        text = schema if isinstance(schema, str) else json.dumps(schema)
        with self._lock:
            parsed = self._parse(text, kind, tuple(references))
            if version is None:
                ids = [v.schema_id for v in self._versions(subject, deleted=False, missing_ok=True)]
                return self._check(subject, parsed, ids, None)
            target = self._version(subject, version)
            return self._check(subject, parsed, [target.schema_id], target.version)

    def get_config(self, subject: str | None = None, *, default_to_global: bool = False) -> Level:
        """The compatibility level of ``subject`` (None: the global one)."""
        with self._lock:
            value = self.storage.setting("config", subject)
            if value is None and subject is not None:
                if not default_to_global:
                    raise _error(
                        RegistryError,
                        SUBJECT_LEVEL_NOT_CONFIGURED,
                        f"subject {subject!r} has no compatibility level of its own",
                    )
                value = self.storage.setting("config", None)
            return Level.of(value) if value is not None else self.default_level

    def set_config(self, level: str | Level, subject: str | None = None) -> Level:
        """Set the compatibility level of ``subject`` (None: the global one)."""
        lvl = Level.of(level)
        with self._lock:
            self.storage.set_setting("config", subject, lvl.value)
        return lvl

    def delete_config(self, subject: str) -> Level:
        """Remove the subject's own level (it follows the global one again); the old level."""
        with self._lock:
            old = self.get_config(subject)
            self.storage.set_setting("config", subject, None)
            return old

    def get_mode(self, subject: str | None = None, *, default_to_global: bool = True) -> str:
        """The mode of ``subject`` (falling back to the global one) or the global mode."""
        with self._lock:
            value = self.storage.setting("mode", subject)
            if value is None and subject is not None:
                if not default_to_global:
                    raise _error(
                        RegistryError,
                        SUBJECT_MODE_NOT_CONFIGURED,
                        f"subject {subject!r} has no mode of its own",
                    )
                value = self.storage.setting("mode", None)
            return value or "READWRITE"

    def set_mode(self, mode: str, subject: str | None = None) -> str:
        """Set the mode of ``subject`` (None: the global one)."""
        name = str(mode).upper()
        if name not in MODES:
            raise _error(
                RegistryError, INVALID_MODE, f"unknown mode {mode!r}; use one of {', '.join(MODES)}"
            )
        with self._lock:
            self.storage.set_setting("mode", subject, name)
        return name

    # -- internals -----------------------------------------------------------------------------

    def _writable(self, subject: str) -> None:
        if self.get_mode(subject) == "READONLY":
            raise _error(RegistryError, NOT_PERMITTED, f"subject {subject!r} is in read-only mode")

    def _record(self, schema_id: int) -> SchemaRecord:
        record = self.storage.schema(schema_id)
        if record is None:
            raise _error(SchemaNotFound, SCHEMA_NOT_FOUND, f"schema {schema_id} not found")
        return record

    def _versions(
        self, subject: str, *, deleted: bool, missing_ok: bool = False
    ) -> list[VersionRecord]:
        versions = [v for v in self.storage.versions(subject) if deleted or not v.deleted]
        if not versions and not missing_ok:
            raise _error(SubjectNotFound, SUBJECT_NOT_FOUND, f"subject {subject!r} not found")
        return versions

    def _version(self, subject: str, version: int | str, *, deleted: bool = False) -> VersionRecord:
        versions = self._versions(subject, deleted=deleted)
        if version in ("latest", -1, "-1"):
            return versions[-1]
        try:
            number = int(version)
        except (TypeError, ValueError):
            number = 0
        if number < 1:
            raise _error(
                RegistryError,
                INVALID_VERSION,
                f"version {version!r} is not valid: use a positive integer or 'latest'",
            )
        for v in versions:
            if v.version == number:
                return v
        raise _error(
            SchemaNotFound, VERSION_NOT_FOUND, f"version {number} of {subject!r} not found"
        )

    def _registered(self, v: VersionRecord) -> RegisteredSchema:
        record = self._record(v.schema_id)
        return RegisteredSchema(
            record.id, record.schema, record.schema_type, v.subject, v.version, record.references
        )

    def _parse(
        self, text: str, kind: SchemaType, references: tuple[Reference, ...]
    ) -> ParsedSchema:
        return parse_schema(text, kind, references=self._resolve(kind, references))

    def _resolve(self, kind: SchemaType, references: Iterable[Reference]) -> Mapping[str, Any]:
        resolved: dict[str, Any] = {}
        for ref in references:
            target = self._version(ref.subject, ref.version)
            parsed = self.parsed(target.schema_id)
            if parsed.schema_type is not kind:
                raise ConfigurationError(
                    f"reference {ref.name!r} is {parsed.schema_type.value}, not {kind.value}"
                )
            if parsed.avro is not None:
                resolved.update(parsed.avro.named)
            else:
                assert parsed.json is not None
                resolved[ref.name] = parsed.json.value
        return resolved

    def _check(
        self,
        subject: str,
        new: ParsedSchema,
        old_ids: list[int],
        version: int | None,
    ) -> CompatibilityResult:
        level = self.get_config(subject, default_to_global=True)
        if level is Level.NONE or not old_ids:
            return CompatibilityResult(True)
        if version is None and not level.transitive:
            old_ids = old_ids[-1:]
        found: list[Incompatibility] = []
        for schema_id in old_ids:
            old = self.parsed(schema_id)
            if level.backward:
                found += [i._replace(direction="backward") for i in reader_writer(new, old)]
            if level.forward:
                found += [i._replace(direction="forward") for i in reader_writer(old, new)]
        return CompatibilityResult(not found, tuple(found))


def _fingerprint(parsed: ParsedSchema, references: Sequence[Reference]) -> str:
    refs = json.dumps([r.to_json() for r in references], sort_keys=True)
    return f"{parsed.schema_type.value}|{parsed.canonical}|{refs}"
