"""MicroStateDB: embedded, event-sourced, replicated state for microservices.

Layering (each a package; a layer imports only those above it in this list):
clock, observability, codec, crdt, resilience, log, replica, schema, protocols, transport,
runtime, stores, verify, testing, cli. See docs/architecture.md.
"""

from microstatedb import errors

__all__ = ["errors"]
