"""Schemas on the store's data path: validation before the mutation, framing, upcasting on
read (local writes, remote events, replay), negotiation, and a rolling upgrade that converges."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from hypothesis import given
from hypothesis import strategies as st

from microstatedb.crdt import CRDT, AWSet, LWWRegister, MVRegister, ORMap, PNCounter
from microstatedb.errors import (
    ConfigurationError,
    DecodeError,
    IncompatibleSchema,
    InvalidOperation,
    SchemaViolation,
    StoreClosed,
    TypeMismatch,
)
from microstatedb.replica import (
    BoundMap,
    BoundMVRegister,
    BoundRegister,
    BoundSet,
    Store,
    ValueSchema,
    decode_batch,
    decode_token,
    sync,
)
from microstatedb.schema import (
    EmbeddedRegistry,
    SchemaBinding,
    StoreSchema,
    Upcasters,
    VersionNegotiator,
    unframe,
)

V1 = {
    "type": "record",
    "name": "shop.Order",
    "fields": [{"name": "id", "type": "string"}, {"name": "qty", "type": "int"}],
}
# Adds a field with a default: FULL compatible, so each version reads the other's data.
V2 = {
    "type": "record",
    "name": "shop.Order",
    "fields": [
        {"name": "id", "type": "string"},
        {"name": "qty", "type": "int"},
        {"name": "currency", "type": "string", "default": "EUR"},
    ],
}


def add_currency(value: dict[str, Any]) -> dict[str, Any]:
    return {**value, "currency": "EUR"}


class World:
    """A registry with both versions of ``orders`` and a ``tags`` subject of strings."""

    def __init__(self) -> None:
        self.registry = EmbeddedRegistry()
        self.v1 = self.registry.register("orders", V1)
        self.v2 = self.registry.register("orders", V2)
        self.tags = self.registry.register("tags", "string")
        self.upcasters = Upcasters()
        self.upcasters.add("orders", 1, add_currency)

    def schema(
        self,
        *,
        pin: int | None = None,
        upcast: bool = True,
        negotiator: VersionNegotiator | None = None,
    ) -> StoreSchema:
        binding = SchemaBinding(
            self.registry,
            upcasters=self.upcasters if upcast else Upcasters(),
            negotiator=negotiator,
        )
        if pin is not None:
            binding.pin("orders", pin)
        return StoreSchema(binding)

    def store(self, name: str, schema: StoreSchema | None = None, **options: Any) -> Store:
        store = Store(name, **options)
        schema = schema if schema is not None else self.schema()
        store.bind_schema("order:", schema, "orders")
        store.bind_schema("tag:", schema, "tags")
        return store


@pytest.fixture
def world() -> World:
    return World()


@pytest.fixture
def store(world: World) -> Iterator[Store]:
    with world.store("a") as s:
        yield s


def footprint(store: Store) -> tuple[bytes, dict[str, int], int]:
    """Everything a write changes: the state, the version vector and the log."""
    return store.digest(), dict(store.version_vector), store.stats().events_in_log


def logged_values(store: Store) -> list[Any]:
    return [ev.op for ev in decode_batch(store.events_since({})).events]


# ---------------------------------------------------------------------- writes and framing


def test_a_register_frames_its_value_with_the_schema_id(world: World, store: Store) -> None:
    handle = store.register("order:1")
    assert isinstance(handle, BoundRegister)
    handle.set({"id": "o1", "qty": 2, "currency": "USD"})
    raw = handle.crdt.value
    assert raw[:5] == b"\x00" + world.v2.to_bytes(4, "big")
    assert unframe(raw)[0] == world.v2
    assert handle.value == {"id": "o1", "qty": 2, "currency": "USD"}
    # the logged event carries the framed bytes, not the Python value
    (op,) = logged_values(store)
    assert op[1] == raw
    assert handle.stamp is not None
    assert handle.kind == "register"
    assert handle.subject == "orders"
    assert handle.key == "order:1"
    assert handle.state()[1] == raw
    assert "order:1" in repr(handle)


def test_a_bare_schema_binding_is_a_value_schema(world: World) -> None:
    binding = SchemaBinding(world.registry)
    assert isinstance(binding, ValueSchema)
    assert isinstance(StoreSchema(binding), ValueSchema)
    with Store("b") as store:
        store.bind_schema("order:", binding, "orders")
        store.register("order:1").set({"id": "o", "qty": 1})
        assert store.register("order:1").value == {"id": "o", "qty": 1, "currency": "EUR"}


BAD_WRITES: dict[str, Callable[[Store], Any]] = {
    "register": lambda s: s.register("order:1").set({"id": "o", "qty": "two"}),
    "mvregister": lambda s: s.mvregister("order:2").set({"id": "o", "qty": "two"}),
    "set add": lambda s: s.set("tag:1").add(7),
    "set remove": lambda s: s.set("tag:1").remove(7),
    "map register": lambda s: s.map("order:m").register("r").set({"id": "o", "qty": "two"}),
    "map mvregister": lambda s: s.map("order:m").mvregister("v").set({"qty": 1}),
    "map set": lambda s: s.map("order:m").set("s").add({"id": 3, "qty": 1}),
    "nested map": lambda s: s.map("order:m").map("n").register("r").set(None),
}
BAD_PATHS = {"register": "/qty", "map register": "/qty", "map set": "/id"}


@pytest.mark.parametrize("name", list(BAD_WRITES))
def test_a_bad_first_write_leaves_no_key(store: Store, name: str) -> None:
    before = footprint(store)
    with pytest.raises(SchemaViolation):
        BAD_WRITES[name](store)
    assert footprint(store) == before
    assert store.keys() == []
    assert store.register("order:1").crdt is None
    assert store.map("order:m").register("r").crdt is None


@pytest.mark.parametrize("name", list(BAD_WRITES))
def test_a_bad_value_writes_nothing(store: Store, name: str) -> None:
    store.register("order:1").set({"id": "o", "qty": 1})
    store.mvregister("order:2").set({"id": "o", "qty": 1})
    store.set("tag:1").add("vip")
    inner = store.map("order:m")
    inner.register("r").set({"id": "o", "qty": 1})
    inner.counter("c").increment(2)
    for handle in (inner.mvregister("v"), inner.set("s"), inner.map("n").register("r")):
        assert handle.value in (None, (), frozenset())
    before = footprint(store)
    value_before = store.value()
    with pytest.raises(SchemaViolation) as caught:
        BAD_WRITES[name](store)
    assert caught.value.subject in ("orders", "tags")
    if name in BAD_PATHS:
        assert caught.value.path == BAD_PATHS[name]
    assert footprint(store) == before
    assert store.value() == value_before


def test_a_durable_store_logs_nothing_on_a_bad_value(world: World, tmp_path: Path) -> None:
    with world.store("d", path=tmp_path / "d", durability="always") as store:
        store.register("order:1").set({"id": "o", "qty": 1})
        before = footprint(store)
        with pytest.raises(SchemaViolation):
            store.register("order:1").set({"id": 1, "qty": 1})
    with world.store("d", path=tmp_path / "d") as store:
        assert footprint(store) == before
        assert store.register("order:1").value == {"id": "o", "qty": 1, "currency": "EUR"}


def test_mvregister_keeps_concurrent_values_decoded(world: World) -> None:
    a, b = world.store("a"), world.store("b")
    a.mvregister("order:x").set({"id": "a", "qty": 1})
    b.mvregister("order:x").set({"id": "b", "qty": 2})
    sync(a, b)
    handle = a.mvregister("order:x")
    assert isinstance(handle, BoundMVRegister)
    assert sorted(v["id"] for v in handle.value) == ["a", "b"]
    assert a.mvregister("order:x").value == b.mvregister("order:x").value
    handle.set({"id": "c", "qty": 3})
    assert handle.value == ({"id": "c", "qty": 3, "currency": "EUR"},)


# ------------------------------------------------------------------------------- sets


def test_a_set_validates_and_decodes_its_elements(store: Store) -> None:
    tags = store.set("tag:1")
    assert isinstance(tags, BoundSet)
    tags.add("vip")
    tags.add("new")
    assert tags.value == frozenset({"vip", "new"})
    assert "vip" in tags
    assert "old" not in tags
    assert len(tags) == 2
    assert sorted(tags) == ["new", "vip"]
    assert all(unframe(raw)[0] == unframe(next(iter(tags.crdt.value)))[0] for raw in tags.crdt)
    tags.remove("vip")
    assert tags.value == frozenset({"new"})
    before = footprint(store)
    tags.remove("absent")  # like an unbound set: a remove of nothing is still an event
    assert store.version_vector["a"] == before[1]["a"] + 1
    assert tags.value == frozenset({"new"})


def test_a_remove_takes_every_encoding_of_the_value() -> None:
    registry = EmbeddedRegistry()
    registry.register("tags", "string")
    upcasters = Upcasters()
    old = SchemaBinding(registry, upcasters=upcasters)
    old.pin("tags", 1)
    registry.register("tags", ["string", "null"])
    upcasters.add("tags", 1, lambda v: v)
    a, b = Store("a"), Store("b")
    a.bind_schema("tag:", StoreSchema(old), "tags")
    b.bind_schema("tag:", StoreSchema(SchemaBinding(registry, upcasters=upcasters)), "tags")
    a.set("tag:s").add("vip")
    b.set("tag:s").add("vip")
    sync(a, b)
    assert len(b.set("tag:s").crdt.value) == 2  # two encodings of one value
    assert b.set("tag:s").value == frozenset({"vip"})
    assert len(b.set("tag:s")) == 1
    b.set("tag:s").remove("vip")
    assert b.set("tag:s").crdt.value == frozenset()
    sync(a, b)
    assert a.set("tag:s").value == frozenset() == b.set("tag:s").value
    assert a.digest() == b.digest()


def test_a_set_of_records_reads_through_elements(world: World, store: Store) -> None:
    with world.store("old", world.schema(pin=1)) as old:
        old.set("order:set").add({"id": "o", "qty": 1})
        sync(old, store)
    orders = store.set("order:set")
    orders.add({"id": "o", "qty": 1, "currency": "EUR"})  # the same value, framed by v2
    assert len(orders.crdt) == 2
    assert orders.elements() == [{"id": "o", "qty": 1, "currency": "EUR"}]
    assert len(orders) == 1
    assert list(orders) == orders.elements()
    assert {"id": "o", "qty": 1, "currency": "EUR"} in orders
    with pytest.raises(InvalidOperation, match="elements"):
        _ = orders.value
    assert "unreadable: InvalidOperation" in repr(orders)
    orders.remove({"id": "o", "qty": 1, "currency": "EUR"})
    assert orders.elements() == []


# ------------------------------------------------------------------------------- maps


def test_a_map_validates_its_registers_at_any_depth(store: Store) -> None:
    cart = store.map("order:cart")
    assert isinstance(cart, BoundMap)
    cart.register("first").set({"id": "o1", "qty": 1})
    cart.counter("items").increment(3)
    cart.set("tags").add({"id": "o2", "qty": 2})
    cart.mvregister("mv").set({"id": "o3", "qty": 3})
    cart.map("inner").register("deep").set({"id": "o4", "qty": 4})
    assert isinstance(cart.counter("items"), PNCounter)
    assert cart.register("first").key == "order:cart/first"
    assert cart.map("inner").register("deep").key == "order:cart/inner/deep"
    eur = {"currency": "EUR"}
    with pytest.raises(InvalidOperation):  # a set of records has no frozenset value
        _ = cart.value
    cart.remove("tags")
    assert cart.value == {
        "first": {"id": "o1", "qty": 1, **eur},
        "items": 3,
        "mv": ({"id": "o3", "qty": 3, **eur},),
        "inner": {"deep": {"id": "o4", "qty": 4, **eur}},
    }
    assert cart.keys() == ["first", "inner", "items", "mv"]
    assert cart.kind_of("inner") == "map"
    assert "first" in cart
    assert "tags" not in cart
    assert len(cart) == 4
    assert store.value()["order:cart"] == cart.value


def test_store_value_decodes_bound_keys_only(store: Store) -> None:
    store.register("order:1").set({"id": "o", "qty": 1})
    store.register("plain").set(b"\x00raw")
    store.counter("order:count").increment()
    assert store.value() == {
        "order:1": {"id": "o", "qty": 1, "currency": "EUR"},
        "order:count": 1,
        "plain": b"\x00raw",
    }


# ------------------------------------------------------------------- binding and costs


def test_unbound_keys_get_the_crdt_itself(world: World) -> None:
    with Store("plain") as plain:
        assert plain._schemas is None  # no binding: handles are returned as before
        assert type(plain.register("order:1")) is LWWRegister
        assert plain.subject_of("order:1") is None
    with world.store("bound") as store:
        assert type(store.register("user:1")) is LWWRegister
        assert store.register("user:1") is store.register("user:1")
        with pytest.raises(ConfigurationError):
            store.register(5)  # type: ignore[arg-type]
        assert type(store.mvregister("user:2")) is MVRegister
        assert type(store.set("user:3")) is AWSet
        assert type(store.map("user:4")) is ORMap
        assert type(store.counter("order:n")) is PNCounter  # counters hold no schema values
        store.document("notes")
        with pytest.raises(InvalidOperation, match="documents"):
            store.document("order:doc")
        assert store.subject_of("user:1") is None
        assert store.subject_of("order:1") == "orders"


def test_the_longest_prefix_wins(world: World) -> None:
    with world.store("a") as store:
        store.bind_schema("order:tag:", world.schema(), "tags")
        assert store.subject_of("order:tag:1") == "tags"
        assert store.subject_of("order:1") == "orders"
        store.set("order:tag:1").add("vip")
        with pytest.raises(SchemaViolation):
            store.register("order:tag:2").set({"id": "o", "qty": 1})


def test_bind_schema_refuses_bad_arguments(world: World) -> None:
    store = Store("a")
    schema = world.schema()
    with pytest.raises(ConfigurationError):
        store.bind_schema(1, schema, "orders")  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        store.bind_schema("order:", schema, "")
    with pytest.raises(ConfigurationError, match="validate_and_frame"):
        store.bind_schema("order:", object(), "orders")  # type: ignore[arg-type]
    assert store._schemas is None
    store.close()
    with pytest.raises(StoreClosed):
        store.bind_schema("order:", schema, "orders")


def test_a_store_schema_refuses_a_version_below_one(world: World) -> None:
    with pytest.raises(ConfigurationError):
        StoreSchema(SchemaBinding(world.registry), read_version=0)


def test_values_written_before_the_binding_do_not_read(world: World) -> None:
    with Store("a") as store:
        store.register("order:1").set("legacy")
        store.bind_schema("order:", world.schema(), "orders")
        with pytest.raises(DecodeError, match="before its prefix was bound"):
            _ = store.register("order:1").value


def test_a_session_hands_out_bound_handles(store: Store) -> None:
    with store.session() as s:
        s.register("order:1").set({"id": "o", "qty": 5})
        assert s.register("order:1").value["qty"] == 5
        with pytest.raises(SchemaViolation):
            s.register("order:1").set({"qty": 5})
        assert decode_token(s.token) == {"a": 1}
        # a write through a nested bound handle is covered by the token too
        s.map("order:m").map("inner").register("r").set({"id": "m", "qty": 1})
        assert decode_token(s.token) == {"a": 2}
        token = s.token
    with store.session(token=token) as s2:
        assert s2.register("order:1").value["id"] == "o"
        assert s2.map("order:m").value["inner"]["r"]["id"] == "m"


def test_bound_handles_follow_the_crdt_protocol(world: World, store: Store) -> None:
    handle = store.register("order:1")
    assert isinstance(handle, CRDT)
    assert handle.replica == "a"
    assert handle.on_change is None  # no CRDT yet
    handle.set({"id": "o", "qty": 1})
    assert handle.on_change is not None
    with world.store("b") as other:
        theirs = other.register("order:1")
        theirs.merge(handle)
        assert theirs.value == handle.value
        assert other.version_vector == {}  # a merge is a join, not a logged write
        copy = BoundRegister.from_state("c", handle.state())
        assert type(copy) is LWWRegister
        assert copy.value == handle.crdt.value
        fresh = other.mvregister("order:2")
        fresh.apply(store.mvregister("order:9").state())
        fresh.merge(MVRegister("x"))
        assert fresh.value == ()


def test_reset_is_not_a_value_write(store: Store) -> None:
    handle = store.register("order:1")
    handle.set({"id": "o", "qty": 1})
    handle.reset()
    assert handle.value is None
    assert store.value()["order:1"] is None


# --------------------------------------------------------------- versions and negotiation


def test_a_writer_refuses_a_version_its_readers_cannot_read(world: World) -> None:
    readers = VersionNegotiator()
    readers.announce("billing", "orders", [1])
    schema = world.schema(negotiator=readers)
    with world.store("a", schema) as store:
        handle = store.register("order:1")
        before = footprint(store)
        with pytest.raises(IncompatibleSchema, match="billing"):
            handle.set({"id": "o", "qty": 1, "currency": "USD"})
        assert footprint(store) == before
        assert schema.binding.negotiate("orders") == 1
        handle.set({"id": "o", "qty": 1})
        assert unframe(handle.crdt.value)[0] == world.v1
        # still read in the newest version this service can upcast to
        assert handle.value == {"id": "o", "qty": 1, "currency": "EUR"}
        assert schema.read_version("orders") == 2


def test_an_old_reader_resolves_newer_values_into_its_version(world: World) -> None:
    old_schema = world.schema(pin=1, upcast=False)
    assert old_schema.read_version("orders") == 1
    old, new = world.store("old", old_schema), world.store("new")
    new.register("order:1").set({"id": "o", "qty": 1, "currency": "USD"})
    old.register("order:2").set({"id": "p", "qty": 2})
    sync(old, new)
    assert old.digest() == new.digest()
    assert old.register("order:1").value == {"id": "o", "qty": 1}
    assert new.register("order:2").value == {"id": "p", "qty": 2, "currency": "EUR"}
    explicit = StoreSchema(SchemaBinding(world.registry), read_version=1)
    assert explicit.read("orders", new.register("order:1").crdt.value) == {"id": "o", "qty": 1}


def test_json_schema_values_on_the_data_path() -> None:
    registry = EmbeddedRegistry(default_level="NONE")
    point = {"type": "object", "properties": {"x": {"type": "number"}}, "required": ["x"]}
    registry.register("points", point, "JSON")
    wider = {"type": "object", "properties": {"x": {"type": "number"}, "y": {"type": "number"}}}
    old = SchemaBinding(registry)
    registry.register("points", {**wider, "required": ["x"]}, "JSON")
    old.pin("points", 1)
    with Store("a") as a, Store("b") as b:
        a.bind_schema("pt:", StoreSchema(old), "points")
        b.bind_schema("pt:", StoreSchema(SchemaBinding(registry)), "points")
        with pytest.raises(SchemaViolation) as caught:
            b.register("pt:1").set({"x": "far"})
        assert caught.value.path == "/x"
        b.register("pt:1").set({"x": 1, "y": 2})
        sync(a, b)
        raw = a.register("pt:1").crdt.value
        assert raw[5:] == b'{"x":1,"y":2}'
        # JSON has no schema resolution: an old reader sees the newer value as written
        assert a.register("pt:1").value == {"x": 1, "y": 2}


# ----------------------------------------------------------------------- replay and sync


def test_a_reopened_durable_store_upcasts_its_log(world: World, tmp_path: Path) -> None:
    with world.store("d", world.schema(pin=1), path=tmp_path / "d") as store:
        store.register("order:1").set({"id": "o", "qty": 1})
        store.map("order:m").register("r").set({"id": "m", "qty": 2})
        store.set("tag:t").add("vip")
        digest = store.digest()
    with world.store("d", path=tmp_path / "d") as store:
        assert store.digest() == digest
        assert store.register("order:1").value == {"id": "o", "qty": 1, "currency": "EUR"}
        assert store.value() == {
            "order:1": {"id": "o", "qty": 1, "currency": "EUR"},
            "order:m": {"r": {"id": "m", "qty": 2, "currency": "EUR"}},
            "tag:t": frozenset({"vip"}),
        }


def test_snapshots_and_state_batches_keep_framed_values(world: World, tmp_path: Path) -> None:
    with world.store("s", world.schema(pin=1), path=tmp_path / "s", snapshot_every=2) as s:
        for n in range(5):
            s.register(f"order:{n}").set({"id": f"o{n}", "qty": n})
    with world.store("s", path=tmp_path / "s") as s, world.store("c", log=False) as cache:
        assert s.stats().events_applied == 5
        assert s.register("order:4").value == {"id": "o4", "qty": 4, "currency": "EUR"}
        cache.register("order:9").set({"id": "c", "qty": 9})
        sync(s, cache)
        assert s.digest() == cache.digest()
        assert s.value() == cache.value()
        assert cache.register("order:0").value["currency"] == "EUR"


RECORD = st.fixed_dictionaries(
    {"id": st.text(max_size=8), "qty": st.integers(-(2**31), 2**31 - 1)},
    optional={"currency": st.sampled_from(["EUR", "USD", "JPY"])},
)
BAD = st.one_of(
    st.fixed_dictionaries({"id": st.integers(), "qty": st.integers(0, 9)}),
    st.fixed_dictionaries({"id": st.text(max_size=3), "qty": st.text(max_size=3)}),
    st.fixed_dictionaries({"id": st.text(max_size=3), "qty": st.just(2**40)}),
    st.none(),
)
OPS = st.lists(
    st.tuples(
        st.booleans(),  # on the store writing version 2 (else version 1)
        st.sampled_from(["register", "mvregister", "map", "set"]),
        st.integers(0, 2),
        st.one_of(RECORD.map(lambda v: (True, v)), BAD.map(lambda v: (False, v))),
        st.booleans(),  # sync afterwards
    ),
    max_size=20,
)


def records(value: Any) -> Iterator[dict[str, Any]]:
    """Every order record inside a store's value."""
    if isinstance(value, dict) and "qty" in value:
        yield value
    elif isinstance(value, dict):
        for inner in value.values():
            yield from records(inner)
    elif isinstance(value, tuple):
        for inner in value:
            yield from records(inner)


def write(store: Store, kind: str, n: int, value: Any) -> None:
    if kind == "register":
        store.register(f"order:{n}").set(value)
    elif kind == "mvregister":
        store.mvregister(f"order:mv{n}").set(value)
    elif kind == "map":
        store.map("order:map").register(str(n)).set(value)
    else:
        store.set(f"tag:{n}").add(value["id"] if isinstance(value, dict) else value)


@given(OPS)
def test_mixed_versions_converge_and_show_the_same_values(
    ops: list[tuple[bool, str, int, tuple[bool, Any], bool]],
) -> None:
    # A rolling upgrade: "old" has the new code but writes version 1 (an old reader is still
    # around), "new" writes version 2. Invalid values are refused without a trace; after a
    # final two-way sync both hold the same bytes and show the same upcast values.
    world = World()
    old, new = world.store("old", world.schema(pin=1)), world.store("new")
    try:
        for on_new, kind, n, (valid, value), then_sync in ops:
            store = new if on_new else old
            if not valid and kind == "set" and isinstance(value, dict):
                value = value["id"] if not isinstance(value["id"], str) else 5
            before = footprint(store)
            if valid:
                write(store, kind, n, value)
                assert store.version_vector != before[1]
            else:
                with pytest.raises(SchemaViolation):
                    write(store, kind, n, value)
                assert footprint(store) == before
            if then_sync:
                sync(old, new)
        sync(old, new)
        assert old.digest() == new.digest()
        assert old.value() == new.value()
        for record in records(new.value()):
            assert set(record) == {"id", "qty", "currency"}
    finally:
        old.close()
        new.close()


@given(RECORD, st.booleans())
def test_every_valid_value_reads_back_upcast(value: dict[str, Any], old_writer: bool) -> None:
    world = World()
    with world.store("a", world.schema(pin=1 if old_writer else None)) as store:
        written = {k: v for k, v in value.items() if k != "currency"} if old_writer else value
        store.register("order:1").set(written)
        raw = store.register("order:1").crdt.value
        assert unframe(raw)[0] == (world.v1 if old_writer else world.v2)
        assert store.register("order:1").value == {"currency": "EUR", **written}


def test_a_handle_handed_out_early_sees_the_key_arrive(world: World) -> None:
    a, b = world.store("a"), world.store("b")
    early = b.register("order:1")
    early_map = b.map("order:m")
    early_child = early_map.register("r")
    assert early.value is None
    assert early.stamp is None
    assert early.state() == [None, None, None]
    assert early_map.value == {}
    assert early_map.keys() == []
    assert early_map.kind_of("r") is None
    assert "r" not in early_map
    assert len(early_map) == 0
    assert early_child.value is None
    assert b.keys() == []
    a.register("order:1").set({"id": "o", "qty": 1})
    a.map("order:m").register("r").set({"id": "m", "qty": 2})
    sync(a, b)
    assert early.value == {"id": "o", "qty": 1, "currency": "EUR"}
    assert early_child.value == {"id": "m", "qty": 2, "currency": "EUR"}
    assert early_map.kind_of("r") == "register"


def test_a_lazy_handle_still_refuses_another_type(world: World) -> None:
    with world.store("a") as store:
        lazy = store.register("order:1")
        store.set("order:1").add({"id": "o", "qty": 1})
        with pytest.raises(TypeMismatch):
            lazy.set({"id": "o", "qty": 1})
        with pytest.raises(TypeMismatch):
            store.register("order:1")


def test_counters_and_removals_in_a_fresh_bound_map_create_it(store: Store) -> None:
    store.map("order:a").counter("n").increment()
    assert store.map("order:a").value == {"n": 1}
    store.map("order:b").remove("x")
    assert "order:b" in store
    store.map("order:c").reset()
    assert store.keys() == ["order:a", "order:b", "order:c"]


def test_bound_keys_obey_the_store_checks(world: World) -> None:
    with world.store("a", consistency={"order:strong:": "linearizable"}) as store:
        with pytest.raises(InvalidOperation):
            store.register("order:strong:1")
        store.bind_schema("", world.schema(), "orders")
        with pytest.raises(ConfigurationError):
            store.register("")
    store = world.store("b")
    store.close()
    with pytest.raises(StoreClosed):
        store.register("order:1")


@given(
    st.lists(st.tuples(st.booleans(), st.booleans(), st.sampled_from(["a", "b", "c"])), max_size=15)
)
def test_a_bound_set_synced_after_each_op_is_a_plain_set(
    ops: list[tuple[bool, bool, str]],
) -> None:
    # Elements framed by either version of "tags" are one value: whichever replica adds or
    # removes it, with a sync after each operation both show exactly a plain set's contents.
    registry = EmbeddedRegistry()
    registry.register("tags", "string")
    upcasters = Upcasters()
    v1 = SchemaBinding(registry, upcasters=upcasters)
    v1.pin("tags", 1)
    registry.register("tags", ["string", "null"])
    upcasters.add("tags", 1, lambda v: v)
    old, new = Store("old"), Store("new")
    old.bind_schema("tag:", StoreSchema(v1), "tags")
    new.bind_schema("tag:", StoreSchema(SchemaBinding(registry, upcasters=upcasters)), "tags")
    model: set[str] = set()
    for on_new, add, element in ops:
        handle = (new if on_new else old).set("tag:s")
        if add:
            handle.add(element)
            model.add(element)
        else:
            handle.remove(element)
            model.discard(element)
        sync(old, new)
        assert old.set("tag:s").value == frozenset(model) == new.set("tag:s").value
        assert len(new.set("tag:s")) == len(model)
    assert old.digest() == new.digest()
