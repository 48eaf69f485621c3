"""The Confluent REST API as a plain function: (method, path, query, body) in, (status, JSON) out.

No sockets here: the aiohttp server and the in-process transport of the client both call
:func:`handle`, so the API the client is tested against over HTTP is the one it uses in process.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable, Mapping
from typing import Any
from urllib.parse import unquote

from microstatedb.errors import (
    ConfigurationError,
    IncompatibleSchema,
    InvalidSchema,
    MicroStateError,
    RegistryError,
)
from microstatedb.schema._registry import (
    INCOMPATIBLE,
    INVALID_LEVEL,
    INVALID_SCHEMA,
    EmbeddedRegistry,
)
from microstatedb.schema._types import Reference, SchemaType

CONTENT_TYPE = "application/vnd.schemaregistry.v1+json"
"""The media type of the registry's answers."""

Reply = tuple[int, Any]
_Route = Callable[[EmbeddedRegistry, list[str], Mapping[str, str], Any], Reply]
_ROUTES: list[tuple[str, re.Pattern[str], _Route]] = []


def _route(method: str, pattern: str) -> Callable[[_Route], _Route]:
    def add(fn: _Route) -> _Route:
        _ROUTES.append((method, re.compile(pattern + "$"), fn))
        return fn

    return add


def error_body(code: int, message: str) -> Reply:
    """The error answer: HTTP status from the error code (40401 -> 404), and the body."""
    status = code // 100 if code >= 1000 else code
    return status, {"error_code": code, "message": message}


def handle(
    registry: EmbeddedRegistry,
    method: str,
    path: str,
    query: Mapping[str, str] | None = None,
    body: bytes | None = None,
) -> Reply:
    """Answer one REST request against ``registry``."""
    query = query or {}
    try:
        payload = json.loads(body) if body else None
    except json.JSONDecodeError:
        return error_body(400, "request body is not JSON")
    path = "/" + path.strip("/")
    allowed = False
    for route_method, pattern, fn in _ROUTES:
        match = pattern.match(path)
        if match is None:
            continue
        allowed = True
        if route_method != method.upper():
            continue
        args = [unquote(g) for g in match.groups()]
        try:
            return fn(registry, args, query, payload)
        except IncompatibleSchema as exc:
            return error_body(INCOMPATIBLE, str(exc))
        except InvalidSchema as exc:
            return error_body(INVALID_SCHEMA, str(exc))
        except RegistryError as exc:
            return error_body(exc.code or 50001, str(exc))
        except ConfigurationError as exc:
            return error_body(INVALID_LEVEL, str(exc))
        except MicroStateError as exc:  # pragma: no cover - a storage failure
            return error_body(50001, str(exc))
    if allowed:
        return error_body(405, f"method {method} not allowed on {path}")
    return error_body(404, f"no such resource {path}")


def _flag(query: Mapping[str, str], name: str) -> bool:
    return str(query.get(name, "false")).lower() == "true"


def _schema_args(payload: Any) -> tuple[str, SchemaType, list[Reference]]:
    if not isinstance(payload, dict) or not isinstance(payload.get("schema"), str):
        raise InvalidSchema("the request body needs a 'schema' string")
    references = [
        Reference(r["name"], r["subject"], int(r["version"])) for r in payload.get("references", [])
    ]
    return payload["schema"], SchemaType.of(payload.get("schemaType", "AVRO")), references


@_route("GET", r"/schemas/types")
def _types(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, [t.value for t in SchemaType]


@_route("GET", r"/schemas/ids/(\d+)")
def _by_id(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    found = reg.schema_by_id(int(args[0]))
    body = found.to_json()
    body.pop("id")
    return 200, body


@_route("GET", r"/schemas/ids/(\d+)/schema")
def _by_id_raw(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.schema_by_id(int(args[0])).parsed


@_route("GET", r"/schemas/ids/(\d+)/versions")
def _id_versions(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, [{"subject": s, "version": v} for s, v in reg.ids_versions(int(args[0]))]


@_route("GET", r"/subjects")
def _subjects(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.subjects(deleted=_flag(q, "deleted"))


@_route("POST", r"/subjects/([^/]+)")
def _lookup(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    schema, kind, refs = _schema_args(p)
    return 200, reg.lookup(args[0], schema, kind, refs, deleted=_flag(q, "deleted")).to_json()


@_route("DELETE", r"/subjects/([^/]+)")
def _delete_subject(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.delete_subject(args[0], permanent=_flag(q, "permanent"))


@_route("GET", r"/subjects/([^/]+)/versions")
def _versions(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.versions(args[0], deleted=_flag(q, "deleted"))


@_route("POST", r"/subjects/([^/]+)/versions")
def _register(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    schema, kind, refs = _schema_args(p)
    return 200, {"id": reg.register(args[0], schema, kind, refs)}


@_route("GET", r"/subjects/([^/]+)/versions/([^/]+)")
def _version(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.get_version(args[0], args[1], deleted=_flag(q, "deleted")).to_json()


@_route("GET", r"/subjects/([^/]+)/versions/([^/]+)/schema")
def _version_raw(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.get_version(args[0], args[1]).parsed


@_route("DELETE", r"/subjects/([^/]+)/versions/([^/]+)")
def _delete_version(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, reg.delete_version(args[0], args[1], permanent=_flag(q, "permanent"))


def _compat_reply(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    schema, kind, refs = _schema_args(p)
    version = args[1] if len(args) > 1 else None
    result = reg.check(args[0], schema, kind, version, refs)
    body: dict[str, Any] = {"is_compatible": result.is_compatible}
    if _flag(q, "verbose"):
        body["messages"] = [
            {"message": m.message, "location": m.location, "kind": m.kind} for m in result.messages
        ]
    return 200, body


_route("POST", r"/compatibility/subjects/([^/]+)/versions/([^/]+)")(_compat_reply)
_route("POST", r"/compatibility/subjects/([^/]+)/versions")(_compat_reply)


def _level_body(level: str) -> dict[str, str]:
    return {"compatibilityLevel": level}


def _level_arg(p: Any) -> str:
    if not isinstance(p, dict) or "compatibility" not in p:
        raise ConfigurationError("the request body needs a 'compatibility' level")
    return str(p["compatibility"])


@_route("GET", r"/config")
def _get_global(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, _level_body(reg.get_config().value)


@_route("PUT", r"/config")
def _put_global(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, {"compatibility": reg.set_config(_level_arg(p)).value}


@_route("GET", r"/config/([^/]+)")
def _get_config(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    level = reg.get_config(args[0], default_to_global=_flag(q, "defaultToGlobal"))
    return 200, _level_body(level.value)


@_route("PUT", r"/config/([^/]+)")
def _put_config(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, {"compatibility": reg.set_config(_level_arg(p), args[0]).value}


@_route("DELETE", r"/config/([^/]+)")
def _del_config(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, _level_body(reg.delete_config(args[0]).value)


def _mode_arg(p: Any) -> str:
    if not isinstance(p, dict) or "mode" not in p:
        raise ConfigurationError("the request body needs a 'mode'")
    return str(p["mode"])


@_route("GET", r"/mode")
def _get_gmode(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, {"mode": reg.get_mode()}


@_route("PUT", r"/mode")
def _put_gmode(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, {"mode": reg.set_mode(_mode_arg(p))}


@_route("GET", r"/mode/([^/]+)")
def _get_mode(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    mode = reg.get_mode(args[0], default_to_global=_flag(q, "defaultToGlobal"))
    return 200, {"mode": mode}


@_route("PUT", r"/mode/([^/]+)")
def _put_mode(reg: EmbeddedRegistry, args: list[str], q: Mapping[str, str], p: Any) -> Reply:
    return 200, {"mode": reg.set_mode(_mode_arg(p), args[0])}
