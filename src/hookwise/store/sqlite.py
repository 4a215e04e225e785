"""SQLite store: WAL, one writer thread with group commit, readers in a small pool.

Every write goes through one thread that drains whatever is queued and commits it
in a single transaction (each write in its own savepoint, so one failure does not
undo the others). Under load, hundreds of accepts share one fsync; the event loop
never waits on the disk.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import sqlite3
import threading
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hookwise.errors import StoreError
from hookwise.store.sqlstore import SqlStore

T = TypeVar("T")
log = logging.getLogger("hookwise.store")
MAX_BATCH = 512

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
]


class _Connection(sqlite3.Connection):
    """A connection that is also a `sql.Tx`: one writer thread needs no named locks."""

    def lock(self, name: str) -> None:
        pass


def _connect(path: str) -> _Connection:
    conn = sqlite3.connect(
        path, isolation_level=None, check_same_thread=False, timeout=30, factory=_Connection
    )
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


Job = tuple[Callable[[_Connection], Any], asyncio.Future[Any]]


class _Writer(threading.Thread):
    """Runs queued write functions in batches, one transaction and one fsync per batch.

    If the thread cannot open the database or dies, `failure` says why and every
    waiting or later write fails with it, so callers answer 503 instead of hanging.
    """

    def __init__(self, path: str) -> None:
        super().__init__(name="hookwise-sqlite-writer", daemon=True)
        self.path = path
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.failure: StoreError | None = None

    def run(self) -> None:
        try:
            conn = _connect(self.path)
        except Exception as exc:
            self._stop_with(StoreError(f"cannot open the SQLite store {self.path}: {exc}"))
            self.ready.set_exception(self.failure)  # type: ignore[arg-type]
            return
        self.ready.set_result(None)
        try:
            while (batch := self._next_batch()) is not None:
                self._commit(conn, batch)
            self._stop_with(StoreError("the store is closed"))
        except BaseException as exc:
            log.exception("the SQLite writer stopped")
            self._stop_with(StoreError(f"the SQLite writer stopped: {exc}"))
        finally:
            conn.close()

    def _stop_with(self, failure: StoreError) -> None:
        self.failure = failure
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                _resolve(job[1], False, failure)

    def _next_batch(self) -> list[Job] | None:
        first = self.jobs.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # finish this batch, then stop
                break
            batch.append(job)
        return batch

    def _commit(self, conn: _Connection, batch: list[Job]) -> None:
        outcomes: list[tuple[bool, Any]] = []
        try:
            conn.execute("BEGIN IMMEDIATE")
            for fn, _ in batch:
                conn.execute("SAVEPOINT job")
                try:
                    outcomes.append((True, fn(conn)))
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
            outcomes = [(False, StoreError(f"sqlite commit failed: {exc}"))] * len(batch)
        for (_, future), (ok, value) in zip(batch, outcomes, strict=True):
            _resolve(future, ok, value)


def _settle(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    if future.done():
        return
    if ok:
        future.set_result(value)
    else:
        future.set_exception(value)


def _resolve(future: asyncio.Future[Any], ok: bool, value: Any) -> None:
    """Settle a future from the writer thread; its loop may already be gone at shutdown."""
    with contextlib.suppress(RuntimeError):
        future.get_loop().call_soon_threadsafe(_settle, future, ok, value)


class SQLiteStore(SqlStore):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: _Writer | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hookwise-sqlite-read")
        self._local = threading.local()

    async def open(self, *, upgrade: bool = False) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self.path)
        self._writer.start()
        await asyncio.wrap_future(self._writer.ready)
        await self._write(lambda conn: _migrate(conn, self.path, upgrade))

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)

    async def _write(self, fn: Callable[[_Connection], T]) -> T:
        writer = self._writer
        if writer is None:
            raise StoreError("the store is not open")
        if writer.failure is not None:
            raise writer.failure
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        writer.jobs.put((fn, future))
        if writer.failure is not None and not future.done():
            future.cancel()  # the writer died between the check and the put
            raise writer.failure
        return await future

    async def _read(self, fn: Callable[[_Connection], T]) -> T:
        def call() -> T:
            try:
                conn = getattr(self._local, "conn", None)
                if conn is None:
                    conn = self._local.conn = _connect(self.path)
                return fn(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, call)


def _migrate(conn: sqlite3.Connection, path: str, upgrade: bool) -> None:
    """Create a new database; upgrade an older one only when asked (`hookwise db upgrade`)."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    latest = len(MIGRATIONS)
    if version > latest:
        raise StoreError(
            f"the database schema of {path} is version {version}, newer than this hookwise "
            f"knows ({latest}); upgrade hookwise"
        )
    if 0 < version < latest and not upgrade:
        raise StoreError(
            f"the database schema of {path} is version {version}, this hookwise needs "
            f"{latest}: back up the file, then run `hookwise db upgrade`"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")
        log.info("store %s: schema upgraded to version %d", path, number)
