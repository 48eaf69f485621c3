"""PostgreSQL specifics: the schema, error translation, shared tables, a dropped connection."""

from __future__ import annotations

import itertools
import threading

import psycopg
import pytest

from microstatedb.codec import Event
from microstatedb.errors import (
    ConfigurationError,
    DataError,
    IntegrityError,
    OperationalError,
    StoreClosed,
)
from microstatedb.stores import PostgresEventStore
from microstatedb.stores._postgres import _translated

pytestmark = pytest.mark.integration

TABLES = itertools.count()


def ev(origin: str, seq: int, op: object = None) -> Event:
    return Event(origin, seq, seq, {}, "k", "counter", seq if op is None else op)


def fresh_table() -> str:
    return f"pg_{next(TABLES)}"


def test_the_library_creates_the_table_and_the_index(pg_dsn: str) -> None:
    table = fresh_table()
    store = PostgresEventStore(pg_dsn, table=table)
    store.append([ev("a", 1), ev("b", 1)])
    with psycopg.connect(pg_dsn) as conn:
        indexes = conn.execute(
            "SELECT indexdef FROM pg_indexes WHERE tablename = %s", (table,)
        ).fetchall()
        rows = conn.execute(f"SELECT position, origin, seq FROM {table} ORDER BY 1").fetchall()
    assert any("(origin, seq)" in d and "UNIQUE" in d for (d,) in indexes)
    assert rows == [(0, "a", 1), (1, "b", 1)]
    assert len(store) == 2
    # Opening it again finds the table and the events.
    again = PostgresEventStore(pg_dsn, table=table)
    assert list(again.read()) == [ev("a", 1), ev("b", 1)]
    assert "open" in repr(again)
    again.close()
    store.close()
    assert "closed" in repr(store)


def test_two_stores_on_one_table_keep_positions_dense(pg_dsn: str) -> None:
    # Two store objects stand for two processes: the advisory lock orders their appends.
    table = fresh_table()
    stores = [PostgresEventStore(pg_dsn, table=table) for _ in range(2)]
    errors: list[BaseException] = []

    def writer(i: int) -> None:
        try:
            for seq in range(1, 61, 3):
                stores[i % 2].append([ev(f"w{i}", s) for s in range(seq, seq + 3)])
        except BaseException as exc:  # reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(i,)) for i in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert errors == []
    assert len(stores[0]) == 240
    with psycopg.connect(pg_dsn) as conn:
        positions = [p for (p,) in conn.execute(f"SELECT position FROM {table} ORDER BY 1")]
    assert positions == list(range(240))
    for i in range(4):
        assert [e.seq for e in stores[1].read_origin(f"w{i}")] == list(range(1, 61))


def test_reads_page_through_large_tables(pg_dsn: str) -> None:
    store = PostgresEventStore(pg_dsn, table=fresh_table(), page_size=100)
    events = [ev("a", i) for i in range(1, 12_001)]
    store.append(events)  # more rows than one INSERT statement takes
    assert list(store.read()) == events
    assert list(store.read(11_950, limit=100)) == events[11_950:]
    assert [e.seq for e in store.read_origin("a", 11_990)] == list(range(11_991, 12_001))


def test_a_nul_character_is_a_data_error_with_the_cause(pg_dsn: str) -> None:
    store = PostgresEventStore(pg_dsn, table=fresh_table())
    with pytest.raises(DataError) as info:
        store.append([ev("a", 1), ev("bad\x00origin", 1)])
    assert isinstance(info.value.__cause__, psycopg.DataError)
    assert list(store.read()) == []


def test_an_unreachable_server_is_an_operational_error() -> None:
    with pytest.raises(OperationalError) as info:
        PostgresEventStore("host=127.0.0.1 port=1 user=postgres", connect_timeout=1)
    assert isinstance(info.value.__cause__, psycopg.OperationalError)


def test_a_dropped_connection_fails_one_call_then_reconnects(pg_dsn: str) -> None:
    store = PostgresEventStore(pg_dsn, table=fresh_table())
    store.append([ev("a", 1)])
    with psycopg.connect(pg_dsn, autocommit=True) as admin:
        admin.execute(
            "SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()"
        )
    with pytest.raises(OperationalError) as info:
        store.append([ev("a", 2)])
    assert isinstance(info.value.__cause__, psycopg.OperationalError)
    for seq in range(2, 8):
        store.append([ev("a", seq)])
    assert [e.seq for e in store.read()] == list(range(1, 8))


def test_driver_errors_map_onto_the_storage_tree() -> None:
    cases = [
        (psycopg.errors.UniqueViolation("dup"), IntegrityError),
        (psycopg.errors.NumericValueOutOfRange("big"), DataError),
        (psycopg.errors.UndefinedTable("gone"), OperationalError),
        (psycopg.OperationalError("down"), OperationalError),
    ]
    for raised, wanted in cases:
        with pytest.raises(wanted) as info, _translated("testing"):
            raise raised
        assert info.value.__cause__ is raised


def test_bad_settings_are_refused(pg_dsn: str) -> None:
    with pytest.raises(ConfigurationError):
        PostgresEventStore(pg_dsn, table="bad name; DROP TABLE x")
    with pytest.raises(ConfigurationError):
        PostgresEventStore(pg_dsn, table="1starts_with_digit")
    with pytest.raises(ConfigurationError):
        PostgresEventStore(pg_dsn, table=fresh_table(), page_size=0)
    with pytest.raises(ConfigurationError):
        PostgresEventStore(b"host=x")  # type: ignore[arg-type]
    store = PostgresEventStore(pg_dsn, table=fresh_table())
    with pytest.raises(ConfigurationError):
        store.read(-1)
    with pytest.raises(ConfigurationError):
        store.read_origin(1)  # type: ignore[arg-type]
    with pytest.raises(ConfigurationError):
        store.append(ev("a", 1))  # type: ignore[arg-type]
    store.close()
    with pytest.raises(StoreClosed):
        store.read_origin("a")
    with pytest.raises(StoreClosed):
        len(store)


def test_the_pool_keeps_a_few_idle_connections(pg_dsn: str) -> None:
    from microstatedb.stores._postgres import _pool, close_idle_connections

    pool = _pool(pg_dsn + " application_name=pooltest", 5)
    borrowed = [pool.connection() for _ in range(6)]
    conns = [cm.__enter__() for cm in borrowed]
    for cm in borrowed:
        cm.__exit__(None, None, None)
    assert len(pool._idle) == pool.max_idle
    assert sum(c.closed for c in conns) == 6 - pool.max_idle
    close_idle_connections()
    assert pool._idle == []
    assert all(c.closed for c in conns)
