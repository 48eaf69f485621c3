"""Real PostgreSQL and NATS JetStream for the external store tests.

Each session gets its own database and stream-name prefix, dropped afterwards whatever
happens (``.ci/services`` starts both servers if they are down).
"""

from __future__ import annotations

import asyncio
import itertools
import uuid
from collections.abc import Callable, Iterator

import nats
import psycopg
import pytest
from psycopg import sql

from microstatedb.stores import DEFAULT_DSN, DEFAULT_SERVERS, JetStreamEventStore

RUN = uuid.uuid4().hex[:10]


@pytest.fixture(scope="session")
def pg_dsn() -> Iterator[str]:
    """A connection string to a fresh database, dropped at the end of the session."""
    name = f"msdb_test_{RUN}"
    admin = psycopg.connect(DEFAULT_DSN, autocommit=True)
    admin.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(name)))
    try:
        yield f"host=127.0.0.1 port=5432 user=postgres dbname={name}"
    finally:
        admin.execute(sql.SQL("DROP DATABASE {} WITH (FORCE)").format(sql.Identifier(name)))
        admin.close()


async def _delete_streams(prefix: str) -> list[str]:
    nc = await nats.connect(DEFAULT_SERVERS)
    try:
        js = nc.jetstream()
        gone = []
        for name in await js.streams_info():
            stream = name.config.name or ""
            if stream.startswith(prefix):
                await js.delete_stream(stream)
                gone.append(stream)
        return gone
    finally:
        await nc.close()


@pytest.fixture(scope="session")
def stream_names() -> Iterator[Callable[[], str]]:
    """Makes unique stream names; every stream so named is deleted at the end."""
    prefix = f"msdbtest_{RUN}_"
    counter = itertools.count()
    try:
        yield lambda: f"{prefix}{next(counter)}"
    finally:
        asyncio.run(_delete_streams(prefix))


@pytest.fixture
def jetstream(stream_names: Callable[[], str]) -> Iterator[JetStreamEventStore]:
    store = JetStreamEventStore(stream_names())
    try:
        yield store
    finally:
        store.close()
