"""The shared surface: exports, KINDS, new_crdt, state_digest, the protocol."""

from __future__ import annotations

import pytest

import microstatedb.crdt as crdt
from microstatedb.crdt import (
    CRDT,
    KINDS,
    AWSet,
    Document,
    LWWRegister,
    MVRegister,
    ORMap,
    PNCounter,
    new_crdt,
    state_digest,
)
from microstatedb.errors import ConfigurationError


def test_public_names_are_pinned() -> None:
    assert sorted(crdt.__all__) == sorted(
        [
            "CRDT",
            "KINDS",
            "AWSet",
            "Document",
            "DotContext",
            "LWWRegister",
            "MVRegister",
            "ORMap",
            "PNCounter",
            "new_crdt",
            "state_digest",
        ]
    )


def test_kinds_registry_names_every_type() -> None:
    assert {
        "counter": PNCounter,
        "register": LWWRegister,
        "mvregister": MVRegister,
        "set": AWSet,
        "map": ORMap,
        "document": Document,
    } == KINDS
    for kind, cls in KINDS.items():
        obj = new_crdt(kind, "a", clock=lambda: 1)
        assert type(obj) is cls
        assert obj.kind == kind
        assert obj.replica == "a"
        assert isinstance(obj, CRDT)
        assert obj._is_empty()


def test_new_crdt_refuses_unknown_kinds() -> None:
    with pytest.raises(ConfigurationError, match="counter"):
        new_crdt("queue", "a")


@pytest.mark.parametrize("replica", ["", 3, None])
def test_replica_must_be_a_non_empty_str(replica: object) -> None:
    with pytest.raises(ConfigurationError, match="replica"):
        PNCounter(replica)  # type: ignore[arg-type]


def test_state_digest_is_equal_iff_states_are_equal() -> None:
    a, b = AWSet("a"), AWSet("b")
    a.add("x")
    assert state_digest(a) != state_digest(b)
    b.merge(a)
    assert state_digest(a) == state_digest(b)
    assert len(state_digest(a)) == 32
    b.add("y")
    assert state_digest(a) != state_digest(b)
