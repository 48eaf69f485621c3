"""JSON Schema rules one by one: each pair (new, old) with its BACKWARD verdict and location."""

from __future__ import annotations

from typing import Any

import pytest

from microstatedb.errors import InvalidSchema
from microstatedb.schema import check_compatibility, compile_check, parse_schema
from microstatedb.schema._jsonschema import json_compatibility

INT = {"type": "integer"}
NUM = {"type": "number"}
TUPLE2 = {"type": "array", "items": [INT, INT]}

CASES: list[tuple[str, Any, Any, bool, set[str]]] = [
    ("multipleOf added", {**NUM, "multipleOf": 2}, NUM, False, {"/"}),
    ("multipleOf grows", {**NUM, "multipleOf": 4}, {**NUM, "multipleOf": 2}, False, {"/"}),
    ("multipleOf divides", {**NUM, "multipleOf": 2}, {**NUM, "multipleOf": 4}, True, set()),
    ("multipleOf unrelated", {**NUM, "multipleOf": 3}, {**NUM, "multipleOf": 4}, False, {"/"}),
    (
        "exclusive bound",
        {**NUM, "exclusiveMaximum": 5},
        {**NUM, "exclusiveMaximum": 9},
        False,
        {"/"},
    ),
    ("integer reads number", INT, NUM, False, {"/"}),
    ("number reads integer", NUM, INT, True, set()),
    (
        "tuple closed",
        {**TUPLE2, "additionalItems": False},
        {"type": "array", "items": [INT, INT, INT]},
        False,
        {"/additionalItems"},
    ),
    (
        "tuple partially open",
        {**TUPLE2, "additionalItems": INT},
        {"type": "array", "items": [INT, INT, {"type": "string"}]},
        False,
        {"/additionalItems"},
    ),
    (
        "tuple partially open ok",
        {**TUPLE2, "additionalItems": INT},
        {"type": "array", "items": [INT, INT, INT]},
        True,
        set(),
    ),
    ("tuple grows", {"type": "array", "items": [INT, INT, INT]}, TUPLE2, False, {"/"}),
    (
        "tuple item narrowed",
        {"type": "array", "items": [INT, INT]},
        {"type": "array", "items": [INT, NUM]},
        False,
        {"/items/1"},
    ),
    (
        "additionalItems closed",
        {**TUPLE2, "additionalItems": False},
        TUPLE2,
        False,
        {"/additionalItems"},
    ),
    (
        "prefixItems is a tuple",
        {"type": "array", "prefixItems": [INT], "items": False},
        {"type": "array", "items": [INT], "additionalItems": False},
        True,
        set(),
    ),
    ("uniqueItems added", {"type": "array", "uniqueItems": True}, {"type": "array"}, False, {"/"}),
    (
        "maxItems lowered",
        {"type": "array", "maxItems": 2},
        {"type": "array", "maxItems": 3},
        False,
        {"/"},
    ),
    (
        "array items removed",
        {"type": "array"},
        {"type": "array", "items": INT},
        False,
        {"/items/0"},
    ),
    ("array items added", {"type": "array", "items": INT}, {"type": "array"}, False, {"/items/0"}),
    (
        "pattern changed",
        {"type": "string", "pattern": "a+"},
        {"type": "string", "pattern": "b+"},
        False,
        {"/"},
    ),
    ("enum widened", {"enum": ["a", "b", 1]}, {"enum": ["a", 1]}, True, set()),
    ("enum narrowed", {"enum": ["a"]}, {"enum": ["a", {"x": 1}]}, False, {"/enum"}),
    (
        "required property added to closed",
        {
            "type": "object",
            "properties": {"a": INT},
            "required": ["a"],
            "additionalProperties": False,
        },
        {"type": "object", "additionalProperties": False},
        False,
        {"/properties"},
    ),
    (
        "defaulted property added to closed",
        {
            "type": "object",
            "properties": {"a": {**INT, "default": 0}},
            "required": ["a"],
            "additionalProperties": False,
        },
        {"type": "object", "additionalProperties": False},
        True,
        set(),
    ),
    (
        "property added beyond partial",
        {"type": "object", "properties": {"a": INT}, "additionalProperties": False},
        {"type": "object", "additionalProperties": {"type": "string"}},
        False,
        {"/properties"},
    ),
    (
        "additionalProperties narrowed",
        {"type": "object", "additionalProperties": INT},
        {"type": "object", "additionalProperties": NUM},
        False,
        {"/additionalProperties"},
    ),
    (
        "dependency added",
        {"type": "object"},
        {"type": "object", "dependencies": {"a": ["b"]}},
        False,
        {"/"},
    ),
    (
        "dependency extended",
        {"type": "object", "dependencies": {"a": ["b"]}},
        {"type": "object", "dependencies": {"a": ["b", "c"]}},
        False,
        {"/"},
    ),
    (
        "dependency schema",
        {"type": "object", "dependencies": {"a": {"type": "object", "maxProperties": 1}}},
        {"type": "object", "dependencies": {"a": {"type": "object", "maxProperties": 2}}},
        False,
        {"/dependencies/a"},
    ),
    (
        "dependentRequired",
        {"type": "object", "dependentRequired": {"a": ["b"]}},
        {"type": "object", "dependencies": {"a": ["b"]}},
        True,
        set(),
    ),
    (
        "dependentSchemas",
        {"type": "object", "dependentSchemas": {"a": {"type": "object", "minProperties": 2}}},
        {"type": "object", "dependentSchemas": {"a": {"type": "object"}}},
        False,
        {"/dependentSchemas/a"},
    ),
    (
        "minProperties raised",
        {"type": "object", "minProperties": 2},
        {"type": "object"},
        False,
        {"/"},
    ),
    ("oneOf to allOf", {"allOf": [INT, NUM]}, {"oneOf": [INT, NUM]}, False, {"/allOf"}),
    (
        "allOf needs more",
        {"allOf": [INT, NUM, {"minimum": 0, "type": "number"}]},
        {"allOf": [INT, NUM]},
        False,
        {"/allOf"},
    ),
    (
        "anyOf reordered",
        {"anyOf": [{"type": "string"}, INT]},
        {"anyOf": [INT, {"type": "string"}]},
        True,
        set(),
    ),
    (
        "anyOf branch narrowed",
        {"anyOf": [{"type": "string"}, {**INT, "maximum": 1}]},
        {"anyOf": [INT, {"type": "string"}]},
        False,
        {"/anyOf"},
    ),
    ("anyOf covers plain", {"anyOf": [{"type": "string"}, INT]}, INT, True, set()),
    ("allOf vs plain", {"allOf": [INT, {"minimum": 0, "type": "integer"}]}, INT, False, {"/allOf"}),
    ("plain vs anyOf", INT, {"anyOf": [INT, {"type": "string"}]}, False, {"/integer"}),
    ("single-branch writer", NUM, {"anyOf": [INT]}, True, set()),
    ("single-branch writer narrowed", INT, {"anyOf": [NUM]}, False, {"/integer"}),
    ("single-branch reader narrowed", {"oneOf": [INT]}, NUM, False, {"/oneOf"}),
    (
        "not vs not",
        {"not": {"type": "string", "maxLength": 3}},
        {"not": {"type": "string"}},
        False,
        {"/not"},
    ),
    (
        "schema added below",
        {"type": "object", "additionalProperties": INT},
        {"type": "object", "additionalProperties": None},
        False,
        {"/additionalProperties"},
    ),
]


@pytest.mark.parametrize(
    ("new", "old", "compatible", "locations"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_rule(new: Any, old: Any, compatible: bool, locations: set[str]) -> None:
    result = check_compatibility(new, [old], "BACKWARD", "JSON")
    assert result.is_compatible is compatible, result.messages
    assert result.locations == locations


def test_schema_added_and_removed_below() -> None:
    assert [i.kind for i in json_compatibility(INT, None)] == ["schema_added"]
    assert [i.kind for i in json_compatibility(None, INT)] == ["schema_removed"]


def test_recursive_references_compare_by_target() -> None:
    a = {"type": "object", "properties": {"next": {"$ref": "#"}}}
    b = {
        "type": "object",
        "properties": {"next": {"$ref": "#/definitions/x"}},
        "definitions": {
            "x": {"type": "object", "properties": {"next": {"$ref": "#/definitions/x"}}}
        },
    }
    result = check_compatibility(a, [b], "BACKWARD", "JSON")
    assert "ref_changed" in {m.kind for m in result.messages}


def test_unknown_type_is_an_invalid_schema() -> None:
    with pytest.raises(InvalidSchema, match="unknown JSON Schema type"):
        json_compatibility({"type": "integer"}, {"type": "decimal"})


def test_compiled_json_validator_from_resolved_references() -> None:
    schema = parse_schema(
        {"type": "array", "items": {"$ref": "point"}},
        "JSON",
        references={"point": {"type": "object", "required": ["x"]}},
    )
    check = compile_check(schema)
    check([{"x": 1}])
    with pytest.raises(Exception, match="must contain"):
        check([{"y": 1}])
