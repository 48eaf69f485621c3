"""Hypothesis strategies: Avro schemas (as JSON) and values that fit a parsed schema."""

from __future__ import annotations

import itertools
from typing import Any

from hypothesis import strategies as st

from microstatedb.schema._avro import Node

PRIMITIVES = ["null", "boolean", "int", "long", "float", "double", "bytes", "string"]
FIELD_NAMES = ["a", "b", "c", "d"]
SYMBOLS = ["A", "B", "C", "D"]


def _leaf() -> st.SearchStrategy[Any]:
    return st.one_of(
        st.sampled_from(PRIMITIVES),
        st.builds(
            lambda symbols: {"type": "enum", "name": "?", "symbols": symbols},
            st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True),
        ),
        st.builds(lambda n: {"type": "fixed", "name": "?", "size": n}, st.integers(1, 4)),
    )


def _extend(inner: st.SearchStrategy[Any]) -> st.SearchStrategy[Any]:
    union = st.lists(st.sampled_from(PRIMITIVES), min_size=1, max_size=3, unique=True).map(list)
    record = st.lists(
        st.tuples(st.sampled_from(FIELD_NAMES), inner),
        min_size=0,
        max_size=4,
        unique_by=lambda t: t[0],
    ).map(
        lambda fields: {
            "type": "record",
            "name": "?",
            "fields": [{"name": n, "type": t} for n, t in fields],
        }
    )
    return st.one_of(
        st.builds(lambda t: {"type": "array", "items": t}, inner),
        st.builds(lambda t: {"type": "map", "values": t}, inner),
        union,
        record,
    )


def _name(schema: Any, counter: itertools.count[int]) -> Any:
    if isinstance(schema, list):
        return [_name(s, counter) for s in schema]
    if not isinstance(schema, dict):
        return schema
    out = {k: _name(v, counter) if k in ("items", "values") else v for k, v in schema.items()}
    if out.get("name") == "?":
        out["name"] = f"N{next(counter)}"
    if "fields" in out:
        out["fields"] = [{**f, "type": _name(f["type"], counter)} for f in out["fields"]]
    return out


@st.composite
def avro_schemas(draw: st.DrawFn) -> Any:
    """An Avro schema with unique type names: records, arrays, maps, unions, enums, fixed."""
    raw = draw(st.recursive(_leaf(), _extend, max_leaves=8))
    return _name(raw, itertools.count())


def values_for(node: Node) -> st.SearchStrategy[Any]:
    """Values that fit the resolved schema ``node``."""
    kind = node.type
    simple: dict[str, st.SearchStrategy[Any]] = {
        "null": st.none(),
        "boolean": st.booleans(),
        "int": st.integers(-(2**31), 2**31 - 1),
        "long": st.integers(-(2**63), 2**63 - 1),
        "float": st.floats(width=32, allow_nan=False),
        "double": st.floats(allow_nan=False),
        # UTF-8 bytes: the specification lets a string reader read bytes, which holds for text
        "bytes": st.text(max_size=8).map(str.encode),
        "string": st.text(max_size=8),
    }
    if kind in simple:
        return simple[kind]
    if kind == "enum":
        return st.sampled_from(node.symbols)
    if kind == "fixed":
        return st.binary(min_size=node.size, max_size=node.size)
    if kind == "array":
        assert node.items is not None
        return st.lists(values_for(node.items), max_size=3)
    if kind == "map":
        assert node.values is not None
        return st.dictionaries(st.text(max_size=4), values_for(node.values), max_size=3)
    if kind == "union":
        return st.one_of([values_for(b) for b in node.branches])
    return st.fixed_dictionaries({f.name: values_for(f.type) for f in node.fields})


_PROMOTE = {"int": ["long", "float", "double"], "long": ["float", "double"], "float": ["double"]}
_PROMOTE.update({"string": ["bytes"], "bytes": ["string"]})


@st.composite
def evolved(draw: st.DrawFn, schema: Any) -> Any:
    """``schema`` changed the way subjects evolve: promotions, fields, symbols, branches."""
    if isinstance(schema, str):
        choices = [schema, *_PROMOTE.get(schema, []), ["null", schema], "string"]
        return draw(st.sampled_from(choices))
    if isinstance(schema, list):
        extra = draw(st.lists(st.sampled_from(PRIMITIVES), max_size=1))
        kept = draw(st.lists(st.sampled_from(schema), min_size=1, unique=True))
        return list(dict.fromkeys([*kept, *extra]))
    kind = schema["type"]
    if kind == "array":
        return {**schema, "items": draw(evolved(schema["items"]))}
    if kind == "map":
        return {**schema, "values": draw(evolved(schema["values"]))}
    if kind == "enum":
        symbols = draw(st.lists(st.sampled_from(SYMBOLS), min_size=1, max_size=4, unique=True))
        out = {**schema, "symbols": symbols}
        if draw(st.booleans()):
            out["default"] = symbols[0]
        return out
    if kind == "fixed":
        return {**schema, "size": draw(st.sampled_from([schema["size"], schema["size"] + 1]))}
    fields = []
    for f in schema["fields"]:
        if draw(st.integers(0, 4)) == 0:
            continue  # dropped
        fields.append({**f, "type": draw(evolved(f["type"]))})
    if draw(st.booleans()):
        name = f"e{len(fields)}"
        added: dict[str, Any] = {"name": name, "type": "int"}
        if draw(st.booleans()):
            added["default"] = 0
        fields.append(added)
    return {**schema, "fields": fields}
