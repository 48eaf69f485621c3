"""Test tools shipped for users: a pytest plugin, strategies, a stateful machine, contracts.

Layering inside the package: ``_registry`` (stdlib only) under ``plugin`` (pytest only at
import: pytest loads it before coverage starts); ``_cluster`` wraps the simulator; ``_checked``
wraps the recorder and checkers; ``_strategies``, ``_machine`` and the contract suites build on
them. Names load on first use, so importing this package needs neither pytest nor hypothesis
and runs none of the library's code.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from microstatedb.testing._checked import CHECKERS, CheckedRecorder, check_history
    from microstatedb.testing._cluster import Cluster, Nemesis, Step
    from microstatedb.testing._crdt_contract import CRDTContract
    from microstatedb.testing._machine import ReplicatedStoreMachine
    from microstatedb.testing._strategies import (
        ELEMENTS,
        apply_op,
        crdt_ops,
        histories,
        schedules,
    )
    from microstatedb.testing._transport_contract import TransportContract
    from microstatedb.testing.contracts import EventStoreContract

_WHERE = {
    "CHECKERS": "_checked",
    "CheckedRecorder": "_checked",
    "check_history": "_checked",
    "Cluster": "_cluster",
    "Nemesis": "_cluster",
    "Step": "_cluster",
    "CRDTContract": "_crdt_contract",
    "ReplicatedStoreMachine": "_machine",
    "ELEMENTS": "_strategies",
    "apply_op": "_strategies",
    "crdt_ops": "_strategies",
    "histories": "_strategies",
    "schedules": "_strategies",
    "TransportContract": "_transport_contract",
    "EventStoreContract": "contracts",
}

__all__ = [
    "CHECKERS",
    "ELEMENTS",
    "CRDTContract",
    "CheckedRecorder",
    "Cluster",
    "EventStoreContract",
    "Nemesis",
    "ReplicatedStoreMachine",
    "Step",
    "TransportContract",
    "apply_op",
    "check_history",
    "crdt_ops",
    "histories",
    "schedules",
]


def __getattr__(name: str) -> Any:
    module = _WHERE.get(name)
    if module is None:
        raise AttributeError(f"module 'microstatedb.testing' has no attribute {name!r}")
    value = getattr(importlib.import_module(f"microstatedb.testing.{module}"), name)
    globals()[name] = value
    return value
