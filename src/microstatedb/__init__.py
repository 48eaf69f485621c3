"""MicroStateDB: embedded, event-sourced, replicated state for microservices.

Layering (each a package; a layer imports only those before it in this list):
clock, observability, codec, crdt, resilience, log, replica, schema, protocols, transport,
runtime, stores, verify, testing, cli. Local operations never wait on the network; only
linearizable ones do. See docs/architecture.md.

The names below load on first use (PEP 562), so that importing the package, as the pytest
plugin does before anything else, costs almost nothing.
"""

from __future__ import annotations

import importlib
from importlib.metadata import version as _version
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from microstatedb import crdt, errors
    from microstatedb.replica import Consistency, Store, StoreStats, sync

__version__ = _version("microstatedb")

_LAZY = {
    "Consistency": "microstatedb.replica",
    "Store": "microstatedb.replica",
    "StoreStats": "microstatedb.replica",
    "sync": "microstatedb.replica",
}
_MODULES = ("crdt", "errors")

__all__ = [
    "Consistency",
    "Store",
    "StoreStats",
    "__version__",
    "crdt",
    "errors",
    "sync",
]


def __getattr__(name: str) -> Any:
    if name in _MODULES:
        return importlib.import_module(f"microstatedb.{name}")
    where = _LAZY.get(name)
    if where is None:
        raise AttributeError(f"module 'microstatedb' has no attribute {name!r}")
    value = getattr(importlib.import_module(where), name)
    globals()[name] = value  # later lookups skip this function
    return value


def __dir__() -> list[str]:
    return sorted(set(globals()) | set(__all__))
