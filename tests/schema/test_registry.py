"""The embedded registry and the client, in process and over real HTTP on a loopback port.

Every test in ``TestRegistryAPI`` runs twice: once through the in-process transport and once
through aiohttp on a free port with the standard-library HTTP transport, so the client is held
to the same answers the REST API gives.
"""

from __future__ import annotations

import json
import random
import socket
from collections.abc import Iterator
from typing import Any

import pytest

import microstatedb as msdb
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
)
from microstatedb.resilience import Retry
from microstatedb.schema import (
    EmbeddedRegistry,
    HTTPTransport,
    Level,
    MockTransport,
    Reference,
    RegistryClient,
    RegistryServer,
    Request,
    Response,
    StoreStorage,
    handle,
    registry_retry,
)

V1 = {"type": "record", "name": "Order", "fields": [{"name": "id", "type": "string"}]}
V2 = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int", "default": 1}],
}
V3_BAD = {
    "type": "record",
    "name": "Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "note", "type": "string"}],
}


def no_wait_retry(attempts: int = 3) -> Retry:
    return registry_retry(max_attempts=attempts, rng=random.Random(1), sleep=lambda _s: None)


@pytest.fixture(params=["in-process", "http"])
def client(request: pytest.FixtureRequest) -> Iterator[RegistryClient]:
    registry = EmbeddedRegistry()
    if request.param == "in-process":
        yield RegistryClient(registry=registry, retry=no_wait_retry())
        return
    with RegistryServer(registry) as server:
        yield RegistryClient(server.url, timeout=5.0, retry=no_wait_retry())


class TestRegistryAPI:
    def test_register_versions_and_ids(self, client: RegistryClient) -> None:
        id1 = client.register("orders-value", V1)
        id2 = client.register("orders-value", json.dumps(V2))
        assert id1 != id2
        assert client.register("orders-value", V1) == id1  # known schema: same id
        assert client.register("copies", V1) == id1  # same schema, other subject: same id
        assert client.subjects() == ["copies", "orders-value"]
        assert client.versions("orders-value") == [1, 2]
        latest = client.get_version("orders-value")
        assert (latest.version, latest.id, latest.subject) == (2, id2, "orders-value")
        assert json.loads(client.get_version("orders-value", 1).schema) == V1
        assert client.schema_by_id(id1).parsed == V1
        found = client.lookup("orders-value", V2)
        assert (found.id, found.version) == (id2, 2)

    def test_incompatible_schema_is_refused(self, client: RegistryClient) -> None:
        client.register("orders", V1)
        with pytest.raises(IncompatibleSchema, match="note"):
            client.register("orders", V3_BAD)
        result = client.check_compatibility("orders", V3_BAD)
        assert not result.is_compatible
        assert result.locations == {"/fields/1"}
        assert client.check_compatibility("orders", V2, version=None).is_compatible
        client.set_config("NONE", "orders")
        assert client.get_config("orders") is Level.NONE
        assert client.register("orders", V3_BAD) > 0
        assert client.delete_config("orders") is Level.NONE
        assert client.get_config("orders") is Level.BACKWARD

    def test_typed_errors(self, client: RegistryClient) -> None:
        with pytest.raises(SubjectNotFound) as missing:
            client.versions("nope")
        assert missing.value.code == 40401
        client.register("s", V1)
        with pytest.raises(SchemaNotFound) as no_version:
            client.get_version("s", 7)
        assert no_version.value.code == 40402
        with pytest.raises(SchemaNotFound) as no_id:
            client.schema_by_id(999)
        assert no_id.value.code == 40403
        with pytest.raises(SchemaNotFound):
            client.lookup("s", V2)
        with pytest.raises(InvalidSchema):
            client.register("s", '{"type": "record"')
        with pytest.raises(RegistryError) as bad_version:
            client.get_version("s", "zero")
        assert bad_version.value.code == 42202
        with pytest.raises(ConfigurationError):
            client.set_config("SIDEWAYS")

    def test_global_config_and_modes(self, client: RegistryClient) -> None:
        assert client.get_config() is Level.BACKWARD
        assert client.set_config("FULL_TRANSITIVE") is Level.FULL_TRANSITIVE
        assert client.get_config() is Level.FULL_TRANSITIVE
        assert client.get_config("any-subject") is Level.FULL_TRANSITIVE
        assert client.get_mode() == "READWRITE"
        client.register("ro", V1)
        assert client.set_mode("READONLY", "ro") == "READONLY"
        assert client.get_mode("ro") == "READONLY"
        with pytest.raises(RegistryError) as refused:
            client.register("ro", V2)
        assert refused.value.code == 42205
        with pytest.raises(RegistryError) as bad_mode:
            client.set_mode("SOMETIMES")
        assert bad_mode.value.code == 42204
        client.set_mode("READWRITE", "ro")
        assert client.register("ro", V2) > 0

    def test_soft_and_permanent_deletes(self, client: RegistryClient) -> None:
        client.register("d", V1)
        client.register("d", V2)
        assert client.delete_version("d", 2) == 2
        assert client.versions("d") == [1]
        with pytest.raises(RegistryError) as not_soft:
            client.delete_subject("d", permanent=True)
        assert not_soft.value.code == 40405
        assert client.delete_subject("d") == [1]
        assert client.subjects() == []
        with pytest.raises(SubjectNotFound):
            client.get_version("d")
        assert client.delete_subject("d", permanent=True) == [1, 2]
        # A permanently deleted subject starts again from version 1.
        client.register("d", V3_BAD)
        assert client.versions("d") == [1]
        client.delete_version("d", 1)
        assert client.delete_version("d", 1, permanent=True) == 1

    def test_json_schema_and_references(self, client: RegistryClient) -> None:
        point = {"type": "object", "properties": {"x": {"type": "number"}}}
        client.register("point", point, "JSON")
        shape = {"type": "object", "properties": {"at": {"$ref": "point.json"}}}
        ref = Reference("point.json", "point", 1)
        shape_id = client.register("shape", shape, "JSON", [ref])
        fetched = client.schema_by_id(shape_id)
        assert fetched.schema_type.value == "JSON"
        assert fetched.references == (ref,)
        narrowed = {"type": "object", "properties": {"at": {"type": "string"}}}
        assert not client.check_compatibility("shape", narrowed, "JSON").is_compatible

        money = {"type": "record", "name": "shop.Money", "fields": [{"name": "c", "type": "long"}]}
        client.register("money", money)
        price = {"type": "record", "name": "shop.Price", "fields": [{"name": "m", "type": "Money"}]}
        price_id = client.register("price", price, references=[Reference("shop.Money", "money", 1)])
        assert client.get_version("price").references[0].subject == "money"
        assert price_id > 0


def test_rest_routes_answer_like_confluent() -> None:
    registry = EmbeddedRegistry()
    body = json.dumps({"schema": json.dumps(V1)}).encode()
    assert handle(registry, "POST", "/subjects/a/versions", {}, body) == (200, {"id": 1})
    assert handle(registry, "GET", "/schemas/types") == (200, ["AVRO", "JSON"])
    assert handle(registry, "GET", "/schemas/ids/1/schema") == (200, V1)
    assert handle(registry, "GET", "/schemas/ids/1/versions") == (
        200,
        [{"subject": "a", "version": 1}],
    )
    assert handle(registry, "GET", "/subjects/a/versions/latest/schema") == (200, V1)
    status, found = handle(registry, "GET", "/schemas/ids/1")
    assert status == 200
    assert "id" not in found
    assert "schemaType" not in found  # omitted for Avro, as Confluent does
    assert handle(registry, "GET", "/config/a") == (
        404,
        {"error_code": 40408, "message": "subject 'a' has no compatibility level of its own"},
    )
    assert handle(registry, "GET", "/config/a", {"defaultToGlobal": "true"})[0] == 200
    assert (
        handle(registry, "GET", "/mode/a", {"defaultToGlobal": "false"})[1]["error_code"] == 40409
    )
    assert handle(registry, "PUT", "/mode/a", {}, b'{"mode": "READONLY"}')[0] == 200
    assert handle(registry, "DELETE", "/subjects/a")[1]["error_code"] == 42205
    assert handle(registry, "GET", "/nowhere")[0] == 404
    assert handle(registry, "PATCH", "/subjects")[0] == 405
    assert handle(registry, "POST", "/subjects/a/versions", {}, b"{oops")[0] == 400
    assert handle(registry, "POST", "/subjects/a/versions", {}, b"{}")[1]["error_code"] == 42201
    assert handle(registry, "PUT", "/config", {}, b"{}")[1]["error_code"] == 42203
    assert handle(registry, "PUT", "/mode", {}, b"{}")[1]["error_code"] == 42203
    status, verbose = handle(
        registry,
        "POST",
        "/compatibility/subjects/a/versions/1",
        {"verbose": "true"},
        json.dumps({"schema": json.dumps(V3_BAD)}).encode(),
    )
    assert status == 200
    assert verbose["is_compatible"] is False
    assert verbose["messages"][0]["location"] == "/fields/1"


def test_registry_soft_deleted_subject_and_lookups() -> None:
    registry = EmbeddedRegistry(default_level="FULL")
    registry.register("a", V1)
    registry.delete_subject("a")
    with pytest.raises(RegistryError) as twice:
        registry.delete_subject("a")
    assert twice.value.code == 40404
    assert registry.subjects(deleted=True) == ["a"]
    assert registry.versions("a", deleted=True) == [1]
    assert registry.lookup("a", V1, deleted=True).version == 1
    assert registry.get_version("a", -1, deleted=True).version == 1
    with pytest.raises(SubjectNotFound):
        registry.delete_subject("never")
    registry.register("b", V1)
    with pytest.raises(RegistryError) as not_soft:
        registry.delete_version("b", 1, permanent=True)
    assert not_soft.value.code == 40407
    registry.register("j", {"type": "object"}, "JSON")
    with pytest.raises(ConfigurationError, match="not AVRO"):
        registry.register("c", V1, references=[Reference("x", "j", 1)])
    assert registry.check("nothing-yet", V1, version=None).is_compatible


# -- resilience of the client ----------------------------------------------------------------


def scripted(*answers: Response | Exception) -> tuple[MockTransport, list[Request]]:
    seen: list[Request] = []
    queue = list(answers)

    def handler(request: Request) -> Response:
        seen.append(request)
        answer = queue.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    return MockTransport(handler), seen


def ok(payload: Any) -> Response:
    return Response(200, json.dumps(payload).encode())


def test_transient_failures_are_retried_with_jittered_backoff() -> None:
    delays: list[float] = []
    transport, seen = scripted(
        OperationalError("down"),
        Response(503, b'{"error_code": 50001, "message": "store"}'),
        ok({"id": 4}),
    )
    retry = registry_retry(base_delay=0.1, rng=random.Random(7), sleep=delays.append)
    client = RegistryClient(transport=transport, retry=retry)
    assert client.register("s", V1) == 4
    assert len(seen) == 3
    assert len(delays) == 2
    assert 0 <= delays[0] <= 0.1
    assert 0 <= delays[1] <= 0.2
    assert seen[0].path == "/subjects/s/versions"


def test_registry_errors_are_not_retried() -> None:
    transport, seen = scripted(Response(404, b'{"error_code": 40401, "message": "no"}'))
    client = RegistryClient(transport=transport, retry=no_wait_retry())
    with pytest.raises(SubjectNotFound):
        client.versions("s")
    assert len(seen) == 1


def test_retries_exhausted_chains_the_last_error() -> None:
    transport, _ = scripted(*(DeadlineExceeded("slow") for _ in range(2)))
    client = RegistryClient(transport=transport, retry=no_wait_retry(2))
    with pytest.raises(RetriesExhausted) as caught:
        client.subjects()
    assert isinstance(caught.value.__cause__, DeadlineExceeded)


def test_unknown_error_bodies_still_give_typed_errors() -> None:
    transport, _ = scripted(Response(418, b"teapot"), Response(422, b'{"error_code": 42299}'))
    client = RegistryClient(transport=transport, retry=no_wait_retry())
    with pytest.raises(RegistryError) as first:
        client.subjects()
    assert first.value.code == 418
    with pytest.raises(RegistryError) as second:
        client.subjects()
    assert second.value.code == 42299


def test_known_schemas_keep_working_through_an_outage() -> None:
    registry = EmbeddedRegistry()
    server = RegistryServer(registry).start()
    client = RegistryClient(server.url, timeout=2.0, retry=no_wait_retry(2))
    schema_id = client.register("orders", V1)
    latest = client.get_version("orders")
    first = client.get_version("orders", 1)
    by_id = client.schema_by_id(schema_id)
    server.stop()
    # The registry is gone: what the client has seen is still served.
    assert client.register("orders", V1) == schema_id
    assert client.get_version("orders") == latest
    assert client.get_version("orders", 1) == first
    assert client.schema_by_id(schema_id) == by_id
    with pytest.raises(RetriesExhausted) as unknown:
        client.register("orders", V2)
    assert isinstance(unknown.value.__cause__, OperationalError)
    with pytest.raises(RetriesExhausted):
        client.get_version("other")


def test_a_silent_server_hits_the_timeout() -> None:
    with socket.socket() as listener:
        listener.bind(("127.0.0.1", 0))
        listener.listen(1)  # accepts the connection, never answers
        port = listener.getsockname()[1]
        transport = HTTPTransport(f"http://127.0.0.1:{port}")
        with pytest.raises(DeadlineExceeded, match=r"0\.2s"):
            transport.handle(Request("GET", "/subjects", timeout=0.2))


def test_server_lifecycle_errors() -> None:
    registry = EmbeddedRegistry()
    with RegistryServer(registry) as server:
        with pytest.raises(ConfigurationError, match="already running"):
            server.start()
        taken = server.port
        with pytest.raises(ConfigurationError, match="cannot serve"):
            RegistryServer(registry, port=taken).start()
    server.stop()  # stopping twice is harmless
    with pytest.raises(ConfigurationError, match="url"):
        RegistryClient()


def test_the_registry_keeps_its_state_in_a_store() -> None:
    # Two registries over two replicas of the same store: what one registers, the other
    # serves after the stores synchronise.
    first, second = msdb.Store("registry-a"), msdb.Store("registry-b")
    try:
        writer = EmbeddedRegistry(StoreStorage(first))
        schema_id = writer.register("orders", V1)
        writer.register("orders", V2)
        writer.register("point", {"type": "object"}, "JSON")
        writer.set_config("FULL", "orders")
        writer.delete_version("orders", 2)
        msdb.sync(first, second)
        reader = EmbeddedRegistry(StoreStorage(second))
        assert reader.subjects() == ["orders", "point"]
        assert reader.versions("orders") == [1]
        assert reader.versions("orders", deleted=True) == [1, 2]
        assert reader.schema_by_id(schema_id).parsed == V1
        assert reader.get_config("orders") is Level.FULL
        assert reader.register("orders", V1) == schema_id  # known: same id, nothing new
        assert reader.get_version("point").schema_type.value == "JSON"
        writer.delete_version("orders", 2, permanent=True)
        writer.delete_config("orders")
        msdb.sync(first, second)
        assert reader.versions("orders", deleted=True) == [1]
        assert reader.get_config("orders", default_to_global=True) is Level.BACKWARD
        with pytest.raises(SchemaNotFound):
            reader.schema_by_id(99)
    finally:
        first.close()
        second.close()
