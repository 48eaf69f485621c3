"""Compiled validators, value codecs, the wire format, upcasters and version negotiation."""

from __future__ import annotations

import datetime
import decimal
import uuid
from typing import Any

import fastavro.validation
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from microstatedb.errors import (
    ConfigurationError,
    DecodeError,
    IncompatibleSchema,
    SchemaViolation,
    ValidationError,
)
from microstatedb.schema import (
    Upcasters,
    VersionNegotiator,
    compile_check,
    decode_value,
    decode_versions,
    encode_value,
    encode_versions,
    frame,
    parse_schema,
    unframe,
)

from .strategies import avro_schemas, values_for

ORDER = {
    "type": "record",
    "name": "shop.Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int", "default": 1},
        {"name": "price", "type": "double"},
        {"name": "big", "type": "long"},
        {"name": "paid", "type": "boolean"},
        {"name": "blob", "type": "bytes"},
        {"name": "note", "type": ["null", "string"], "default": None},
        {"name": "tags", "type": {"type": "array", "items": "string"}},
        {"name": "attrs", "type": {"type": "map", "values": "long"}},
        {"name": "state", "type": {"type": "enum", "name": "State", "symbols": ["NEW", "DONE"]}},
        {"name": "digest", "type": {"type": "fixed", "name": "D4", "size": 4}},
        {"name": "choice", "type": ["int", "string", "State"]},
        {
            "name": "lines",
            "type": {
                "type": "array",
                "items": {
                    "type": "record",
                    "name": "Line",
                    "fields": [{"name": "sku", "type": "string"}, {"name": "n", "type": "int"}],
                },
            },
        },
        {"name": "when", "type": {"type": "long", "logicalType": "timestamp-millis"}},
        {
            "name": "amount",
            "type": {"type": "bytes", "logicalType": "decimal", "precision": 9, "scale": 2},
        },
        {"name": "ref", "type": {"type": "string", "logicalType": "uuid"}},
        {"name": "opt_line", "type": ["null", "Line"], "default": None},
    ],
}


def good() -> dict[str, Any]:
    return {
        "id": "o-1",
        "price": 9.5,
        "big": 2**40,
        "paid": False,
        "blob": b"\x00",
        "tags": ["a"],
        "attrs": {"k": 3},
        "state": "NEW",
        "digest": b"abcd",
        "choice": "DONE",
        "lines": [{"sku": "x", "n": 2}],
        "when": datetime.datetime(2026, 1, 1, tzinfo=datetime.UTC),
        "amount": decimal.Decimal("12.50"),
        "ref": uuid.UUID(int=7),
    }


CHECK = compile_check(parse_schema(ORDER), subject="orders")


def test_a_good_value_passes_and_round_trips() -> None:
    parsed = parse_schema(ORDER)
    value = good()
    CHECK(value)
    decoded = decode_value(parsed, encode_value(parsed, value))
    assert decoded["lines"] == value["lines"]
    assert decoded["amount"] == value["amount"]
    assert decoded["qty"] == 1  # the default filled in by the writer


@pytest.mark.parametrize(
    ("change", "path"),
    [
        ({"id": 5}, "/id"),
        ({"qty": 2**31}, "/qty"),
        ({"qty": True}, "/qty"),
        ({"price": "x"}, "/price"),
        ({"big": 2**63}, "/big"),
        ({"paid": 0}, "/paid"),
        ({"blob": "text"}, "/blob"),
        ({"note": 3}, "/note"),
        ({"tags": "abc"}, "/tags"),
        ({"tags": ["a", 1]}, "/tags/1"),
        ({"attrs": []}, "/attrs"),
        ({"attrs": {"k": "v"}}, "/attrs/k"),
        ({"attrs": {1: 1}}, "/attrs"),
        ({"state": "GONE"}, "/state"),
        ({"digest": b"abc"}, "/digest"),
        ({"choice": 1.5}, "/choice"),
        ({"lines": [{"sku": "x", "n": "2"}]}, "/lines/0/n"),
        ({"lines": [{"sku": "x"}]}, "/lines/0/n"),
        ({"lines": [5]}, "/lines/0"),
        ({"when": "yesterday"}, "/when"),
        ({"amount": 1.5}, "/amount"),
        ({"opt_line": {"sku": 1, "n": 1}}, "/opt_line/sku"),
    ],
)
def test_a_bad_field_is_named_by_its_path(change: dict[str, Any], path: str) -> None:
    value = {**good(), **change}
    with pytest.raises(SchemaViolation) as caught:
        CHECK(value)
    assert caught.value.path == path
    assert caught.value.subject == "orders"
    assert isinstance(caught.value, ValidationError)
    assert path in str(caught.value)


def test_missing_field_and_wrong_container() -> None:
    value = good()
    del value["id"]
    with pytest.raises(SchemaViolation, match="missing field 'id'") as caught:
        CHECK(value)
    assert caught.value.path == "/id"
    with pytest.raises(SchemaViolation) as root:
        CHECK([1])
    assert root.value.path == "/"


def test_primitive_schemas_and_null() -> None:
    check_null = compile_check(parse_schema("null"))
    check_null(None)
    with pytest.raises(SchemaViolation):
        check_null(0)
    check_fixed_decimal = compile_check(
        parse_schema(
            {"type": "fixed", "name": "F", "size": 8, "logicalType": "decimal", "precision": 5}
        )
    )
    check_fixed_decimal(decimal.Decimal("1"))
    check_fixed_decimal(b"12345678")


def test_recursive_schema_validates() -> None:
    linked = {
        "type": "record",
        "name": "Node",
        "fields": [{"name": "v", "type": "int"}, {"name": "next", "type": ["null", "Node"]}],
    }
    check = compile_check(parse_schema(linked))
    check({"v": 1, "next": {"v": 2, "next": None}})
    with pytest.raises(SchemaViolation) as caught:
        check({"v": 1, "next": {"v": "2", "next": None}})
    assert caught.value.path == "/next/v"


def test_json_schema_validator_names_the_path() -> None:
    schema = parse_schema(
        {
            "type": "object",
            "properties": {"items": {"type": "array", "items": {"type": "integer"}}},
        },
        "JSON",
    )
    check = compile_check(schema, subject="s")
    check({"items": [1, 2]})
    with pytest.raises(SchemaViolation) as caught:
        check({"items": [1, "x"]})
    assert caught.value.path == "/items/1"
    assert decode_value(schema, encode_value(schema, {"items": [3]})) == {"items": [3]}


def test_decode_of_bad_bytes_is_a_decode_error() -> None:
    with pytest.raises(DecodeError):
        decode_value(parse_schema(ORDER), b"\xff")
    with pytest.raises(DecodeError):
        decode_value(parse_schema({"type": "object"}, "JSON"), b"{nope")


@settings(max_examples=40)
@given(avro_schemas(), st.data())
def test_generated_values_pass_and_agree_with_fastavro(schema: Any, data: st.DataObject) -> None:
    parsed = parse_schema(schema)
    assert parsed.avro is not None
    value = data.draw(values_for(parsed.avro.root))
    compile_check(parsed)(value)
    assert fastavro.validation.validate(value, parsed.avro.parsed, raise_errors=False)
    decoded = decode_value(parsed, encode_value(parsed, value))
    compile_check(parsed)(decoded)


ANY_VALUE = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats() | st.text() | st.binary(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=2), inner),
    max_leaves=6,
)


@settings(max_examples=40)
@given(avro_schemas(), ANY_VALUE)
def test_our_verdict_matches_fastavro_on_arbitrary_values(schema: Any, value: Any) -> None:
    parsed = parse_schema(schema)
    ours = True
    try:
        compile_check(parsed)(value)
    except SchemaViolation:
        ours = False
    theirs = fastavro.validation.validate(
        value, parsed.avro.parsed if parsed.avro else None, raise_errors=False
    )
    if ours:
        assert theirs


@given(st.integers(0, 2**32 - 1), st.binary(max_size=64))
def test_frame_round_trips(schema_id: int, payload: bytes) -> None:
    data = frame(schema_id, payload)
    assert data[0] == 0
    assert int.from_bytes(data[1:5], "big") == schema_id
    assert unframe(data) == (schema_id, payload)


def test_frame_rejects_bad_input() -> None:
    with pytest.raises(ConfigurationError):
        frame(2**32, b"")
    with pytest.raises(DecodeError, match="at least 5"):
        unframe(b"\x00\x00")
    with pytest.raises(DecodeError, match="magic"):
        unframe(b"\x01\x00\x00\x00\x01x")


def test_upcasters_chain_step_by_step() -> None:
    up = Upcasters()

    @up.register("orders", 1)
    def add_qty(v: dict[str, Any]) -> dict[str, Any]:
        return {**v, "qty": 1}

    up.add("orders", 2, lambda v: {**v, "qty": v["qty"] * 10})
    assert up.latest("orders") == 3
    assert up.latest("other") is None
    assert up.upcast("orders", 1, {"id": "a"}) == {"id": "a", "qty": 10}
    assert up.upcast("orders", 2, {"id": "a", "qty": 2}) == {"id": "a", "qty": 20}
    assert up.upcast("orders", 1, {"id": "a"}, to_version=2) == {"id": "a", "qty": 1}
    assert up.upcast("orders", 3, {"x": 1}) == {"x": 1}
    assert up.upcast("other", 4, "same") == "same"
    with pytest.raises(ConfigurationError, match="already has"):
        up.add("orders", 1, lambda v: v)
    with pytest.raises(ConfigurationError, match="start at 1"):
        up.add("orders", 0, lambda v: v)
    with pytest.raises(ConfigurationError, match="down to"):
        up.upcast("orders", 3, {}, to_version=1)
    with pytest.raises(ConfigurationError, match="from version 3"):
        up.upcast("orders", 1, {"id": "a"}, to_version=4)


@given(st.lists(st.integers(-5, 5), min_size=1, max_size=6), st.integers(1, 6), st.integers(0, 5))
def test_upcasting_composes(steps: list[int], start: int, extra: int) -> None:
    # Upcasting in two hops equals upcasting in one: the chain is a composition.
    up = Upcasters()
    for i, delta in enumerate(steps, start=1):
        up.add("s", i, lambda v, d=delta: v + d)
    last = len(steps) + 1
    start = min(start, last)
    middle = min(start + extra, last)
    direct = up.upcast("s", start, 0)
    assert up.upcast("s", middle, up.upcast("s", start, 0, middle)) == direct
    assert direct == sum(steps[start - 1 :])


def test_negotiation_refuses_unreadable_versions() -> None:
    n = VersionNegotiator()
    n.announce("billing", "orders", [1, 2])
    n.announce_header("shipping", encode_versions({"orders": [1, 2, 3], "users": [1]}))
    assert n.readers("orders") == {"billing": frozenset({1, 2}), "shipping": frozenset({1, 2, 3})}
    n.check("orders", 2)
    with pytest.raises(IncompatibleSchema, match="billing"):
        n.check("orders", 3)
    assert n.choose("orders", [1, 2, 3]) == 2
    n.withdraw("billing")
    n.check("orders", 3)
    assert n.choose("orders", [1, 2, 3]) == 3
    n.check("nobody-reads", 9)
    with pytest.raises(IncompatibleSchema, match="no version"):
        n.choose("orders", [4])
    with pytest.raises(ConfigurationError):
        n.announce("x", "orders", [])


@given(st.dictionaries(st.text(min_size=1), st.frozensets(st.integers(1, 99), min_size=1)))
def test_version_header_round_trips(versions: dict[str, frozenset[int]]) -> None:
    assert decode_versions(encode_versions(versions)) == versions


@pytest.mark.parametrize("header", ["orders", "=1", "orders=x", "orders=0"])
def test_malformed_version_header(header: str) -> None:
    with pytest.raises(ConfigurationError):
        decode_versions(header)


def test_decode_resolves_into_a_reader_schema() -> None:
    old = parse_schema({"type": "record", "name": "R", "fields": [{"name": "a", "type": "int"}]})
    new = parse_schema(
        {
            "type": "record",
            "name": "R",
            "fields": [
                {"name": "a", "type": "long"},
                {"name": "b", "type": "string", "default": "x"},
            ],
        }
    )
    payload = encode_value(old, {"a": 3})
    assert decode_value(old, payload, new) == {"a": 3, "b": "x"}
