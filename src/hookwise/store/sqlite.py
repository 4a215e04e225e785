"""SQLite store: WAL, one writer thread with group commit, readers in a small pool.

Every write goes through one thread that drains whatever is queued and commits it
in a single transaction (each write in its own savepoint, so one failure does not
undo the others). Under load, hundreds of accepts share one fsync; the event loop
never waits on the disk.

Another process may write the same file (`hookwise worker`, or the workers `serve`
starts). SQLite's own busy handler waits for its lock in steps of up to 100 ms,
which would show as that much latency on every accept; the writer instead asks for
the lock again at sub-millisecond intervals (`_begin`).
"""

from __future__ import annotations

import asyncio
import logging
import sqlite3
import threading
import time
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hookwise.errors import StoreError
from hookwise.store import Schema
from hookwise.store.batching import GroupCommit, Outcome, Write
from hookwise.store.sql import Tx
from hookwise.store.sql.common import settled
from hookwise.store.sqlstore import SqlStore, migrations_to_apply

T = TypeVar("T")
log = logging.getLogger("hookwise.store")
LOCK_TIMEOUT = 30.0  # seconds a write waits for another process's transaction

MIGRATIONS = [
    """
    CREATE TABLE events (
        id TEXT PRIMARY KEY,
        source TEXT NOT NULL,
        kind TEXT NOT NULL,
        domain TEXT NOT NULL,
        event_type TEXT NOT NULL,
        delivery_id TEXT,
        received_at REAL NOT NULL,
        data TEXT NOT NULL,
        headers TEXT NOT NULL
    );
    CREATE INDEX events_kind ON events (source, domain, event_type);
    CREATE TABLE dedupe (
        key TEXT PRIMARY KEY,
        event_id TEXT NOT NULL,
        seen_at REAL NOT NULL
    );
    CREATE TABLE runs (
        id TEXT PRIMARY KEY,
        event_id TEXT NOT NULL REFERENCES events (id),
        rule TEXT NOT NULL,
        status TEXT NOT NULL,
        spec TEXT NOT NULL,
        step INTEGER NOT NULL DEFAULT 0,
        attempt INTEGER NOT NULL DEFAULT 0,
        attempts_total INTEGER NOT NULL DEFAULT 0,
        outputs TEXT NOT NULL DEFAULT '{}',
        error TEXT,
        created_at REAL NOT NULL,
        updated_at REAL NOT NULL,
        next_attempt_at REAL NOT NULL,
        lease_owner TEXT,
        lease_expires_at REAL
    );
    CREATE INDEX runs_event ON runs (event_id);
    CREATE INDEX runs_due ON runs (status, next_attempt_at);
    CREATE TABLE attempts (
        id INTEGER PRIMARY KEY AUTOINCREMENT,
        run_id TEXT NOT NULL REFERENCES runs (id),
        step INTEGER NOT NULL,
        action TEXT NOT NULL,
        number INTEGER NOT NULL,
        started_at REAL NOT NULL,
        ended_at REAL NOT NULL,
        status TEXT NOT NULL,
        output TEXT,
        error TEXT,
        log TEXT NOT NULL DEFAULT '[]'
    );
    CREATE INDEX attempts_run ON attempts (run_id);
    """,
    """
    ALTER TABLE events ADD COLUMN artifacts TEXT NOT NULL DEFAULT '[]';
    """,
    """
    ALTER TABLE runs ADD COLUMN flow TEXT NOT NULL DEFAULT '{}';
    ALTER TABLE runs ADD COLUMN debounce_key TEXT;
    ALTER TABLE runs ADD COLUMN concurrency_key TEXT;
    ALTER TABLE runs ADD COLUMN await_key TEXT;
    ALTER TABLE runs ADD COLUMN awaited_event_id TEXT;
    CREATE INDEX runs_debounce ON runs (rule, debounce_key) WHERE status = 'debouncing';
    CREATE INDEX runs_concurrency ON runs (rule, concurrency_key, status)
        WHERE concurrency_key IS NOT NULL;
    CREATE INDEX runs_await ON runs (rule, await_key) WHERE status = 'waiting_event';
    CREATE TABLE run_events (
        run_id TEXT NOT NULL REFERENCES runs (id),
        event_id TEXT NOT NULL REFERENCES events (id),
        role TEXT NOT NULL,
        PRIMARY KEY (run_id, event_id)
    );
    CREATE INDEX run_events_event ON run_events (event_id);
    INSERT INTO run_events (run_id, event_id, role) SELECT id, event_id, 'trigger' FROM runs;
    CREATE TABLE throttles (
        rule TEXT NOT NULL,
        key TEXT NOT NULL,
        last_at REAL NOT NULL,
        run_id TEXT NOT NULL,
        PRIMARY KEY (rule, key)
    );
    CREATE TABLE decisions (
        run_id TEXT NOT NULL REFERENCES runs (id),
        actor TEXT NOT NULL,
        decision TEXT NOT NULL,
        reason TEXT,
        via TEXT NOT NULL,
        decided_at REAL NOT NULL,
        PRIMARY KEY (run_id, actor)
    );
    """,
    # Retention: finding what is old enough to prune without reading every row, and
    # when a throttle's turn ends, so that only turns no longer in force are dropped.
    """
    CREATE INDEX events_received ON events (received_at);
    CREATE INDEX runs_updated ON runs (status, updated_at);
    CREATE INDEX runs_awaited ON runs (awaited_event_id) WHERE awaited_event_id IS NOT NULL;
    CREATE INDEX dedupe_seen ON dedupe (seen_at);
    ALTER TABLE throttles ADD COLUMN expires_at REAL;
    """,
    # The sender's envelope around the data (who, when, which subscription): `meta`.
    """
    ALTER TABLE events ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
    """,
]


class _Ran:
    """A statement read to its end at once. SQLite keeps a statement open until its last
    row is read, and an open statement stops a savepoint from being released or rolled
    back; writes may leave a result to be read later (`sql.Later`)."""

    def __init__(self, cursor: sqlite3.Cursor) -> None:
        self.rows: list[Any] = cursor.fetchall()
        self.rowcount = cursor.rowcount

    def fetchone(self) -> Any:
        return self.rows.pop(0) if self.rows else None

    def fetchall(self) -> list[Any]:
        rows, self.rows = self.rows, []
        return rows


class _Connection(sqlite3.Connection):
    """A connection that is also a `sql.Tx`: one writer thread needs no named locks."""

    def execute(self, sql: str, parameters: Any = (), /) -> Any:
        return _Ran(super().execute(sql, parameters))

    def lock(self, name: str) -> None:
        pass

    def try_lock(self, name: str) -> bool:
        return True


def _begin(conn: _Connection) -> None:
    """BEGIN IMMEDIATE, asked again every few hundred microseconds while another
    process holds the write lock, for at most LOCK_TIMEOUT seconds.

    The writer's connection has no busy timeout: SQLite's own handler sleeps up to
    100 ms between tries, and once BEGIN IMMEDIATE holds the lock (in WAL mode) no
    later statement of the transaction waits for one.
    """
    deadline, pause = time.monotonic() + LOCK_TIMEOUT, 0.0002
    while True:
        try:
            conn.execute("BEGIN IMMEDIATE")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
        time.sleep(pause)
        pause = min(pause * 2, 0.002)


def _connect(path: str) -> _Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, factory=_Connection
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


class _Writer(GroupCommit):
    """The one writer: each write in its own savepoint, so one failure does not undo
    the others, and one transaction (one fsync) per batch."""

    def __init__(self, path: str) -> None:
        super().__init__("the SQLite writer")
        self.path = path
        self.conn: _Connection | None = None

    def connect(self) -> None:
        try:
            self.conn = _connect(self.path)
            self.conn.execute("PRAGMA busy_timeout = 0")  # _begin waits for the lock
        except sqlite3.Error as exc:
            raise StoreError(f"cannot open the SQLite store {self.path}: {exc}") from exc

    def disconnect(self) -> None:
        if self.conn is not None:
            self.conn.close()

    def commit(self, writes: list[Write]) -> list[Outcome]:
        conn = self.conn
        assert conn is not None
        outcomes: list[Outcome] = []
        try:
            _begin(conn)
            for write in writes:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, settled(write(conn))))
                    conn.execute("RELEASE job")
                except Exception as exc:
                    conn.execute("ROLLBACK TO job")
                    conn.execute("RELEASE job")
                    failure = (
                        StoreError(f"sqlite: {exc}") if isinstance(exc, sqlite3.Error) else exc
                    )
                    outcomes.append((False, failure))
            conn.execute("COMMIT")
        except sqlite3.Error as exc:
            if conn.in_transaction:
                conn.execute("ROLLBACK")
            outcomes = [(False, StoreError(f"sqlite commit failed: {exc}"))] * len(writes)
        return outcomes


class SQLiteStore(SqlStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: _Writer | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hookwise-sqlite-read")
        self._local = threading.local()

    async def open(self, *, upgrade: bool = False) -> Schema:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self.path)
        self._writer.start()
        await asyncio.wrap_future(self._writer.ready)
        return await self._write(lambda conn: _migrate(conn, self.path, upgrade))

    async def close(self) -> None:
        if self._writer is not None:
            await self._writer.stop()
            self._writer = None
        self._readers.shutdown(wait=True)

    async def _write(self, fn: Callable[[Tx], T]) -> T:
        if self._writer is None:
            raise StoreError("the store is not open")
        return await self._writer.submit(fn)

    async def _read(self, fn: Callable[[Tx], T]) -> T:
        def call() -> T:
            try:
                conn = getattr(self._local, "conn", None)
                if conn is None:
                    conn = self._local.conn = _connect(self.path)
                return fn(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, call)


def _migrate(conn: Tx, path: str, upgrade: bool) -> Schema:
    """Create a new database; upgrade an older one only when asked (`hookwise db upgrade`)."""
    found = conn.execute("PRAGMA user_version").fetchone()[0]
    for number in migrations_to_apply(found, len(MIGRATIONS), path, upgrade):
        for statement in filter(str.strip, MIGRATIONS[number - 1].split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        log.info("store %s: schema upgraded to version %d", path, number)
    return Schema(found, max(found, len(MIGRATIONS)))
