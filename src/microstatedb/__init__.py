"""MicroStateDB: embedded, event-sourced, replicated state for microservices.

Layering (each a package; a layer imports only those before it in this list):
clock, observability, codec, crdt, resilience, log, replica, schema, protocols, transport,
runtime, stores, verify, testing, cli. Local operations never wait on the network; only
linearizable ones do. See docs/architecture.md.
"""

from importlib.metadata import version as _version

from microstatedb import crdt, errors
from microstatedb.replica import Consistency, Store, StoreStats, sync

__version__ = _version("microstatedb")

__all__ = [
    "Consistency",
    "Store",
    "StoreStats",
    "__version__",
    "crdt",
    "errors",
    "sync",
]
