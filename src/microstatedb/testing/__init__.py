"""Test helpers shipped for users: contract suites for the pluggable parts.

Importing this package needs neither pytest nor hypothesis; the suites import them when run.
"""

from microstatedb.testing.contracts import EventStoreContract

__all__ = ["EventStoreContract"]
