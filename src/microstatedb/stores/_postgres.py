"""An ``EventStore`` in a PostgreSQL table (psycopg 3).

One row per event: ``position`` (dense, from 0, the append order), ``origin``, ``seq`` and the
encoded event. A unique index on ``(origin, seq)`` is both the dot lookup and the guard that a
dot names one event. Appends take a transaction-scoped advisory lock on the table's name, so
positions stay dense even with writers in several processes, and a batch is one transaction:
all of it or nothing.
"""

from __future__ import annotations

import atexit
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any

import psycopg
from psycopg import sql

from microstatedb.codec import Event, decode_event
from microstatedb.errors import (
    ConfigurationError,
    DataError,
    IntegrityError,
    OperationalError,
    StoreClosed,
)
from microstatedb.stores._checks import (
    check_batch,
    check_name,
    check_read_args,
    conflict_message,
)
from microstatedb.stores._instrument import appending

_INSERT_ROWS = 5000  # rows per INSERT statement: large batches in a few round trips

DEFAULT_DSN = "host=127.0.0.1 port=5432 user=postgres dbname=postgres"
"""The connection string used when none is given: the local server, trust authentication."""


@contextmanager
def _translated(what: str) -> Iterator[None]:
    """Turn the driver's errors into the library's storage errors, with the cause chained."""
    try:
        yield
    except psycopg.errors.IntegrityError as exc:
        raise IntegrityError(f"{what}: {exc}".strip()) from exc
    except psycopg.DataError as exc:
        raise DataError(f"{what}: the server refused a value: {exc}".strip()) from exc
    except psycopg.Error as exc:
        raise OperationalError(
            f"{what} failed: {exc}; check that PostgreSQL is reachable".strip()
        ) from exc


class _Pool:
    """Idle connections to one server, shared by every store of the process that uses it.

    A store borrows a connection per call, so many stores (one per table, say) need only as
    many connections as there are concurrent calls; a connection the server dropped is
    discarded instead of returned.
    """

    max_idle = 4

    def __init__(self, dsn: str, timeout: int) -> None:
        self._dsn = dsn
        self._timeout = timeout
        self._lock = threading.Lock()
        self._idle: list[psycopg.Connection[Any]] = []

    @contextmanager
    def connection(self) -> Iterator[psycopg.Connection[Any]]:
        with self._lock:
            conn = self._idle.pop() if self._idle else None
        if conn is None:
            with _translated("connecting to PostgreSQL"):
                conn = psycopg.connect(self._dsn, autocommit=True, connect_timeout=self._timeout)
        try:
            yield conn
        finally:
            keep = not conn.closed and not conn.broken
            with self._lock:
                # A dropped connection usually means a restarted server: the idle ones are
                # dead too, and the next call should not fail on them one by one.
                drop = [] if keep else self._idle
                if not keep:
                    self._idle = []
                if keep and len(self._idle) < self.max_idle:
                    self._idle.append(conn)
                else:
                    drop.append(conn)
            for dead in drop:
                dead.close()

    def close_idle(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()


_pools: dict[tuple[str, int], _Pool] = {}
_pools_lock = threading.Lock()


@atexit.register
def close_idle_connections() -> None:
    """Close the idle pooled connections (at exit, or after dropping a database)."""
    with _pools_lock:
        pools = list(_pools.values())
    for pool in pools:
        pool.close_idle()


def _pool(dsn: str, timeout: int) -> _Pool:
    with _pools_lock:
        pool = _pools.get((dsn, timeout))
        if pool is None:
            pool = _pools[(dsn, timeout)] = _Pool(dsn, timeout)
        return pool


class PostgresEventStore:
    """An ``EventStore`` kept in one PostgreSQL table, created on first use.

    ``dsn`` is a libpq connection string; ``table`` names the table (letters, digits and
    underscores). Several stores (in several processes) may share a table. Reads fetch
    ``page_size`` rows per round trip and see what was appended before each page.
    """

    def __init__(
        self,
        dsn: str = DEFAULT_DSN,
        *,
        table: str = "msdb_events",
        page_size: int = 5000,
        connect_timeout: float = 5.0,
    ) -> None:
        if not isinstance(dsn, str):
            raise ConfigurationError(f"dsn must be a libpq connection string, got {dsn!r}")
        self.table = check_name("table", table)
        if type(page_size) is not int or page_size < 1:
            raise ConfigurationError(f"page_size must be an int >= 1, got {page_size!r}")
        self._pool = _pool(dsn, max(1, round(connect_timeout)))
        self._page = page_size
        self._closed = False
        t = sql.Identifier(table)
        self._sql = {
            "create": sql.SQL(
                "CREATE TABLE IF NOT EXISTS {t} (position bigint PRIMARY KEY, "
                "origin text NOT NULL, seq bigint NOT NULL, body bytea NOT NULL)"
            ).format(t=t),
            "index": sql.SQL("CREATE UNIQUE INDEX IF NOT EXISTS {i} ON {t} (origin, seq)").format(
                i=sql.Identifier(f"{table}_origin_seq"), t=t
            ),
            "existing": sql.SQL(
                "SELECT e.origin, e.seq, e.body FROM {t} e "
                "JOIN unnest(%s::text[], %s::bigint[]) AS d(origin, seq) USING (origin, seq)"
            ).format(t=t),
            "next": sql.SQL("SELECT coalesce(max(position) + 1, 0) FROM {t}").format(t=t),
            "insert": sql.SQL(
                "INSERT INTO {t} (position, origin, seq, body) "
                "SELECT * FROM unnest(%s::bigint[], %s::text[], %s::bigint[], %s::bytea[])"
            ).format(t=t),
            "read": sql.SQL(
                "SELECT body FROM {t} WHERE position >= %s ORDER BY position LIMIT %s"
            ).format(t=t),
            "origin": sql.SQL(
                "SELECT position, body FROM {t} WHERE origin = %s AND seq > %s AND position > %s "
                "ORDER BY position LIMIT %s"
            ).format(t=t),
        }
        self._lock_key = f"microstatedb:{table}"
        with (
            self._pool.connection() as conn,
            _translated(f"creating table {table!r}"),
            conn.transaction(),
        ):
            # Two processes creating the same table at once would collide in the catalog.
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key,))
            conn.execute(self._sql["create"])
            conn.execute(self._sql["index"])

    def _check(self) -> None:
        if self._closed:
            raise StoreClosed("the event store is closed")

    def _query(self, what: str, query: sql.Composed, args: tuple[Any, ...]) -> list[Any]:
        self._check()
        with self._pool.connection() as conn, _translated(f"{what} {self.table!r}"):
            return conn.execute(query, args).fetchall()

    # ------------------------------------------------------------------------- writing

    def append(self, events: Sequence[Event]) -> None:
        """Append all of ``events`` in one transaction; identical re-appends are no-ops."""
        batch = check_batch(events)
        self._check()
        if not batch:
            return
        with (
            appending("postgres", self.table, len(batch)),
            self._pool.connection() as conn,
            _translated(f"appending to {self.table!r}"),
            conn.transaction(),
        ):
            conn.execute("SELECT pg_advisory_xact_lock(hashtext(%s))", (self._lock_key,))
            rows = conn.execute(
                self._sql["existing"],
                ([ev.origin for ev, _ in batch], [ev.seq for ev, _ in batch]),
            ).fetchall()
            stored = {(o, s): bytes(b) for o, s, b in rows}
            fresh = []
            for ev, body in batch:
                have = stored.get(ev.dot)
                if have is None:
                    fresh.append((ev, body))
                elif have != body and decode_event(have) != ev:
                    raise IntegrityError(conflict_message(ev.dot))
            if not fresh:
                return
            row = conn.execute(self._sql["next"]).fetchone()
            first = int(row[0]) if row is not None else 0
            for i in range(0, len(fresh), _INSERT_ROWS):
                chunk = fresh[i : i + _INSERT_ROWS]
                conn.execute(
                    self._sql["insert"],
                    (
                        list(range(first + i, first + i + len(chunk))),
                        [ev.origin for ev, _ in chunk],
                        [ev.seq for ev, _ in chunk],
                        [body for _, body in chunk],
                    ),
                )

    # ------------------------------------------------------------------------- reading

    def read(self, start: int = 0, limit: int | None = None) -> Iterator[Event]:
        """Events in append order from index ``start``, at most ``limit`` of them."""
        check_read_args(start, limit)
        self._check()
        return self._read(start, limit)

    def _read(self, start: int, limit: int | None) -> Iterator[Event]:
        pos = start
        left = limit
        while left is None or left > 0:
            n = self._page if left is None else min(self._page, left)
            rows = self._query("reading", self._sql["read"], (pos, n))
            for (body,) in rows:
                yield decode_event(bytes(body))
            pos += len(rows)
            if left is not None:
                left -= len(rows)
            if len(rows) < n:
                return

    def read_origin(self, origin: str, after_seq: int = 0) -> Iterator[Event]:
        """Events of ``origin`` with ``seq > after_seq``, in append order."""
        if not isinstance(origin, str) or type(after_seq) is not int:
            raise ConfigurationError("read_origin takes an origin (str) and after_seq (int)")
        self._check()
        return self._read_origin(origin, after_seq)

    def _read_origin(self, origin: str, after_seq: int) -> Iterator[Event]:
        last = -1
        while True:
            rows = self._query(
                "reading", self._sql["origin"], (origin, after_seq, last, self._page)
            )
            for position, body in rows:
                last = position
                yield decode_event(bytes(body))
            if len(rows) < self._page:
                return

    def __len__(self) -> int:
        rows = self._query("counting", self._sql["next"], ())
        return int(rows[0][0])

    def close(self) -> None:
        """Later calls raise ``StoreClosed``. The table stays; the connections go back to
        the process's pool for this server."""
        self._closed = True

    def __repr__(self) -> str:
        state = "closed" if self._closed else "open"
        return f"<PostgresEventStore table={self.table!r} {state}>"
