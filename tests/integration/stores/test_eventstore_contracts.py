"""Both external backends pass the shipped EventStore contract against the real servers."""

from __future__ import annotations

import itertools
from collections.abc import Callable

import pytest

from microstatedb.log import EventStore
from microstatedb.stores import JetStreamEventStore, PostgresEventStore
from microstatedb.testing import EventStoreContract

pytestmark = pytest.mark.integration

TABLES = itertools.count()


class TestPostgresEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _database(self, pg_dsn: str) -> None:
        self.dsn = pg_dsn

    def make_store(self) -> EventStore:
        # A small page size so that reads cross page boundaries in the contract's tests.
        return PostgresEventStore(self.dsn, table=f"events_{next(TABLES)}", page_size=7)


class TestJetStreamEventStore(EventStoreContract):
    @pytest.fixture(autouse=True)
    def _streams(self, stream_names: Callable[[], str]) -> None:
        self.names = stream_names

    def make_store(self) -> EventStore:
        return JetStreamEventStore(self.names(), page_size=7)
