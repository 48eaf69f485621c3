"""Avro: parsing (fastavro) into a resolved tree, and reader/writer compatibility.

The compatibility rules are the specification's schema resolution rules, checked the way
Apache Avro's own checkers do (Java ``SchemaCompatibility`` and Python ``avro.compatibility``):
the same verdicts, messages and locations, so that results read the same as Confluent's and
Karapace's. On top of them, decimals must keep their scale and not lose precision.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

import fastavro

from microstatedb.errors import InvalidSchema
from microstatedb.schema._types import Incompatibility, pointer

PRIMITIVES = frozenset({"null", "boolean", "int", "long", "float", "double", "bytes", "string"})
NAMED = frozenset({"record", "error", "enum", "fixed"})
_NAME = re.compile(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z_][A-Za-z0-9_]*)*")

# Reader type -> writer types it can read through the specification's promotions.
_PROMOTIONS: dict[str, frozenset[str]] = {
    "long": frozenset({"int"}),
    "float": frozenset({"int", "long"}),
    "double": frozenset({"int", "long", "float"}),
    "bytes": frozenset({"string"}),
    "string": frozenset({"bytes"}),
}


@dataclass(eq=False)
class Field:
    """A record field, resolved."""

    name: str
    type: Node
    aliases: tuple[str, ...] = ()
    has_default: bool = False
    default: Any = None


@dataclass(eq=False)
class Node:
    """One resolved Avro type; named types are shared, so a recursive schema is a cycle."""

    type: str
    fullname: str | None = None
    aliases: frozenset[str] = frozenset()
    fields: list[Field] = field(default_factory=list)
    symbols: tuple[str, ...] = ()
    default: Any = None
    size: int = 0
    items: Node | None = None
    values: Node | None = None
    branches: tuple[Node, ...] = ()
    logical: str | None = None
    precision: int | None = None
    scale: int | None = None

    @property
    def name(self) -> str | None:
        """The unqualified name of a named type."""
        return None if self.fullname is None else self.fullname.rsplit(".", 1)[-1]


@dataclass(eq=False)
class AvroSchema:
    """A parsed Avro schema: its resolved tree, fastavro's parsed form and its canonical text."""

    root: Node
    parsed: Any
    canonical: str
    named: dict[str, Any]
    codec: Any
    """fastavro's form with its write hint, referenced types included: ready to encode."""


def load_json(schema: Any, *, avro: bool) -> Any:
    """``schema`` as a JSON value: text is parsed; an Avro type name may be given bare."""
    if isinstance(schema, bytes):
        schema = schema.decode()
    if not isinstance(schema, str):
        return schema
    if avro and _NAME.fullmatch(schema):
        # A bare type name ("null", "com.acme.Order") is an Avro schema already.
        return schema
    try:
        return json.loads(schema)
    except json.JSONDecodeError as exc:
        raise InvalidSchema(f"schema is not valid JSON: {exc}") from None


def parse_avro(
    schema: Any,
    *,
    named: Mapping[str, Any] | None = None,
    strict: bool = True,
) -> AvroSchema:
    """Parse an Avro schema (JSON text or value). ``named`` holds referenced named types.

    With ``strict=False`` an enum default that is not one of its symbols is tolerated (some
    registries hold such schemas); it is then ignored.
    """
    value = load_json(schema, avro=True)
    checked = value if strict else _drop_bad_enum_defaults(value)
    named_out: dict[str, Any] = dict(named or {})
    try:
        parsed = fastavro.parse_schema(checked, named_schemas=named_out, _write_hint=False)
        codec = fastavro.parse_schema(checked, named_schemas=dict(named or {}))
    except Exception as exc:  # fastavro raises several kinds (SchemaParseException, ...)
        raise InvalidSchema(f"invalid Avro schema: {exc}") from None
    builder = _Builder(named_out)
    root = builder.build(parsed, "")
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    return AvroSchema(root, parsed, canonical, named_out, codec)


def _drop_bad_enum_defaults(value: Any) -> Any:
    if isinstance(value, list):
        return [_drop_bad_enum_defaults(v) for v in value]
    if not isinstance(value, dict):
        return value
    out = {k: _drop_bad_enum_defaults(v) for k, v in value.items()}
    if out.get("type") == "enum" and out.get("default") not in out.get("symbols", ()):
        out.pop("default", None)
    return out


def _qualify(name: str, namespace: str) -> str:
    return name if "." in name or not namespace else f"{namespace}.{name}"


class _Builder:
    def __init__(self, named: dict[str, Any]):
        self.named = named
        self.nodes: dict[str, Node] = {}

    def build(self, value: Any, namespace: str) -> Node:
        if isinstance(value, str):
            if value in PRIMITIVES:
                return Node(type=value)
            return self._named(self.named[value])
        if isinstance(value, list):
            return Node(type="union", branches=tuple(self.build(v, namespace) for v in value))
        kind = value["type"]
        if kind in NAMED:
            return self._named(value)
        if kind == "array":
            return Node(type="array", items=self.build(value["items"], namespace))
        if kind == "map":
            return Node(type="map", values=self.build(value["values"], namespace))
        if isinstance(kind, (dict, list)) or kind not in PRIMITIVES:
            return self.build(kind, namespace)
        return Node(
            type=kind,
            logical=value.get("logicalType"),
            precision=value.get("precision"),
            scale=value.get("scale", 0) if value.get("logicalType") == "decimal" else None,
        )

    def _named(self, value: dict[str, Any]) -> Node:
        fullname: str = value["name"]
        existing = self.nodes.get(fullname)
        if existing is not None:
            return existing
        namespace = fullname.rsplit(".", 1)[0] if "." in fullname else ""
        kind = "record" if value["type"] == "error" else value["type"]
        node = Node(
            type=kind,
            fullname=fullname,
            aliases=frozenset(_qualify(a, namespace) for a in value.get("aliases", ())),
        )
        self.nodes[fullname] = node
        if kind == "record":
            node.fields = [
                Field(
                    name=f["name"],
                    type=self.build(f["type"], namespace),
                    aliases=tuple(f.get("aliases", ())),
                    has_default="default" in f,
                    default=f.get("default"),
                )
                for f in value["fields"]
            ]
        elif kind == "enum":
            node.symbols = tuple(value["symbols"])
            node.default = value.get("default")
        else:
            node.size = value["size"]
            node.logical = value.get("logicalType")
            node.precision = value.get("precision")
            node.scale = value.get("scale", 0) if node.logical == "decimal" else None
        return node


def avro_compatibility(reader: Node, writer: Node) -> list[Incompatibility]:
    """Every reason why data written with ``writer`` cannot be read with ``reader``."""
    return _Checker().check(reader, writer, ())


class _Checker:
    def __init__(self) -> None:
        # (reader, writer) pairs: a pair met again while being checked is a recursive schema,
        # assumed compatible (as the specification's resolution does for recursive types).
        self.memo: dict[tuple[int, int], list[Incompatibility] | None] = {}

    def check(self, reader: Node, writer: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
        key = (id(reader), id(writer))
        if key in self.memo:
            return self.memo[key] or []
        self.memo[key] = None
        found = self._check(reader, writer, loc)
        self.memo[key] = found
        return found

    def _check(self, r: Node, w: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
        if r.type == w.type:
            if r.type in PRIMITIVES:
                return _decimal(r, w, loc)
            if r.type == "array":
                assert r.items is not None
                assert w.items is not None
                return self.check(r.items, w.items, (*loc, "items"))
            if r.type == "map":
                assert r.values is not None
                assert w.values is not None
                return self.check(r.values, w.values, (*loc, "values"))
            if r.type == "union":
                out = []
                for i, branch in enumerate(w.branches):
                    if self.check(r, branch, loc):
                        out.append(
                            Incompatibility(
                                "missing_union_branch",
                                f"reader union lacking writer type: {branch.type.upper()}",
                                pointer((*loc, str(i))),
                            )
                        )
                return out
            out = _names(r, w, loc)
            if r.type == "fixed":
                if r.size != w.size:
                    out.append(
                        Incompatibility(
                            "fixed_size_mismatch",
                            f"expected: {w.size}, found: {r.size}",
                            pointer((*loc, "size")),
                        )
                    )
                return out + _decimal(r, w, loc)
            if r.type == "enum":
                return out + _enum(r, w, loc)
            return out + self._record(r, w, loc)
        if w.type == "union":
            # Every branch the writer may have used must be readable.
            return [i for branch in w.branches for i in self.check(r, branch, loc)]
        if r.type == "union":
            if any(not self.check(branch, w, loc) for branch in r.branches):
                return []
            return [
                Incompatibility(
                    "missing_union_branch",
                    f"reader union lacking writer type: {w.type.upper()}",
                    pointer(loc),
                )
            ]
        if w.type in _PROMOTIONS.get(r.type, ()):
            return []
        return [
            Incompatibility(
                "type_mismatch",
                f"reader type: {r.type} not compatible with writer type: {w.type}",
                pointer(loc),
            )
        ]

    def _record(self, r: Node, w: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
        by_name = {f.name: f for f in w.fields}
        out: list[Incompatibility] = []
        for i, rf in enumerate(r.fields):
            wf = _lookup(by_name, rf)
            where = (*loc, "fields", str(i))
            if wf is None:
                if not rf.has_default:
                    out.append(
                        Incompatibility(
                            "reader_field_missing_default_value", rf.name, pointer(where)
                        )
                    )
            else:
                out.extend(self.check(rf.type, wf.type, (*where, "type")))
        return out


def _lookup(by_name: dict[str, Field], reader_field: Field) -> Field | None:
    found = by_name.get(reader_field.name)
    if found is not None:
        return found
    for alias in reader_field.aliases:
        if alias in by_name:
            return by_name[alias]
    return None


def _names(r: Node, w: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
    if r.name == w.name or w.fullname in r.aliases:
        return []
    return [Incompatibility("name_mismatch", f"expected: {w.fullname}", pointer((*loc, "name")))]


def _enum(r: Node, w: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
    missing = set(w.symbols) - set(r.symbols)
    if not missing or (r.default is not None and r.default in r.symbols):
        return []
    text = "{" + ", ".join(repr(s) for s in sorted(missing)) + "}"
    return [Incompatibility("missing_enum_symbols", text, pointer((*loc, "symbols")))]


def _decimal(r: Node, w: Node, loc: tuple[str, ...]) -> list[Incompatibility]:
    if r.logical != "decimal" or w.logical != "decimal":
        return []
    if r.scale != w.scale:
        return [
            Incompatibility(
                "decimal_scale_mismatch",
                f"decimal scale changed from {w.scale} to {r.scale}",
                pointer((*loc, "scale")),
            )
        ]
    if (r.precision or 0) < (w.precision or 0):
        return [
            Incompatibility(
                "decimal_precision_narrowed",
                f"decimal precision narrowed from {w.precision} to {r.precision}",
                pointer((*loc, "precision")),
            )
        ]
    return []


def named_types(schemas: Iterable[AvroSchema]) -> dict[str, Any]:
    """The named types defined by ``schemas``, for parsing a schema that references them."""
    out: dict[str, Any] = {}
    for s in schemas:
        out.update(s.named)
    return out
