"""External long-term event stores, and what a replica does with them.

This layer sits above ``replica``: its backends implement ``log.EventStore`` (so a store's
released history can go to them through ``Store(..., archive=...)``) and its helpers use the
store's public API only.

- ``PostgresEventStore``: one table, dense positions, one transaction per batch;
- ``JetStreamEventStore``: one stream, one subject per dot, server-side deduplication;
- ``bootstrap`` / ``refetch``: rebuild a replica, or bring back events lost to corruption;
- ``JetStreamReplicator``: replication between stores through a JetStream stream.

Both backends pass ``microstatedb.testing.EventStoreContract`` against real servers. See
docs/stores.md.
"""

from microstatedb.stores._bootstrap import BootstrapReport, bootstrap, refetch
from microstatedb.stores._jetstream import DEFAULT_SERVERS, JetStreamEventStore
from microstatedb.stores._postgres import DEFAULT_DSN, PostgresEventStore
from microstatedb.stores._replication import JetStreamReplicator

__all__ = [
    "DEFAULT_DSN",
    "DEFAULT_SERVERS",
    "BootstrapReport",
    "JetStreamEventStore",
    "JetStreamReplicator",
    "PostgresEventStore",
    "bootstrap",
    "refetch",
]
