"""A client for the Confluent Schema Registry REST API, with retries and a local cache.

Requests go through a transport with one method (``handle``): HTTP by default, the embedded
registry in process, or any function (``MockTransport``). Failures of the network are retried
with the resilience layer's jittered backoff (and within a current ``Deadline``); the registry's
own errors are not (they would answer the same again)
and come back as typed errors. Ids and versions never change once assigned, so what the client
has seen is cached, and a registry outage does not stop writes whose schemas are known.
"""

from __future__ import annotations

import json
import random
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Protocol, TypeVar

from microstatedb.errors import (
    ConfigurationError,
    DeadlineExceeded,
    IncompatibleSchema,
    InvalidSchema,
    OperationalError,
    RegistryError,
    RetriesExhausted,
    SchemaNotFound,
    SubjectNotFound,
    Unavailable,
)
from microstatedb.resilience import Retry
from microstatedb.schema._registry import EmbeddedRegistry
from microstatedb.schema._rest import CONTENT_TYPE, handle
from microstatedb.schema._types import (
    CompatibilityResult,
    Incompatibility,
    Level,
    Reference,
    RegisteredSchema,
    SchemaType,
)

_T = TypeVar("_T")


@dataclass(frozen=True)
class Request:
    """One REST request."""

    method: str
    """HTTP method."""
    path: str
    """Path with its query string, from the registry's root."""
    body: bytes | None = None
    """JSON body."""
    timeout: float = 5.0
    """Seconds before the request is abandoned."""


@dataclass(frozen=True)
class Response:
    """The registry's answer."""

    status: int
    """HTTP status."""
    body: bytes
    """JSON body."""


class Transport(Protocol):
    """Carries a request to a registry. Raises OperationalError or DeadlineExceeded on failure."""

    def handle(self, request: Request) -> Response:
        """Send ``request`` and return the answer."""
        ...


class MockTransport:
    """A transport that calls ``handler`` (for tests that script the registry's answers)."""

    def __init__(self, handler: Callable[[Request], Response]):
        self.handler = handler

    def handle(self, request: Request) -> Response:
        return self.handler(request)


class EmbeddedTransport:
    """A transport to an :class:`EmbeddedRegistry` in the same process (no sockets)."""

    def __init__(self, registry: EmbeddedRegistry):
        self.registry = registry

    def handle(self, request: Request) -> Response:
        parts = urllib.parse.urlsplit(request.path)
        query = dict(urllib.parse.parse_qsl(parts.query))
        status, payload = handle(self.registry, request.method, parts.path, query, request.body)
        return Response(status, json.dumps(payload).encode())


class HTTPTransport:
    """HTTP with the standard library (blocking, one connection per request)."""

    def __init__(self, base_url: str):
        self.base_url = base_url.rstrip("/")

    def handle(self, request: Request) -> Response:
        req = urllib.request.Request(
            self.base_url + request.path,
            data=request.body,
            method=request.method,
            headers={"Content-Type": CONTENT_TYPE, "Accept": CONTENT_TYPE},
        )
        try:
            with urllib.request.urlopen(req, timeout=request.timeout) as answer:
                return Response(answer.status, answer.read())
        except urllib.error.HTTPError as exc:
            return Response(exc.code, exc.read())
        except TimeoutError as exc:
            raise DeadlineExceeded(
                f"schema registry did not answer within {request.timeout}s"
            ) from exc
        except (urllib.error.URLError, OSError) as exc:
            raise OperationalError(
                f"schema registry at {self.base_url} unreachable: {exc}"
            ) from exc


# What a registry call retries: the network failed or was too slow. The registry's own
# errors (4xx) are answers, not failures, and would come back the same.
TRANSIENT: tuple[type[BaseException], ...] = (OperationalError, Unavailable)


def registry_retry(
    *,
    max_attempts: int = 3,
    base_delay: float = 0.05,
    max_delay: float = 1.0,
    rng: random.Random | None = None,
    sleep: Callable[[float], object] = time.sleep,
) -> Retry:
    """The resilience layer's :class:`Retry`, set for registry calls (full jitter backoff)."""
    return Retry(
        max_attempts=max_attempts,
        base_delay=base_delay,
        max_delay=max_delay,
        retry_on=TRANSIENT,
        rng=rng if rng is not None else random.Random(0),
        sleep=sleep,
    )


def _error_for(status: int, body: bytes) -> Exception:
    try:
        payload = json.loads(body)
        code = int(payload.get("error_code", status))
        message = str(payload.get("message", ""))
    except (ValueError, AttributeError):
        code, message = status, body[:200].decode(errors="replace")
    if status >= 500:
        return OperationalError(f"schema registry failed ({code}): {message}")
    if code == 40401:
        return SubjectNotFound(message, code=code)
    if code in (40402, 40403):
        return SchemaNotFound(message, code=code)
    if code == 409:
        return IncompatibleSchema(message)
    if code == 42201:
        return InvalidSchema(message)
    if code == 42203:
        return ConfigurationError(message)
    return RegistryError(message or f"schema registry answered {status}", code=code)


class RegistryClient:
    """Talks to a Confluent-compatible schema registry.

    ``RegistryClient("http://host:8081")`` uses HTTP; ``RegistryClient(registry=embedded)``
    calls an embedded registry in process; ``transport=`` takes any :class:`Transport`.
    """

    def __init__(
        self,
        url: str | None = None,
        *,
        registry: EmbeddedRegistry | None = None,
        transport: Transport | None = None,
        timeout: float = 5.0,
        retry: Retry | None = None,
    ):
        if transport is None:
            if registry is not None:
                transport = EmbeddedTransport(registry)
            elif url is not None:
                transport = HTTPTransport(url)
            else:
                raise ConfigurationError(
                    "give the registry's url, an embedded registry or a transport"
                )
        self.transport = transport
        self.timeout = timeout
        self.retry = retry if retry is not None else registry_retry()
        self._by_id: dict[int, RegisteredSchema] = {}
        self._ids: dict[tuple[str, str, str], int] = {}
        self._versions: dict[tuple[str, int], RegisteredSchema] = {}
        self._latest: dict[str, RegisteredSchema] = {}

    # -- plumbing -----------------------------------------------------------------------------

    def _call(
        self, method: str, path: str, body: Any = None, query: Mapping[str, str] | None = None
    ) -> Any:
        if query:
            path += "?" + urllib.parse.urlencode(query)
        data = None if body is None else json.dumps(body).encode()
        request = Request(method, path, data, self.timeout)

        def once() -> Response:
            answer = self.transport.handle(request)
            if answer.status >= 500:
                raise _error_for(answer.status, answer.body)
            return answer

        # Registry calls are idempotent: registering a known schema returns its id again.
        answer = self.retry.call(once, idempotent=True)
        if answer.status >= 400:
            raise _error_for(answer.status, answer.body)
        return json.loads(answer.body)

    @staticmethod
    def _q(name: str) -> str:
        return urllib.parse.quote(name, safe="")

    @staticmethod
    def _body(
        schema: Any, schema_type: str | SchemaType, references: Sequence[Reference]
    ) -> dict[str, Any]:
        text = schema if isinstance(schema, str) else json.dumps(schema)
        body: dict[str, Any] = {"schema": text}
        kind = SchemaType.of(schema_type)
        if kind is not SchemaType.AVRO:
            body["schemaType"] = kind.value
        if references:
            body["references"] = [r.to_json() for r in references]
        return body

    @staticmethod
    def _registered(payload: Mapping[str, Any], schema_id: int | None = None) -> RegisteredSchema:
        return RegisteredSchema(
            id=int(payload.get("id", schema_id or 0)),
            schema=payload["schema"],
            schema_type=SchemaType.of(payload.get("schemaType", "AVRO")),
            subject=payload.get("subject"),
            version=payload.get("version"),
            references=tuple(
                Reference(r["name"], r["subject"], int(r["version"]))
                for r in payload.get("references", [])
            ),
        )

    def _fallback(self, fn: Callable[[], _T], cached: _T | None) -> _T:
        try:
            return fn()
        except RetriesExhausted:
            if cached is None:
                raise
            return cached

    # -- schemas ------------------------------------------------------------------------------

    def register(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        references: Sequence[Reference] = (),
    ) -> int:
        """Register ``schema`` under ``subject``; its id (from the cache if already known)."""
        body = self._body(schema, schema_type, references)
        key = (subject, body.get("schemaType", "AVRO"), json.dumps(body, sort_keys=True))
        if key in self._ids:
            return self._ids[key]
        reply = self._call("POST", f"/subjects/{self._q(subject)}/versions", body)
        schema_id = int(reply["id"])
        self._ids[key] = schema_id
        return schema_id

    def lookup(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        references: Sequence[Reference] = (),
    ) -> RegisteredSchema:
        """The version of ``subject`` that holds ``schema``."""
        body = self._body(schema, schema_type, references)
        found = self._registered(self._call("POST", f"/subjects/{self._q(subject)}", body))
        self._ids[(subject, body.get("schemaType", "AVRO"), json.dumps(body, sort_keys=True))] = (
            found.id
        )
        return found

    def schema_by_id(self, schema_id: int) -> RegisteredSchema:
        """The schema with that id (cached for good: ids never change)."""
        cached = self._by_id.get(schema_id)
        if cached is not None:
            return cached
        found = self._registered(self._call("GET", f"/schemas/ids/{schema_id}"), schema_id)
        found = RegisteredSchema(
            schema_id, found.schema, found.schema_type, None, None, found.references
        )
        self._by_id[schema_id] = found
        return found

    def get_version(self, subject: str, version: int | str = "latest") -> RegisteredSchema:
        """One version of ``subject``; the latest falls back to the cache during an outage."""
        if isinstance(version, int) and (subject, version) in self._versions:
            return self._versions[(subject, version)]
        found = self._fallback(
            lambda: self._registered(
                self._call("GET", f"/subjects/{self._q(subject)}/versions/{version}")
            ),
            self._latest.get(subject) if version in ("latest", -1) else None,
        )
        if found.version is not None:
            self._versions[(subject, found.version)] = found
            self._by_id.setdefault(found.id, found)
            if version in ("latest", -1):
                self._latest[subject] = found
        return found

    def subjects(self) -> list[str]:
        """Every subject with live versions."""
        return list(self._call("GET", "/subjects"))

    def versions(self, subject: str) -> list[int]:
        """The version numbers of ``subject``."""
        return [int(v) for v in self._call("GET", f"/subjects/{self._q(subject)}/versions")]

    def delete_subject(self, subject: str, *, permanent: bool = False) -> list[int]:
        """Delete ``subject`` (soft, then with ``permanent`` for good)."""
        query = {"permanent": "true"} if permanent else None
        self._latest.pop(subject, None)
        return [int(v) for v in self._call("DELETE", f"/subjects/{self._q(subject)}", query=query)]

    def delete_version(self, subject: str, version: int | str, *, permanent: bool = False) -> int:
        """Delete one version of ``subject``."""
        query = {"permanent": "true"} if permanent else None
        self._latest.pop(subject, None)
        path = f"/subjects/{self._q(subject)}/versions/{version}"
        return int(self._call("DELETE", path, query=query))

    # -- compatibility and settings --------------------------------------------------------

    def check_compatibility(
        self,
        subject: str,
        schema: Any,
        schema_type: str | SchemaType = SchemaType.AVRO,
        version: int | str | None = "latest",
        references: Sequence[Reference] = (),
    ) -> CompatibilityResult:
        """Whether ``schema`` could be registered under ``subject`` (``version=None``: all)."""
        path = f"/compatibility/subjects/{self._q(subject)}/versions"
        if version is not None:
            path += f"/{version}"
        reply = self._call(
            "POST", path, self._body(schema, schema_type, references), {"verbose": "true"}
        )
        messages = tuple(
            Incompatibility(m.get("kind", "incompatible"), m["message"], m.get("location", "/"))
            for m in reply.get("messages", [])
        )
        return CompatibilityResult(bool(reply["is_compatible"]), messages)

    def get_config(self, subject: str | None = None) -> Level:
        """The compatibility level of ``subject`` (its own, else the global) or the global one."""
        if subject is None:
            return Level.of(self._call("GET", "/config")["compatibilityLevel"])
        reply = self._call("GET", f"/config/{self._q(subject)}", query={"defaultToGlobal": "true"})
        return Level.of(reply["compatibilityLevel"])

    def set_config(self, level: str | Level, subject: str | None = None) -> Level:
        """Set the compatibility level of ``subject`` (None: the global one)."""
        path = "/config" if subject is None else f"/config/{self._q(subject)}"
        return Level.of(
            self._call("PUT", path, {"compatibility": Level.of(level).value})["compatibility"]
        )

    def delete_config(self, subject: str) -> Level:
        """Remove the subject's own level; returns the level it had."""
        return Level.of(self._call("DELETE", f"/config/{self._q(subject)}")["compatibilityLevel"])

    def get_mode(self, subject: str | None = None) -> str:
        """The mode of ``subject`` or the global one."""
        path = "/mode" if subject is None else f"/mode/{self._q(subject)}"
        return str(self._call("GET", path)["mode"])

    def set_mode(self, mode: str, subject: str | None = None) -> str:
        """Set the mode of ``subject`` (None: the global one)."""
        path = "/mode" if subject is None else f"/mode/{self._q(subject)}"
        return str(self._call("PUT", path, {"mode": mode})["mode"])
