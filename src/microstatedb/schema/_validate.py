"""Compiled validators and the value codecs of both schema languages.

An Avro schema is compiled once into nested closures, one per type, so that validating an
event is a walk over the value with no interpretation of the schema; the path of a bad field is
only assembled when validation fails. JSON Schema uses fastjsonschema, which generates Python
code for the schema.
"""

from __future__ import annotations

import datetime
import decimal
import io
import json
import uuid
from collections.abc import Callable, Mapping
from typing import Any

import fastavro
import fastjsonschema

from microstatedb.errors import DecodeError, SchemaViolation
from microstatedb.schema._avro import Node
from microstatedb.schema._compat import ParsedSchema
from microstatedb.schema._jsonschema import compile_validator
from microstatedb.schema._types import pointer

Check = Callable[[Any], None]
"""A compiled validator: returns None for a valid value, raises SchemaViolation otherwise."""


class _Bad(Exception):
    """Internal: a failed check; ``parts`` collects the path from the bad field outward."""

    def __init__(self, message: str):
        super().__init__(message)
        self.message = message
        self.parts: list[str] = []


def compile_check(schema: ParsedSchema, *, subject: str | None = None) -> Check:
    """The compiled validator of ``schema``; failures name the path of the bad field."""
    if schema.avro is not None:
        inner = _compile(schema.avro.root, {})

        def check_avro(value: Any) -> None:
            try:
                inner(value)
            except _Bad as bad:
                path = pointer(tuple(reversed(bad.parts)))
                raise SchemaViolation(bad.message, path=path, subject=subject) from None

        return check_avro
    assert schema.json is not None
    compiled = compile_validator(schema.json.resolved_text)

    def check_json(value: Any) -> None:
        try:
            compiled(value)
        except fastjsonschema.JsonSchemaValueException as exc:
            parts = tuple(str(p) for p in (exc.path or ["data"])[1:])
            raise SchemaViolation(exc.message, path=pointer(parts), subject=subject) from None

    return check_json


def encode_value(schema: ParsedSchema, value: Any) -> bytes:
    """The payload bytes of a valid ``value``: Avro binary, or compact UTF-8 JSON."""
    if schema.avro is not None:
        out = io.BytesIO()
        fastavro.schemaless_writer(out, schema.avro.codec, value)
        return out.getvalue()
    return json.dumps(value, separators=(",", ":"), ensure_ascii=False).encode()


def decode_value(writer: ParsedSchema, payload: bytes, reader: ParsedSchema | None = None) -> Any:
    """Decode a payload written with ``writer``; Avro resolves it into ``reader`` if given."""
    try:
        if writer.avro is not None:
            target = reader.avro.codec if reader is not None and reader.avro is not None else None
            return fastavro.schemaless_reader(io.BytesIO(payload), writer.avro.codec, target)
        return json.loads(payload)
    except Exception as exc:  # fastavro and json raise several kinds on bad bytes
        raise DecodeError(f"payload does not decode with its schema: {exc!r}") from None


_INT_RANGES = {"int": (-(2**31), 2**31 - 1), "long": (-(2**63), 2**63 - 1)}

# Python types accepted for a logical type, beside the underlying Avro type's own.
_LOGICAL: dict[str, tuple[type, ...]] = {
    "decimal": (decimal.Decimal,),
    "date": (datetime.date,),
    "time-millis": (datetime.time,),
    "time-micros": (datetime.time,),
    "timestamp-millis": (datetime.datetime,),
    "timestamp-micros": (datetime.datetime,),
    "local-timestamp-millis": (datetime.datetime,),
    "local-timestamp-micros": (datetime.datetime,),
    "uuid": (uuid.UUID,),
}


def _compile(node: Node, memo: dict[int, Check]) -> Check:
    key = id(node)
    if key in memo:
        return memo[key]
    if node.fullname is not None:
        # Named types may be recursive: register a forwarder before compiling the body.
        cell: list[Check] = []
        memo[key] = lambda value: cell[0](value)
        check = _compile_body(node, memo)
        cell.append(check)
        memo[key] = check
        return check
    return _compile_body(node, memo)


def _compile_body(node: Node, memo: dict[int, Check]) -> Check:
    kind = node.type
    check = _primitive(kind)
    if check is not None:
        logical = _LOGICAL.get(node.logical or "")
        return check if logical is None else _or_instance(check, logical, node.logical or "")
    if kind == "enum":
        symbols = frozenset(node.symbols)

        def check_enum(value: Any) -> None:
            if not isinstance(value, str) or value not in symbols:
                raise _Bad(f"{value!r} is not one of the symbols of enum {node.fullname}")

        return check_enum
    if kind == "fixed":
        size = node.size

        def check_fixed(value: Any) -> None:
            if not isinstance(value, (bytes, bytearray)) or len(value) != size:
                raise _Bad(f"expected {size} bytes (fixed {node.fullname}), got {value!r}")

        if node.logical == "decimal":
            return _or_instance(check_fixed, (decimal.Decimal,), "decimal")
        return check_fixed
    if kind == "array":
        assert node.items is not None
        item = _compile(node.items, memo)

        def check_array(value: Any) -> None:
            if not isinstance(value, (list, tuple)):
                raise _Bad(f"expected an array, got {type(value).__name__}")
            for index, element in enumerate(value):
                try:
                    item(element)
                except _Bad as bad:
                    bad.parts.append(str(index))
                    raise

        return check_array
    if kind == "map":
        assert node.values is not None
        values = _compile(node.values, memo)

        def check_map(value: Any) -> None:
            if not isinstance(value, Mapping):
                raise _Bad(f"expected a map, got {type(value).__name__}")
            for name, element in value.items():
                if not isinstance(name, str):
                    raise _Bad(f"map keys are strings, got {name!r}")
                try:
                    values(element)
                except _Bad as bad:
                    bad.parts.append(name)
                    raise

        return check_map
    if kind == "record":
        return _record(node, memo)
    return _union(node, memo)


def _record(node: Node, memo: dict[int, Check]) -> Check:
    fields = [(f.name, _compile(f.type, memo), f.has_default) for f in node.fields]
    name = node.fullname

    def check_record(value: Any) -> None:
        if not isinstance(value, Mapping):
            raise _Bad(f"expected a record {name} (a mapping), got {type(value).__name__}")
        for field_name, check, has_default in fields:
            try:
                element = value[field_name]
            except KeyError:
                if has_default:
                    continue
                bad = _Bad(f"missing field {field_name!r} (it has no default)")
                bad.parts.append(field_name)
                raise bad from None
            try:
                check(element)
            except _Bad as bad:
                bad.parts.append(field_name)
                raise

    return check_record


def _union(node: Node, memo: dict[int, Check]) -> Check:
    branches = [_compile(b, memo) for b in node.branches]
    non_null = [c for b, c in zip(node.branches, branches, strict=True) if b.type != "null"]
    nullable = len(non_null) < len(branches)
    names = ", ".join(b.fullname or b.type for b in node.branches)
    if len(non_null) == 1:
        # The common optional field: report the inner error, with its deeper path.
        only = non_null[0]

        def check_optional(value: Any) -> None:
            if value is None and nullable:
                return
            only(value)

        return check_optional

    def check_union(value: Any) -> None:
        if value is None and nullable:
            return
        for check in branches:
            try:
                check(value)
            except _Bad:
                continue
            return
        raise _Bad(f"{value!r} matches no branch of the union [{names}]")

    return check_union


def _or_instance(check: Check, types: tuple[type, ...], logical: str) -> Check:
    def check_logical(value: Any) -> None:
        if isinstance(value, types):
            return
        check(value)

    return check_logical


def _primitive(kind: str) -> Check | None:
    if kind == "null":

        def check_null(value: Any) -> None:
            if value is not None:
                raise _Bad(f"expected null, got {value!r}")

        return check_null
    if kind == "boolean":

        def check_boolean(value: Any) -> None:
            if value is not True and value is not False:
                raise _Bad(f"expected a boolean, got {value!r}")

        return check_boolean
    if kind in _INT_RANGES:
        low, high = _INT_RANGES[kind]

        def check_int(value: Any) -> None:
            if type(value) is not int and (not isinstance(value, int) or isinstance(value, bool)):
                raise _Bad(f"expected an {kind}, got {value!r}")
            if not low <= value <= high:
                raise _Bad(f"{value} is out of the range of an Avro {kind}")

        return check_int
    if kind in ("float", "double"):

        def check_float(value: Any) -> None:
            if type(value) is not float and (
                not isinstance(value, (int, float)) or isinstance(value, bool)
            ):
                raise _Bad(f"expected a {kind}, got {value!r}")

        return check_float
    if kind == "string":

        def check_string(value: Any) -> None:
            if type(value) is not str and not isinstance(value, str):
                raise _Bad(f"expected a string, got {type(value).__name__}")

        return check_string
    if kind == "bytes":

        def check_bytes(value: Any) -> None:
            if not isinstance(value, (bytes, bytearray)):
                raise _Bad(f"expected bytes, got {type(value).__name__}")

        return check_bytes
    return None
