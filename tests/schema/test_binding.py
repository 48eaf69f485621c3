"""The data-path binding, and a rolling upgrade with two schema versions side by side."""

from __future__ import annotations

import random
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

import microstatedb as msdb
from microstatedb.errors import IncompatibleSchema, SchemaNotFound, SchemaViolation
from microstatedb.schema import (
    EmbeddedRegistry,
    Reference,
    RegistryClient,
    SchemaBinding,
    Upcasters,
    VersionNegotiator,
    registry_retry,
    unframe,
)

V1 = {
    "type": "record",
    "name": "shop.Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
}
V2 = {
    "type": "record",
    "name": "shop.Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "long"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
}


def setup() -> tuple[EmbeddedRegistry, Upcasters]:
    registry = EmbeddedRegistry()
    registry.register("orders", V1)
    registry.register("orders", V2)
    upcasters = Upcasters()
    upcasters.add("orders", 1, lambda v: {**v, "currency": "EUR"})
    return registry, upcasters


def test_validate_and_frame_carries_the_schema_id() -> None:
    registry, upcasters = setup()
    binding = SchemaBinding(registry, upcasters=upcasters)
    data = binding.validate_and_frame("orders", {"id": "o1", "qty": 2, "currency": "USD"})
    schema_id, _payload = unframe(data)
    assert schema_id == registry.get_version("orders").id
    decoded = binding.decode(data)
    assert decoded.schema_id == schema_id
    assert decoded.value == {"id": "o1", "qty": 2, "currency": "USD"}
    assert binding.read("orders", data) == decoded.value
    assert binding.writer("orders").version == 2


def test_a_bad_value_is_refused_with_its_path() -> None:
    registry, _ = setup()
    binding = SchemaBinding(registry)
    with pytest.raises(SchemaViolation) as caught:
        binding.validate_and_frame("orders", {"id": "o1", "qty": "two"})
    assert caught.value.path == "/qty"
    assert caught.value.subject == "orders"
    with pytest.raises(SchemaViolation):
        binding.validate("orders", {"qty": 1})
    binding.validate("orders", {"id": "x", "qty": 1})


def test_old_events_are_upcast_on_read() -> None:
    registry, upcasters = setup()
    old_writer = SchemaBinding(registry, upcasters=upcasters)
    old_writer.pin("orders", 1)
    data = old_writer.validate_and_frame("orders", {"id": "o1", "qty": 3})
    assert old_writer.writer("orders").version == 1
    assert old_writer.read("orders", data) == {"id": "o1", "qty": 3}
    reader = SchemaBinding(registry, upcasters=upcasters)
    assert reader.version_of("orders", unframe(data)[0]) == 1
    assert reader.read("orders", data) == {"id": "o1", "qty": 3, "currency": "EUR"}
    assert reader.upcast("orders", 1, {"id": "x", "qty": 1})["currency"] == "EUR"
    with pytest.raises(SchemaNotFound):
        reader.version_of("orders", 999)
    old_writer.pin("orders", None)
    assert old_writer.writer("orders").version == 2


def test_refresh_follows_a_new_version() -> None:
    registry = EmbeddedRegistry()
    registry.register("orders", V1)
    binding = SchemaBinding(registry)
    assert binding.writer("orders").version == 1
    registry.register("orders", V2)
    assert binding.writer("orders").version == 1  # cached until refreshed
    binding.refresh("orders")
    assert binding.writer("orders").version == 2


def test_negotiation_keeps_writers_to_what_readers_read() -> None:
    registry, upcasters = setup()
    negotiator = VersionNegotiator()
    negotiator.announce("billing", "orders", [1])
    binding = SchemaBinding(registry, upcasters=upcasters, negotiator=negotiator)
    with pytest.raises(IncompatibleSchema, match="billing"):
        binding.validate_and_frame("orders", {"id": "o", "qty": 1})
    assert binding.negotiate("orders") == 1
    assert unframe(binding.validate_and_frame("orders", {"id": "o", "qty": 1}))[0] == 1
    negotiator.announce("billing", "orders", [1, 2])
    assert binding.negotiate("orders") == 2
    assert SchemaBinding(registry).negotiate("orders") == 2  # no readers declared


def test_binding_through_a_client_with_references() -> None:
    registry = EmbeddedRegistry()
    client = RegistryClient(registry=registry, retry=registry_retry(rng=random.Random(0)))
    money = {"type": "record", "name": "shop.Money", "fields": [{"name": "c", "type": "long"}]}
    client.register("money", money)
    price = {"type": "record", "name": "shop.Price", "fields": [{"name": "m", "type": "Money"}]}
    client.register("price", price, references=[Reference("shop.Money", "money", 1)])
    point = {"type": "object", "properties": {"x": {"type": "number"}}}
    client.register("point", point, "JSON")
    shape = {"type": "object", "properties": {"at": {"$ref": "point.json"}}}
    client.register("shape", shape, "JSON", [Reference("point.json", "point", 1)])
    binding = SchemaBinding(client)
    data = binding.validate_and_frame("price", {"m": {"c": 250}})
    assert binding.read("price", data) == {"m": {"c": 250}}
    assert binding.read("shape", binding.validate_and_frame("shape", {"at": {"x": 1}})) == {
        "at": {"x": 1}
    }
    with pytest.raises(SchemaViolation) as caught:
        binding.validate("shape", {"at": {"x": "far"}})
    assert caught.value.path == "/at/x"


def project(store: msdb.Store, binding: SchemaBinding, orders: int) -> dict[str, Any]:
    """The state a service derives: each order's latest event, upcast, and its quantity total."""
    out: dict[str, Any] = {}
    for n in range(orders):
        entry = store.map(f"order:{n}").value
        if "event" in entry:
            out[f"order:{n}"] = (binding.read("orders", entry["event"]), entry.get("qty"))
    return out


@given(st.lists(st.tuples(st.booleans(), st.integers(0, 3), st.integers(1, 5)), max_size=12))
def test_rolling_upgrade_converges(writes: list[tuple[bool, int, int]]) -> None:
    # Two replicas of one service mid-upgrade: "old" still writes version 1, "new" writes
    # version 2. Both keep writing while they exchange events; afterwards they hold the same
    # state, and every reader sees the same upcast events whatever version wrote them.
    registry, upcasters = setup()
    old_binding = SchemaBinding(registry, upcasters=upcasters)
    old_binding.pin("orders", 1)
    new_binding = SchemaBinding(registry, upcasters=upcasters)
    old, new = msdb.Store("old"), msdb.Store("new")
    try:
        for i, (on_new, order, qty) in enumerate(writes):
            store, binding = (new, new_binding) if on_new else (old, old_binding)
            value: dict[str, Any] = {"id": f"o{order}", "qty": qty}
            if on_new:
                value["currency"] = "USD"
            handle = store.map(f"order:{order}")
            handle.register("event").set(binding.validate_and_frame("orders", value))
            handle.counter("qty").increment(qty)
            if i % 3 == 2:
                msdb.sync(old, new)
        msdb.sync(old, new)
        assert old.digest() == new.digest()
        seen_by_new_on_old = project(old, new_binding, 4)
        seen_by_new_on_new = project(new, new_binding, 4)
        assert seen_by_new_on_old == seen_by_new_on_new
        for event, _total in seen_by_new_on_new.values():
            assert set(event) == {"id", "qty", "currency"}
        # Upgrade done: the old replica now reads with the new binding and agrees.
        old_binding.pin("orders", None)
        assert project(old, old_binding, 4) == seen_by_new_on_new
    finally:
        old.close()
        new.close()


def test_key_prefixes_bind_to_subjects() -> None:
    registry, _ = setup()
    binding = SchemaBinding(registry)
    binding.bind("order:", "orders")
    binding.bind("order:archive:", "orders-archive")
    assert binding.subject_for("order:42") == "orders"
    assert binding.subject_for("order:archive:7") == "orders-archive"
    assert binding.subject_for("user:1") is None
