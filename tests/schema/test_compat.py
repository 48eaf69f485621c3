"""Compatibility levels, messages, parsing errors, and the laws the checkers must keep."""

from __future__ import annotations

import io
import json

import fastavro
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.errors import ConfigurationError, InvalidSchema
from microstatedb.schema import Level, SchemaType, check_compatibility, parse_schema

from .strategies import avro_schemas, evolved, values_for

V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int", "default": 1},
    ],
}
V3_NO_DEFAULT = {
    "type": "record",
    "name": "Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int", "default": 1},
        {"name": "note", "type": "string"},
    ],
}


def test_backward_accepts_a_new_field_with_default() -> None:
    assert check_compatibility(V2, [V1]).is_compatible
    assert check_compatibility(V2, [V1], "FULL").is_compatible


def test_backward_refuses_a_new_field_without_default() -> None:
    result = check_compatibility(V3_NO_DEFAULT, [V1, V2], "BACKWARD")
    assert not result.is_compatible
    (message,) = result.messages
    assert message.kind == "reader_field_missing_default_value"
    assert message.message == "note"
    assert message.location == "/fields/2"
    assert message.version == 2
    assert message.direction == "backward"
    assert str(message) == "[old #2 backward] /fields/2: note"


def test_forward_is_the_other_direction() -> None:
    # old readers ignore the new field: forward compatible, though not backward
    assert check_compatibility(V3_NO_DEFAULT, [V1], "FORWARD").is_compatible
    assert check_compatibility(V3_NO_DEFAULT, [V1], "FORWARD_TRANSITIVE").is_compatible
    dropped = check_compatibility(V1, [V3_NO_DEFAULT], "FORWARD")
    assert [(m.direction, m.location) for m in dropped.messages] == [("forward", "/fields/2")]


def test_transitive_levels_compare_with_every_old_version() -> None:
    old1 = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int"}]}
    old2 = {"type": "record", "name": "R", "fields": [{"name": "x", "type": "int", "default": 0}]}
    new = {"type": "record", "name": "R", "fields": []}
    # new drops x: FORWARD needs old readers to find x; old2 has a default, old1 does not.
    assert check_compatibility(new, [old1, old2], "FORWARD").is_compatible
    transitive = check_compatibility(new, [old1, old2], "FORWARD_TRANSITIVE")
    assert not transitive.is_compatible
    assert {m.version for m in transitive.messages} == {1}
    assert not check_compatibility(new, [old1, old2], "FULL_TRANSITIVE").is_compatible
    assert check_compatibility(new, [old1, old2], "BACKWARD_TRANSITIVE").is_compatible


def test_none_and_no_old_versions_are_always_compatible() -> None:
    assert check_compatibility("int", ["string"], "NONE").is_compatible
    assert check_compatibility("int", [], "FULL_TRANSITIVE").is_compatible
    assert bool(check_compatibility("long", ["int"]))


def test_promotions_and_their_limits() -> None:
    assert check_compatibility("long", ["int"]).is_compatible
    assert check_compatibility("double", ["float"]).is_compatible
    assert check_compatibility("string", ["bytes"]).is_compatible
    result = check_compatibility("int", ["long"])
    assert result.texts == {"reader type: int not compatible with writer type: long"}
    assert result.locations == {"/"}


def test_aliases_let_a_record_and_a_field_be_renamed() -> None:
    writer = {"type": "record", "name": "a.Old", "fields": [{"name": "n", "type": "int"}]}
    reader = {
        "type": "record",
        "name": "a.New",
        "aliases": ["Old"],
        "fields": [{"name": "m", "type": "int", "aliases": ["n"]}],
    }
    assert check_compatibility(reader, [writer]).is_compatible
    unaliased = {"type": "record", "name": "a.New", "fields": [{"name": "n", "type": "int"}]}
    result = check_compatibility(unaliased, [writer])
    assert result.texts == {"expected: a.Old"}
    assert result.locations == {"/name"}


def test_enum_default_absorbs_new_symbols() -> None:
    writer = {"type": "enum", "name": "E", "symbols": ["A", "B", "C"]}
    reader = {"type": "enum", "name": "E", "symbols": ["A", "B"]}
    with_default = {**reader, "default": "A"}
    assert check_compatibility(reader, [writer]).texts == {"{'C'}"}
    assert check_compatibility(with_default, [writer]).is_compatible


def test_decimal_scale_and_precision() -> None:
    def dec(p: int, s: int) -> dict[str, object]:
        return {"type": "bytes", "logicalType": "decimal", "precision": p, "scale": s}

    assert check_compatibility(dec(10, 2), [dec(8, 2)]).is_compatible
    narrowed = check_compatibility(dec(6, 2), [dec(8, 2)])
    assert narrowed.locations == {"/precision"}
    rescaled = check_compatibility(dec(10, 3), [dec(10, 2)])
    assert rescaled.locations == {"/scale"}
    fixed = {"type": "fixed", "name": "F", "size": 8, "logicalType": "decimal", "precision": 8}
    assert not check_compatibility({**fixed, "scale": 1}, [{**fixed, "scale": 2}]).is_compatible


def test_json_schema_levels_and_locations() -> None:
    old = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 10}}}
    new = {"type": "object", "properties": {"n": {"type": "integer", "maximum": 5}}}
    result = check_compatibility(new, [old], "BACKWARD", "JSON")
    assert not result.is_compatible
    assert result.locations == {"/properties/n"}
    assert check_compatibility(old, [new], "BACKWARD", schema_type="json").is_compatible
    assert not check_compatibility(old, [new], "FULL", "JSON").is_compatible


def test_json_schema_references_resolve() -> None:
    defs = {"$defs": {"pos": {"type": "integer", "minimum": 1}}}
    new = {"type": "array", "items": {"$ref": "#/$defs/pos"}, **defs}
    old = {"type": "array", "items": {"type": "integer", "minimum": 0}}
    result = check_compatibility(new, [old], "BACKWARD", "JSON")
    assert result.locations == {"/items/0"}
    recursive = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    assert check_compatibility(recursive, [recursive], "FULL", "JSON").is_compatible
    with pytest.raises(InvalidSchema, match="points to nothing"):
        check_compatibility({"$ref": "#/nowhere"}, [], "BACKWARD", "JSON")
    with pytest.raises(InvalidSchema, match="declared reference"):
        check_compatibility({"$ref": "other.json"}, [], "BACKWARD", "JSON")


def test_schema_type_mismatch_is_reported() -> None:
    from microstatedb.schema._compat import reader_writer

    found = reader_writer(parse_schema('"int"'), parse_schema({"type": "integer"}, "JSON"))
    assert [f.kind for f in found] == ["schema_type_changed"]


@pytest.mark.parametrize(
    ("schema", "kind"),
    [
        ('{"type": "record"', "AVRO"),
        ({"type": "record", "name": "R", "fields": [{"name": "x"}]}, "AVRO"),
        ({"type": "nonsense"}, "AVRO"),
        ({"type": "enum", "name": "E", "symbols": ["A"], "default": "B"}, "AVRO"),
        ("not json at all!", "JSON"),
        ([1, 2], "JSON"),
        ({"type": "string", "pattern": "("}, "JSON"),
        ({"type": "strange"}, "JSON"),
    ],
)
def test_invalid_schemas_raise_invalid_schema(schema: object, kind: str) -> None:
    with pytest.raises(InvalidSchema):
        check_compatibility(schema, [schema], "FULL", kind)


def test_unknown_level_and_type_are_configuration_errors() -> None:
    with pytest.raises(ConfigurationError, match="BACKWARD_TRANSITIVE"):
        check_compatibility("int", ["int"], "SIDEWAYS")
    with pytest.raises(ConfigurationError, match="AVRO, JSON"):
        check_compatibility("int", ["int"], "BACKWARD", "PROTOBUF")
    assert SchemaType.of("jsonschema") is SchemaType.JSON
    assert Level.of("full").forward
    assert Level.of("full").backward


@settings(max_examples=40)
@given(avro_schemas())
def test_every_avro_schema_is_fully_compatible_with_itself(schema: object) -> None:
    assert check_compatibility(schema, [schema, schema], "FULL_TRANSITIVE").is_compatible


@settings(max_examples=40)
@given(avro_schemas(), avro_schemas())
def test_full_is_backward_and_forward(a: object, b: object) -> None:
    full = check_compatibility(a, [b], "FULL")
    backward = check_compatibility(a, [b], "BACKWARD")
    forward = check_compatibility(a, [b], "FORWARD")
    assert full.is_compatible == (backward.is_compatible and forward.is_compatible)
    assert set(full.messages) == set(backward.messages) | set(forward.messages)


@settings(max_examples=40)
@given(avro_schemas(), st.lists(avro_schemas(), min_size=1, max_size=3))
def test_transitive_implies_latest_only(new: object, olds: list[object]) -> None:
    for level in ("BACKWARD", "FORWARD", "FULL"):
        if check_compatibility(new, olds, f"{level}_TRANSITIVE").is_compatible:
            assert check_compatibility(new, olds, level).is_compatible


@settings(max_examples=40)
@given(st.data(), avro_schemas())
def test_backward_verdict_agrees_with_fastavro_resolution(data: st.DataObject, old: object) -> None:
    # Soundness against fastavro's own schema resolution: when we say the new schema reads
    # the old one's data, fastavro decodes values written with the old schema.
    new = data.draw(evolved(old))
    writer, reader = parse_schema(old), parse_schema(new)
    assert writer.avro is not None
    assert reader.avro is not None
    compatible = check_compatibility(new, [old]).is_compatible
    for value in data.draw(st.lists(values_for(writer.avro.root), min_size=1, max_size=3)):
        out = io.BytesIO()
        fastavro.schemaless_writer(out, writer.avro.parsed, value)
        out.seek(0)
        if compatible:
            fastavro.schemaless_reader(out, writer.avro.parsed, reader.avro.parsed)


def test_schema_text_may_be_bytes_or_a_bare_name() -> None:
    assert check_compatibility(b'"long"', ["int"]).is_compatible
    assert check_compatibility(json.dumps(V2).encode(), [json.dumps(V1)]).is_compatible
