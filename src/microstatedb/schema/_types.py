"""Shared records: schema types, compatibility levels, results and their messages."""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any, NamedTuple

from microstatedb.errors import ConfigurationError


class SchemaType(StrEnum):
    """The schema languages the registry understands (names as in the Confluent REST API)."""

    AVRO = "AVRO"
    JSON = "JSON"

    @classmethod
    def of(cls, value: str | SchemaType) -> SchemaType:
        """The type named by ``value`` (case-insensitive; ``JSONSCHEMA`` is accepted too)."""
        if isinstance(value, SchemaType):
            return value
        name = str(value).upper()
        if name == "JSONSCHEMA":
            name = "JSON"
        try:
            return cls(name)
        except ValueError:
            raise ConfigurationError(
                f"unknown schema type {value!r}; use one of AVRO, JSON"
            ) from None


class Level(StrEnum):
    """Compatibility levels with Confluent's meaning (non-transitive: the latest version only)."""

    BACKWARD = "BACKWARD"
    BACKWARD_TRANSITIVE = "BACKWARD_TRANSITIVE"
    FORWARD = "FORWARD"
    FORWARD_TRANSITIVE = "FORWARD_TRANSITIVE"
    FULL = "FULL"
    FULL_TRANSITIVE = "FULL_TRANSITIVE"
    NONE = "NONE"

    @classmethod
    def of(cls, value: str | Level) -> Level:
        """The level named by ``value`` (case-insensitive)."""
        if isinstance(value, Level):
            return value
        try:
            return cls(str(value).upper())
        except ValueError:
            names = ", ".join(m.value for m in cls)
            raise ConfigurationError(
                f"unknown compatibility level {value!r}; use one of {names}"
            ) from None

    @property
    def transitive(self) -> bool:
        """Whether every earlier version is checked, not only the latest."""
        return self.value.endswith("_TRANSITIVE")

    @property
    def backward(self) -> bool:
        """Whether the new schema must read data written with the old ones."""
        return self.value.startswith(("BACKWARD", "FULL"))

    @property
    def forward(self) -> bool:
        """Whether the old schemas must read data written with the new one."""
        return self.value.startswith(("FORWARD", "FULL"))


class Incompatibility(NamedTuple):
    """One reason why a reader cannot read what a writer wrote."""

    kind: str
    """Machine-readable category, for example ``type_mismatch`` or ``missing_union_branch``."""
    message: str
    """Human-readable explanation."""
    location: str
    """JSON pointer into the schema (the reader's, as in Avro's checker) of the offending part."""
    version: int | None = None
    """Position (1-based, oldest first) of the old schema involved, when several were compared."""
    direction: str | None = None
    """``"backward"`` (new reads old) or ``"forward"`` (old reads new), for level checks."""

    def __str__(self) -> str:
        context = [f"old #{self.version}"] if self.version is not None else []
        context += [self.direction] if self.direction is not None else []
        prefix = f"[{' '.join(context)}] " if context else ""
        return f"{prefix}{self.location}: {self.message}"


@dataclass(frozen=True)
class CompatibilityResult:
    """The verdict of a compatibility check, with every incompatibility found."""

    is_compatible: bool
    """True when no incompatibility was found."""
    messages: tuple[Incompatibility, ...] = ()
    """Each incompatibility with its message and location (empty when compatible)."""

    def __bool__(self) -> bool:
        return self.is_compatible

    @property
    def locations(self) -> frozenset[str]:
        """The locations of all incompatibilities."""
        return frozenset(m.location for m in self.messages)

    @property
    def texts(self) -> frozenset[str]:
        """The messages of all incompatibilities, without their locations."""
        return frozenset(m.message for m in self.messages)


def pointer(parts: tuple[str, ...]) -> str:
    """The JSON pointer of a path given as parts (``"/"`` for the root, as Avro's checker)."""
    if not parts:
        return "/"
    return "/" + "/".join(p.replace("~", "~0").replace("/", "~1") for p in parts)


@dataclass(frozen=True)
class Reference:
    """A named reference from one schema to a registered one (Confluent's ``references``)."""

    name: str
    """The name the referring schema uses (an Avro full name, or a JSON ``$ref`` target)."""
    subject: str
    """The subject of the referenced schema."""
    version: int
    """The version of the referenced schema."""

    def to_json(self) -> dict[str, Any]:
        return {"name": self.name, "subject": self.subject, "version": self.version}


@dataclass(frozen=True)
class RegisteredSchema:
    """A schema as the registry holds it under one subject and version."""

    id: int
    """The global schema id (the one in the wire format)."""
    schema: str
    """The schema text."""
    schema_type: SchemaType = SchemaType.AVRO
    """Its language."""
    subject: str | None = None
    """The subject, when looked up through one."""
    version: int | None = None
    """The version within that subject."""
    references: tuple[Reference, ...] = field(default=())
    """The schemas it refers to."""

    @property
    def parsed(self) -> Any:
        """The schema as a JSON value."""
        return json.loads(self.schema)

    def to_json(self) -> dict[str, Any]:
        """The REST API form (``schemaType`` omitted for Avro, as Confluent does)."""
        out: dict[str, Any] = {}
        if self.subject is not None:
            out["subject"] = self.subject
        if self.version is not None:
            out["version"] = self.version
        out["id"] = self.id
        out["schema"] = self.schema
        if self.schema_type is not SchemaType.AVRO:
            out["schemaType"] = self.schema_type.value
        if self.references:
            out["references"] = [r.to_json() for r in self.references]
        return out
