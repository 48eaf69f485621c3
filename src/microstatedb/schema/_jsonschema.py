"""JSON Schema: parsing (validity through fastjsonschema) and reader/writer compatibility.

The rules are the ones Confluent Schema Registry and Karapace apply, so that a subject moves
between registries with the same verdicts: a change is compatible when every value the writer
accepts is still accepted by the reader, judged keyword by keyword (types, ``properties``,
``required``, ``additionalProperties``, ``enum``, numeric and string bounds, array items and
tuples, ``allOf``/``anyOf``/``oneOf``/``not``). Where those registries depart from pure set
inclusion (``true`` is treated like an object schema, ``not`` is compared structurally) we follow
them; the corpus in ``tests/fixtures/karapace`` pins each such verdict.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import lru_cache
from typing import Any

import fastjsonschema

from microstatedb.errors import InvalidSchema
from microstatedb.schema._avro import load_json
from microstatedb.schema._types import Incompatibility, pointer

_INSTANCE_TYPES = frozenset({"null", "boolean", "number", "string", "integer", "object", "array"})
_COMBINATORS = ("allOf", "anyOf", "oneOf")
_BOOLEAN = "boolean-schema"
_ENUM = "enum"

Loc = tuple[str, ...]


@dataclass(eq=False)
class JsonSchema:
    """A parsed JSON Schema: its value, its references resolved, and its canonical text."""

    value: Any
    resolved: Any
    canonical: str
    resolved_text: str


def parse_json_schema(schema: Any, *, references: Mapping[str, Any] | None = None) -> JsonSchema:
    """Parse a JSON Schema (text or value); ``references`` maps external ``$ref`` names."""
    value = load_json(schema, avro=False)
    if not isinstance(value, (dict, bool)):
        raise InvalidSchema(f"a JSON Schema is an object or a boolean, not {type(value).__name__}")
    canonical = json.dumps(value, sort_keys=True, separators=(",", ":"))
    refs = dict(references or {})
    # Resolve first: an unknown external $ref must fail here, not make the compiler fetch it;
    # the validator is compiled from the resolved form, which names no other document.
    resolved = _Resolver(value, refs).resolve(value, ())
    resolved_text = json.dumps(resolved, sort_keys=True, separators=(",", ":"))
    compile_validator(resolved_text)
    return JsonSchema(value, resolved, canonical, resolved_text)


@lru_cache(maxsize=512)
def compile_validator(text: str) -> Callable[[Any], Any]:
    """fastjsonschema's compiled validator for a schema text (cached per text)."""
    try:
        return fastjsonschema.compile(json.loads(text))
    except Exception as exc:  # fastjsonschema raises its own kinds and re.error
        raise InvalidSchema(f"invalid JSON Schema: {exc}") from None


class _Resolver:
    """Replaces ``$ref`` by the schema it names (local pointers and named references).

    A reference met again below itself (a recursive schema) is left as ``{"$ref": ...}``,
    and two such markers compare equal when they name the same target.
    """

    def __init__(self, root: Any, refs: dict[str, Any]):
        self.root = root
        self.refs = refs

    def resolve(self, node: Any, active: tuple[str, ...]) -> Any:
        if isinstance(node, list):
            return [self.resolve(n, active) for n in node]
        if not isinstance(node, dict):
            return node
        ref = node.get("$ref")
        if isinstance(ref, str):
            if ref in active:
                return {"$ref": ref}
            return self.resolve(self._target(ref), (*active, ref))
        out = {k: self.resolve(v, active) for k, v in node.items()}
        if "prefixItems" in out:  # draft 2020-12 tuples, in the draft 7 shape
            extra = out.pop("items", None)
            out["items"] = out.pop("prefixItems")
            if extra is not None:
                out.setdefault("additionalItems", extra)
        if "dependentRequired" in out:
            out["dependencies"] = {**out.pop("dependentRequired"), **out.get("dependencies", {})}
        return out

    def _target(self, ref: str) -> Any:
        if ref in self.refs:
            return self.refs[ref]
        if not ref.startswith("#"):
            raise InvalidSchema(f"$ref {ref!r} is neither local nor a declared reference")
        node = self.root
        for part in ref[1:].split("/")[1:] if ref != "#" else []:
            part = part.replace("~1", "/").replace("~0", "~")
            try:
                node = node[int(part)] if isinstance(node, list) else node[part]
            except (KeyError, IndexError, ValueError, TypeError):
                raise InvalidSchema(f"$ref {ref!r} points to nothing") from None
        return node


def json_compatibility(reader: Any, writer: Any) -> list[Incompatibility]:
    """Every reason why values valid under ``writer`` may be invalid under ``reader``."""
    return _check(reader, writer, ())


def _issue(kind: str, message: str, loc: Loc) -> list[Incompatibility]:
    return [Incompatibility(kind, message, pointer(loc))]


def _type_of(schema: Any) -> str:
    if schema is None:
        return "null"
    if isinstance(schema, bool):
        return _BOOLEAN
    combinator = _combinator(schema)
    if combinator is not None:
        return combinator[1]
    kind = schema.get("type")
    if kind:
        if kind not in _INSTANCE_TYPES:
            raise InvalidSchema(f"unknown JSON Schema type {kind!r}")
        return str(kind)
    if "enum" in schema:
        return _ENUM
    return "object"


def _combinator(schema: Any) -> tuple[list[Any], str] | None:
    """The subschemas and combinator of ``schema``; a list of types counts as ``anyOf``."""
    if not isinstance(schema, dict):
        return None
    kinds = schema.get("type")
    if isinstance(kinds, list):
        return [{**schema, "type": k} for k in kinds], "anyOf"
    for name in _COMBINATORS:
        if name in schema:
            return list(schema[name]), name
    if "not" in schema:
        return [schema["not"]], "not"
    return None


def _check(reader: Any, writer: Any, loc: Loc) -> list[Incompatibility]:
    if reader is not None and writer is None:
        return _issue(
            "schema_added", "schema added, previously used values may not be valid anymore", loc
        )
    if reader is None and writer is not None:
        return _issue("schema_removed", "schema removed", loc)
    if _marker(reader) or _marker(writer):
        # Recursive references left in place by the resolver: same target, same schema.
        if _marker(reader) and _marker(writer) and reader["$ref"] == writer["$ref"]:
            return []
        return _issue("ref_changed", "recursive reference changed", loc)
    rtype, wtype = _type_of(reader), _type_of(writer)
    numbers = rtype in ("number", "integer") and wtype in ("number", "integer")
    combined = rtype in _COMBINATORS or wtype in _COMBINATORS
    objects = (rtype == "object" or reader is True) and (wtype == "object" or writer is True)
    if numbers:
        return _numbers(reader, writer, rtype, wtype, loc)
    if combined:
        return _combined(reader, writer, loc)
    if objects:
        return _object(
            {"type": "object"} if reader is True else reader,
            {"type": "object"} if writer is True else writer,
            loc,
        )
    if rtype != wtype:
        return _mismatch(rtype, wtype, loc)
    if rtype == "not":
        return _check(reader["not"], writer["not"], (*loc, "not"))
    if rtype == "string":
        return _bounds(reader, writer, _STRING_BOUNDS, loc)
    if rtype == "array":
        return _array(reader, writer, loc)
    if rtype == _ENUM:
        removed = _hashable(writer["enum"]) - _hashable(reader["enum"])
        if removed:
            options = ", ".join(sorted(map(str, removed)))
            return _issue(
                "enum_array_narrowed",
                f"some of enum options are no longer valid {options}",
                (*loc, "enum"),
            )
        return []
    return []  # boolean schemas, "boolean" and "null" instances: nothing more to compare


def _marker(schema: Any) -> bool:
    return isinstance(schema, dict) and "$ref" in schema


def _hashable(values: list[Any]) -> set[str]:
    return {json.dumps(v, sort_keys=True) if not isinstance(v, str) else v for v in values}


def _mismatch(rtype: str, wtype: str, loc: Loc) -> list[Incompatibility]:
    return _issue("type_changed", f"type {rtype} is not compatible with type {wtype}", loc)


# (keyword, "upper" when a smaller reader value restricts, "lower" when a larger one does,
# "equal" when any change does)
_NUMBER_BOUNDS = (
    ("maximum", "upper"),
    ("minimum", "lower"),
    ("exclusiveMaximum", "upper"),
    ("exclusiveMinimum", "lower"),
)
_STRING_BOUNDS = (("maxLength", "upper"), ("minLength", "lower"), ("pattern", "equal"))
_ARRAY_BOUNDS = (("maxItems", "upper"), ("minItems", "lower"))
_OBJECT_BOUNDS = (("maxProperties", "upper"), ("minProperties", "lower"))


def _bounds(
    reader: dict[str, Any],
    writer: dict[str, Any],
    rules: tuple[tuple[str, str], ...],
    loc: Loc,
) -> list[Incompatibility]:
    out: list[Incompatibility] = []
    for keyword, sense in rules:
        r, w = reader.get(keyword), writer.get(keyword)
        if r is None:
            continue
        if w is None:
            out += _issue(
                f"{keyword}_added",
                f"Introduced incompatible assertion {keyword} with value {r}",
                loc,
            )
        elif (
            (sense == "upper" and r < w)
            or (sense == "lower" and r > w)
            or (sense == "equal" and r != w)
        ):
            verb = "Assertion of" if sense == "equal" else "More restrictive assertion"
            changed = "changed from" if sense == "equal" else "from"
            out += _issue(f"{keyword}_restricted", f"{verb} {keyword} {changed} {w} to {r}", loc)
    return out


def _numbers(
    reader: dict[str, Any], writer: dict[str, Any], rtype: str, wtype: str, loc: Loc
) -> list[Incompatibility]:
    out = _bounds(reader, writer, _NUMBER_BOUNDS, loc)
    r, w = reader.get("multipleOf"), writer.get("multipleOf")
    if r is not None:
        if w is None:
            out += _issue(
                "multiple_added",
                f"Introduced incompatible assertion multipleOf with value {r}",
                loc,
            )
        elif r > w:
            out += _issue("multiple_expanded", f"Multiple must not increase ({r} > {w})", loc)
        elif w % r != 0:
            out += _issue("multiple_changed", f"{w} is not a multiple of {r}", loc)
    if rtype == "integer" and wtype == "number":
        out += _issue(
            "type_narrowed", "Writer produces numbers while reader only accepted integers", loc
        )
    return out


def _array(reader: dict[str, Any], writer: dict[str, Any], loc: Loc) -> list[Incompatibility]:
    r_items, w_items = reader.get("items"), writer.get("items")
    r_tuple, w_tuple = isinstance(r_items, list), isinstance(w_items, list)
    if r_tuple != w_tuple:
        return _mismatch("array", "array", loc)
    out: list[Incompatibility] = []
    extra_loc = (*loc, "additionalItems")
    if r_tuple and w_tuple:
        assert isinstance(r_items, list)
        assert isinstance(w_items, list)
        for pos, (r, w) in enumerate(zip(r_items, w_items, strict=False)):
            out += _check(r, w, (*loc, "items", str(pos)))
        r_extra = reader.get("additionalItems", True)
        w_extra = writer.get("additionalItems", True)
        if len(w_items) > len(r_items) and r_extra is not True:
            if r_extra is False:
                out += _issue(
                    "item_removed_from_closed_content_model",
                    f"Elements starting from index {len(r_items)} are not allowed",
                    extra_loc,
                )
            else:
                for pos in range(len(r_items), len(w_items)):
                    if _check(r_extra, w_items[pos], extra_loc):
                        out += _issue(
                            "item_removed_not_covered_by_partially_open_content_model",
                            f"Item in position {pos} is not compatible",
                            extra_loc,
                        )
        if len(r_items) > len(w_items):
            out += _issue(
                "item_added_to_open_content_model",
                f"Elements starting from index {len(w_items)} are now required",
                loc,
            )
        if r_extra is False and w_extra is not False:
            out += _issue(
                "additional_items_removed", "Additional items are not longer allowed", extra_loc
            )
    else:
        out += _check(r_items, w_items, (*loc, "items", "0"))
    out += _bounds(reader, writer, _ARRAY_BOUNDS, loc)
    if reader.get("uniqueItems") is True and writer.get("uniqueItems") is not True:
        out += _issue(
            "unique_items_added",
            "Introduced incompatible assertion uniqueItems with value True",
            loc,
        )
    return out


def _open(schema: dict[str, Any]) -> bool:
    """Whether an object schema accepts any property it does not declare."""
    return not schema.get("patternProperties") and schema.get("additionalProperties", True) is True


def _schema_for(schema: dict[str, Any], name: str) -> Any:
    """The schema that applies to an undeclared property ``name`` (patterns, then additional)."""
    for pattern, sub in schema.get("patternProperties", {}).items():
        if re.match(pattern, name):
            return sub
    return schema.get("additionalProperties")


def _object(reader: dict[str, Any], writer: dict[str, Any], loc: Loc) -> list[Incompatibility]:
    out: list[Incompatibility] = []
    props_loc = (*loc, "properties")
    r_props: dict[str, Any] = reader.get("properties") or {}
    w_props: dict[str, Any] = writer.get("properties") or {}
    only_writer = sorted(set(w_props) - set(r_props))
    only_reader = sorted(set(r_props) - set(w_props))
    for name in sorted(set(r_props) & set(w_props)):
        out += _check(r_props[name], w_props[name], (*props_loc, name))
    if only_writer and not _open(reader):
        for name in only_writer:
            sub = _schema_for(reader, name)
            if sub is None or sub is False:
                out += _issue(
                    "property_removed_from_closed_content_model",
                    f"The property {name} is not accepted anymore",
                    props_loc,
                )
            elif _check(sub, w_props[name], props_loc):
                out += _issue(
                    "property_removed_not_covered_by_partially_open_content_model",
                    f"property {name} is not compatible",
                    props_loc,
                )
    elif only_reader:
        if _open(writer):
            out += _issue(
                "property_added_to_open_content_model",
                "Restricting acceptable values of properties is an incompatible change. "
                f"The following properties {', '.join(only_reader)} accepted any value because "
                "the old schema had neither patternProperties nor additionalProperties; "
                "now these values are restricted.",
                props_loc,
            )
        else:
            required = reader.get("required", [])
            for name in only_reader:
                sub = _schema_for(writer, name)
                if sub is not None and sub is not False and _check(r_props[name], sub, props_loc):
                    out += _issue(
                        "property_added_not_covered_by_partially_open_content_model",
                        f"property {name} is not compatible with the old schema",
                        props_loc,
                    )
                r = r_props[name]
                if name in required and not (isinstance(r, dict) and "default" in r):
                    out += _issue(
                        "required_property_added_to_unopen_content_model",
                        f"Property {name} added without a default",
                        props_loc,
                    )
    out += _dependencies(reader, writer, loc)
    out += _bounds(reader, writer, _OBJECT_BOUNDS, loc)
    r_extra, w_extra = reader.get("additionalProperties"), writer.get("additionalProperties")
    extra_loc = (*loc, "additionalProperties")
    if r_extra is not None and w_extra is None:
        out += _issue(
            "additional_properties_narrowed", "additionalProperties introduced", extra_loc
        )
    if r_extra and w_extra:
        out += _check(r_extra, w_extra, extra_loc)
    return out


def _dependencies(
    reader: dict[str, Any], writer: dict[str, Any], loc: Loc
) -> list[Incompatibility]:
    out: list[Incompatibility] = []
    r_deps: dict[str, Any] = reader.get("dependencies", {})
    for name, w_dep in writer.get("dependencies", {}).items():
        r_dep = r_deps.get(name)
        if not r_dep:
            out += _issue("dependency_array_added", "incompatible dependency array", loc)
            continue
        if isinstance(w_dep, list) and isinstance(r_dep, list):
            new = sorted(set(w_dep) - set(r_dep))
            if new:
                out += _issue("dependency_array_extended", f"new dependencies {new}", loc)
        else:
            out += _check(r_dep, w_dep, (*loc, "dependencies", name))
    r_schemas: dict[str, Any] = reader.get("dependentSchemas", {})
    for name, w_dep in writer.get("dependentSchemas", {}).items():
        out += _check(r_schemas.get(name), w_dep, (*loc, "dependentSchemas", name))
    return out


def _combined(reader: Any, writer: Any, loc: Loc) -> list[Incompatibility]:
    r_comb, w_comb = _combinator(reader), _combinator(writer)
    rtype = r_comb[1] if r_comb else _type_of(reader)
    wtype = w_comb[1] if w_comb else _type_of(writer)
    r_has = rtype in _COMBINATORS
    w_has = wtype in _COMBINATORS
    sub_loc = (*loc, rtype if rtype != _BOOLEAN else "")
    if r_has and not w_has and r_comb and len(r_comb[0]) == 1:
        if _check(r_comb[0][0], writer, sub_loc):
            return _mismatch(rtype, wtype, sub_loc)
        return []
    if w_has and not r_has and w_comb and len(w_comb[0]) == 1:
        if _check(reader, w_comb[0][0], sub_loc):
            return _mismatch(rtype, wtype, sub_loc)
        return []
    if rtype in ("anyOf", "oneOf") and not w_has:
        assert r_comb is not None
        if any(not _check(sub, writer, sub_loc) for sub in r_comb[0]):
            return []
        return _mismatch(rtype, wtype, sub_loc)
    if r_comb is None or w_comb is None:
        return _mismatch(rtype, wtype, sub_loc)
    if rtype not in ("anyOf", wtype):
        return _issue(
            "combined_type_changed",
            f"incompatible subschema change, from {rtype} to {wtype}",
            sub_loc,
        )
    readers, writers = r_comb[0], w_comb[0]
    if rtype == "allOf" and len(writers) < len(readers):
        return _issue(
            "product_type_extended",
            f"Not all required schemas were provided, number of required schemas increased "
            f"from {len(writers)} to {len(readers)}",
            sub_loc,
        )
    if rtype in ("anyOf", "oneOf") and len(writers) > len(readers):
        return _issue(
            "sum_type_narrowed",
            f"Not all schemas are accepted, number of schemas reduced from {len(writers)} "
            f"to {len(readers)}",
            sub_loc,
        )
    # Subschemas apply in any order: each must be matched with a distinct compatible partner.
    edges = [
        [j for j, w in enumerate(writers) if not _check(r, w, (*sub_loc, str(j)))] for r in readers
    ]
    needed = len(readers) if rtype == "allOf" else len(writers)
    if _matching(edges, len(writers)) < needed:
        return _issue("combined_type_subschemas_changed", "subschemas are incompatible", sub_loc)
    return []


def _matching(edges: list[list[int]], right: int) -> int:
    """Size of a maximum bipartite matching (augmenting paths; the sets are small)."""
    owner: list[int | None] = [None] * right

    def augment(left: int, seen: set[int]) -> bool:
        for j in edges[left]:
            if j in seen:
                continue
            seen.add(j)
            current = owner[j]
            if current is None or augment(current, seen):
                owner[j] = left
                return True
        return False

    return sum(1 for left in range(len(edges)) if augment(left, set()))
