"""Compatibility levels over the Avro and JSON Schema checkers, and parsed schemas."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from microstatedb.schema._avro import AvroSchema, avro_compatibility, parse_avro
from microstatedb.schema._jsonschema import JsonSchema, json_compatibility, parse_json_schema
from microstatedb.schema._types import CompatibilityResult, Incompatibility, Level, SchemaType


@dataclass(eq=False)
class ParsedSchema:
    """A schema of either language, parsed and checked."""

    schema_type: SchemaType
    """Its language."""
    canonical: str
    """Canonical JSON text: equal for equal schemas whatever their spacing and key order."""
    avro: AvroSchema | None = None
    """The Avro form, for Avro schemas."""
    json: JsonSchema | None = None
    """The JSON Schema form, for JSON schemas."""


def parse_schema(
    schema: Any,
    schema_type: str | SchemaType = SchemaType.AVRO,
    *,
    references: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> ParsedSchema:
    """Parse ``schema`` (text, a parsed value, or a :class:`ParsedSchema` returned as is).

    ``references`` maps names to referenced schemas: Avro named types (full name to fastavro's
    parsed form) or JSON Schema documents (``$ref`` target to document). Raises
    :class:`~microstatedb.errors.InvalidSchema` when the schema is not valid.
    """
    if isinstance(schema, ParsedSchema):
        return schema
    kind = SchemaType.of(schema_type)
    if kind is SchemaType.AVRO:
        avro = parse_avro(schema, named=references, strict=strict)
        return ParsedSchema(kind, avro.canonical, avro=avro)
    parsed = parse_json_schema(schema, references=references)
    return ParsedSchema(kind, parsed.canonical, json=parsed)


def reader_writer(reader: ParsedSchema, writer: ParsedSchema) -> list[Incompatibility]:
    """Every reason why ``reader`` cannot read all that ``writer`` may write."""
    if reader.schema_type is not writer.schema_type:
        return [
            Incompatibility(
                "schema_type_changed",
                f"schema type changed from {writer.schema_type} to {reader.schema_type}",
                "/",
            )
        ]
    if reader.avro is not None and writer.avro is not None:
        return avro_compatibility(reader.avro.root, writer.avro.root)
    assert reader.json is not None
    assert writer.json is not None
    return json_compatibility(reader.json.resolved, writer.json.resolved)


def check_compatibility(
    new: Any,
    olds: Sequence[Any],
    level: str | Level = Level.BACKWARD,
    schema_type: str | SchemaType = SchemaType.AVRO,
    *,
    strict: bool = True,
) -> CompatibilityResult:
    """Whether ``new`` may follow ``olds`` (oldest first) in a subject at ``level``.

    Schemas are JSON text or parsed values. BACKWARD: the new schema reads data written with
    the old ones; FORWARD: the old ones read data written with the new one; FULL: both. A
    non-transitive level compares with the latest old schema only, as Confluent does.
    Raises :class:`~microstatedb.errors.InvalidSchema` for an invalid schema.
    """
    kind = SchemaType.of(schema_type)
    lvl = Level.of(level)
    parsed_new = parse_schema(new, kind, strict=strict)
    parsed_olds = [parse_schema(old, kind, strict=strict) for old in olds]
    if lvl is Level.NONE or not parsed_olds:
        return CompatibilityResult(True)
    positions = range(1, len(parsed_olds) + 1)
    compared = list(zip(positions, parsed_olds, strict=True))
    if not lvl.transitive:
        compared = compared[-1:]
    found: list[Incompatibility] = []
    for position, old in compared:
        if lvl.backward:
            found += [
                i._replace(version=position, direction="backward")
                for i in reader_writer(parsed_new, old)
            ]
        if lvl.forward:
            found += [
                i._replace(version=position, direction="forward")
                for i in reader_writer(old, parsed_new)
            ]
    return CompatibilityResult(not found, tuple(found))
