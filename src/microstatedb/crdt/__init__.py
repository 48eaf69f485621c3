"""Pure convergent replicated data types (delta-state CRDTs); no I/O.

Every type follows one protocol (``CRDT``): mutators apply a small delta locally, report it to
``on_change`` and return it; ``apply`` joins a delta or a full state in any order, any number
of times; ``state()`` is canonical, so equal states give equal ``state_digest``.

Layering inside the package: ``_context`` (causal contexts) and ``_values`` (what users may
store) under ``_dotmap`` (the add-wins join), under the types; ``_base`` holds the protocol,
the ``KINDS`` registry and the delta plumbing every type shares.
"""

from microstatedb.crdt._base import CRDT, KINDS, new_crdt, state_digest
from microstatedb.crdt._context import DotContext
from microstatedb.crdt._counter import PNCounter
from microstatedb.crdt._document import Document
from microstatedb.crdt._map import ORMap
from microstatedb.crdt._register import LWWRegister, MVRegister
from microstatedb.crdt._set import AWSet

__all__ = [
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
