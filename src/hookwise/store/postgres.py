"""PostgreSQL store: several hookwise processes sharing one database.

Every store call runs its `sql.py` function in a thread of the store's own, on a
connection from a psycopg pool, so the event loop never waits on the network. Reads
run in a small thread pool, one transaction each; writes go to one thread that
commits whatever is queued in one transaction (group commit, as on SQLite). What
keeps processes apart is the database: runs are claimed with `FOR UPDATE SKIP
LOCKED`, flow keys are serialized with transaction-scoped advisory locks, and a
write that creates due work sends `NOTIFY hookwise_work`, which every process listens
for on a connection of its own (the worker's poll stays the safety net).

While the server cannot be reached, every call fails within a few seconds with a
StoreError (deliveries get `503`, never `202`); the pool reconnects by itself.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import logging
import re
import select
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

import psycopg
from psycopg.conninfo import conninfo_to_dict, make_conninfo
from psycopg.rows import DictRow, dict_row
from psycopg_pool import ConnectionPool, PoolTimeout

from hookwise.errors import StoreError
from hookwise.store import Schema, sqlite
from hookwise.store.batching import GroupCommit, Outcome, Write
from hookwise.store.sql import Tx
from hookwise.store.sql.common import Cursor, settled
from hookwise.store.sqlstore import SqlStore, migrations_to_apply

T = TypeVar("T")
log = logging.getLogger("hookwise.store")
# The pool logs every connection it hands out, and every failed reconnection attempt:
# many lines a second during an outage. The store says once why it lost the server.
logging.getLogger("psycopg.pool").setLevel(logging.ERROR)

CHANNEL = "hookwise_work"
# Reading threads and connections per process (the writer borrows one of the
# connections per batch), so a call rarely waits for a connection while the server is up.
POOL_SIZE = 8
# How long a call waits for a working connection before the store counts as down; once
# down, calls give up quickly until a connection works again, so a burst of deliveries
# during an outage is answered 503 at once instead of queueing behind each other.
WAIT = 5.0
WAIT_WHILE_DOWN = 0.25
# PostgreSQL aborts one transaction of a deadlock (or a serialization failure); it is
# simply run again.
ATTEMPTS = 3
# Defaults for the connection string; anything the URL sets wins.
CONNECTION_DEFAULTS = {
    "application_name": "hookwise",
    "connect_timeout": "5",
    "keepalives": "1",
    "keepalives_idle": "30",
    "keepalives_interval": "10",
    "keepalives_count": "3",
    # A request the server never acknowledges (a network cut) fails instead of hanging.
    "tcp_user_timeout": "10000",
}


def _in_postgres_words(script: str) -> str:
    """A migration written for SQLite, as PostgreSQL spells the same schema.

    One schema for both backends, so they cannot drift apart: SQLite's REAL is a
    double, its AUTOINCREMENT key an identity column. Everything else in the
    migrations is standard SQL both read alike (a test compares the results).
    """
    script = re.sub(r"\bREAL\b", "DOUBLE PRECISION", script)
    return script.replace(
        "INTEGER PRIMARY KEY AUTOINCREMENT", "BIGINT GENERATED ALWAYS AS IDENTITY PRIMARY KEY"
    )


MIGRATIONS = [_in_postgres_words(script) for script in sqlite.MIGRATIONS]

Connection = psycopg.Connection[DictRow]


@functools.lru_cache(maxsize=1024)
def _placeholders(sql: str) -> str:
    """`?` placeholders as psycopg's `%s`; sql.py has no literal `?` or `%` (see its docstring)."""
    return sql.replace("%", "%%").replace("?", "%s")


def _storable(value: Any) -> Any:
    """PostgreSQL text cannot hold NUL, which SQLite stores; U+FFFD stands in for it.

    Only top-level strings (an event type, a delivery id) can carry one: JSON columns
    are written escaped. Without this, such a delivery would be refused (503) forever.
    """
    return value.replace("\x00", "\ufffd") if isinstance(value, str) else value


class _Tx:
    """A `sql.Tx` over one psycopg connection inside a transaction.

    Writes run in pipeline mode: a statement whose result nobody reads does not wait
    for the server, so an accept's four inserts cost one round trip, not four.
    """

    def __init__(self, conn: Connection, pipeline: psycopg.Pipeline | None = None) -> None:
        self.conn = conn
        self.pipeline = pipeline

    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor:
        cursor = self.conn.execute(_placeholders(sql), [_storable(p) for p in params])
        return cursor if self.pipeline is None else _Pipelined(cursor, self.pipeline)

    def lock(self, name: str) -> None:
        self.execute("SELECT pg_advisory_xact_lock(hashtextextended(?, 0))", (name,))

    def try_lock(self, name: str) -> bool:
        row = self.execute(
            "SELECT pg_try_advisory_xact_lock(hashtextextended(?, 0)) AS taken", (name,)
        ).fetchone()
        return bool(row and row["taken"])


class _Pipelined:
    """A pipelined statement's cursor. Fetching rows waits for them by itself; the row
    count is only known once the pipeline is synced, so reading it syncs."""

    def __init__(self, cursor: psycopg.Cursor[DictRow], pipeline: psycopg.Pipeline) -> None:
        self.cursor = cursor
        self.pipeline = pipeline

    @property
    def rowcount(self) -> int:
        self.pipeline.sync()
        return self.cursor.rowcount

    def fetchone(self) -> DictRow | None:
        return self.cursor.fetchone()

    def fetchall(self) -> list[DictRow]:
        return self.cursor.fetchall()


def connection_string(url: str) -> str:
    """The URL with hookwise's connection defaults added where it sets none."""
    params = conninfo_to_dict(url)
    for key, value in CONNECTION_DEFAULTS.items():
        params.setdefault(key, value)
    return make_conninfo("", **params)


class PostgresStore(SqlStore):
    row_lock = " FOR UPDATE SKIP LOCKED"
    for_update = " FOR UPDATE"
    announce = f"NOTIFY {CHANNEL}"
    announce_if_stored = (
        f"SELECT pg_notify('{CHANNEL}', '') WHERE EXISTS (SELECT 1 FROM events WHERE id = ?)"
    )

    def __init__(self, url: str, where: str) -> None:
        """`where` names the database in messages and logs, without its password."""
        self.where = where
        self._conninfo = connection_string(url)
        self._pool: ConnectionPool[Connection] | None = None
        self._writer: _Writer | None = None
        self._reachable = True
        self._threads = ThreadPoolExecutor(POOL_SIZE, thread_name_prefix="hookwise-postgres")
        self._listeners: set[asyncio.Task[None]] = set()

    async def open(self, *, upgrade: bool = False) -> Schema:
        schema = await self._in_thread(self._migrate, upgrade)
        pool: ConnectionPool[Connection] = ConnectionPool(
            self._conninfo,
            kwargs={"autocommit": True, "row_factory": dict_row},
            min_size=1,
            max_size=POOL_SIZE,
            open=False,
            check=_check,
            timeout=WAIT,
            reconnect_timeout=30,
            name="hookwise",
        )
        try:
            await self._in_thread(pool.open, True, WAIT)
        except StoreError:
            await asyncio.to_thread(pool.close)
            raise
        self._pool = pool
        self._writer = _Writer(self)
        self._writer.start()
        return schema

    async def close(self) -> None:
        for task in self._listeners:
            task.cancel()
        await asyncio.gather(*self._listeners, return_exceptions=True)
        self._listeners.clear()
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        await asyncio.to_thread(self._threads.shutdown)
        if self._pool is not None:
            await asyncio.to_thread(self._pool.close)
            self._pool = None

    async def subscribe(self, wake: Callable[[], None]) -> None:
        task = asyncio.create_task(self._listen(wake), name="hookwise-postgres-listen")
        self._listeners.add(task)

    async def _write(self, fn: Callable[[Tx], T]) -> T:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(fn)

    async def _read(self, fn: Callable[[Tx], T]) -> T:
        return await self._in_thread(self._transaction, fn, True)

    async def _in_thread(self, fn: Callable[..., T], *args: Any) -> T:
        try:
            future = asyncio.get_running_loop().run_in_executor(self._threads, fn, *args)
        except RuntimeError:
            raise StoreError("the store is closed") from None
        try:
            return await future
        except (PoolTimeout, psycopg.Error) as exc:
            raise self.failure(exc) from exc

    def failure(self, exc: Exception) -> Exception:
        """The StoreError a driver or pool exception stands for; others stay as they are."""
        if isinstance(exc, PoolTimeout):
            return StoreError(f"cannot reach the PostgreSQL store {self.where}: {exc}")
        if isinstance(exc, psycopg.Error):
            return StoreError(f"postgresql: {exc}")
        return exc

    def _transaction(self, fn: Callable[[_Tx], T], read_only: bool) -> T:
        """Run `fn` in one transaction, again if PostgreSQL aborted it to break a deadlock,
        or if the connection turns out to be one the server dropped while it was idle.

        Reads see one snapshot, like SQLite's readers; writes see every committed row
        once they hold the lock they asked for, which the flow-control checks rely on.
        A connection lost during COMMIT leaves its outcome unknown; running the write
        again is still safe: an accept finds its dedupe key, a record its lease gone.
        """
        pool = self._pool
        if pool is None:
            raise StoreError("the store is not open")
        for attempt in range(1, ATTEMPTS + 1):
            conn: Connection | None = None
            try:
                with self._connection(pool) as conn:
                    if read_only:
                        with conn.transaction():
                            conn.execute(
                                "SET TRANSACTION ISOLATION LEVEL REPEATABLE READ, READ ONLY"
                            )
                            return fn(_Tx(conn))
                    with conn.pipeline() as pipeline, conn.transaction():
                        return fn(_Tx(conn, pipeline))
            except psycopg.errors.TransactionRollback:
                if attempt == ATTEMPTS:
                    raise
            except psycopg.OperationalError:
                if attempt == ATTEMPTS or conn is None or not conn.broken:
                    raise
        raise AssertionError("not reached: the last attempt returns or raises")

    @contextlib.contextmanager
    def _connection(self, pool: ConnectionPool[Connection]) -> Iterator[Connection]:
        """A working connection; once one could not be had, give up sooner until one can."""
        try:
            with pool.connection(WAIT if self._reachable else WAIT_WHILE_DOWN) as conn:
                self._reachable = True
                yield conn
        except PoolTimeout:
            self._reachable = False
            raise

    def _migrate(self, upgrade: bool) -> Schema:
        """Create or upgrade the schema, one process at a time, all or nothing."""
        try:
            conn = psycopg.connect(self._conninfo, autocommit=True, row_factory=dict_row)
        except psycopg.OperationalError as exc:
            raise StoreError(f"cannot open the PostgreSQL store {self.where}: {exc}") from exc
        with conn, conn.transaction():
            conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('hookwise:schema', 0))")
            found = _schema_version(conn)
            latest = len(MIGRATIONS)
            numbers = migrations_to_apply(found, latest, self.where, upgrade)
            for number in numbers:
                conn.execute(MIGRATIONS[number - 1])
                log.info("store %s: schema upgraded to version %d", self.where, number)
            if numbers and found == 0:
                conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
                conn.execute("INSERT INTO schema_version (version) VALUES (%s)", (latest,))
            elif numbers:
                conn.execute("UPDATE schema_version SET version = %s", (latest,))
            return Schema(found, max(found, latest))

    async def _listen(self, wake: Callable[[], None]) -> None:
        """Wake the worker on every notification; reconnect with backoff when cut off.

        Says once, with the reason, that the server is gone, and once that it is back.
        """
        delay = 0.0
        while True:
            try:
                conn = await psycopg.AsyncConnection.connect(self._conninfo, autocommit=True)
                async with conn:
                    await conn.execute(f"LISTEN {CHANNEL}")
                    if delay:
                        log.warning("store %s: connected again", self.where)
                    delay = 0.0
                    wake()  # whatever was announced while not listening
                    async for _ in conn.notifies():
                        wake()
            except psycopg.Error as exc:
                if not delay:
                    log.warning("store %s: connection lost: %s", self.where, _first_line(exc))
            delay = min(delay * 2 or 0.5, 10.0)
            await asyncio.sleep(delay)


class _Writer(GroupCommit):
    """This process's writes, committed in batches: one transaction, one WAL flush.

    A batch has no savepoints (each would cost two round trips). If one of its writes
    fails, the batch is rolled back and each write runs again in a transaction of its
    own, so a failure still fails alone; if the server cannot be reached, all fail.
    """

    def __init__(self, store: PostgresStore) -> None:
        super().__init__("the PostgreSQL writer")
        self.store = store

    def connect(self) -> None:
        """Nothing to do: the writer borrows a connection from the store's pool per batch."""

    def commit(self, writes: list[Write]) -> list[Outcome]:
        if len(writes) > 1:
            try:
                results = self.store._transaction(lambda tx: _run_all(tx, writes), False)
                return [(True, result) for result in results]
            except PoolTimeout as exc:
                return [(False, self.store.failure(exc))] * len(writes)
            except Exception:
                log.debug("a batch of %d writes failed; running them one by one", len(writes))
        outcomes: list[Outcome] = []
        for write in writes:
            try:
                [result] = self.store._transaction(
                    functools.partial(_run_all, writes=[write]), False
                )
                outcomes.append((True, result))
            except Exception as exc:
                outcomes.append((False, self.store.failure(exc)))
        return outcomes


def _run_all(tx: _Tx, writes: list[Write]) -> list[Any]:
    """Every write sent first, then their results read: one wait for the whole batch."""
    return [settled(result) for result in [write(tx) for write in writes]]


def _check(conn: Connection) -> None:
    """The pool's test before lending a connection, without a round trip when it can tell.

    An idle connection has nothing to read unless the server wrote to it: a shutdown
    notice, an error, or the end of the stream. Only then is it pinged (and discarded
    if dead); a cut nobody announced fails the call that meets it, within
    `tcp_user_timeout`.
    """
    readable, _, _ = select.select([conn.fileno()], [], [], 0)
    if readable:
        ConnectionPool.check_connection(conn)


def _schema_version(conn: Connection) -> int:
    """0 for a database hookwise has not set up yet."""
    row = conn.execute("SELECT to_regclass('schema_version') IS NOT NULL AS present").fetchone()
    if not row or not row["present"]:
        return 0
    row = conn.execute("SELECT MAX(version) AS version FROM schema_version").fetchone()
    return int(row["version"]) if row and row["version"] is not None else 0


def _first_line(exc: Exception) -> str:
    """libpq's messages run over several lines; the first says what happened."""
    text = str(exc).strip()
    return text.splitlines()[0] if text else type(exc).__name__
