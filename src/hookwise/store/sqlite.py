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
import dataclasses
import json
import logging
import queue
import sqlite3
import threading
import time
from collections.abc import Callable, Collection
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

from hookwise.actions import action_label
from hookwise.errors import StoreError
from hookwise.event import Event, new_id
from hookwise.store.base import (
    AcceptResult,
    AttemptRecord,
    NewRun,
    Progress,
    RunRecord,
    Store,
    run_view,
)

T = TypeVar("T")
log = logging.getLogger("hookwise.store")
R = TypeVar("R")
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
]

_RUN_COLUMNS = (
    "id, event_id, rule, status, spec, step, attempt, attempts_total, outputs, error, "
    "created_at, updated_at, next_attempt_at"
)


def _connect(path: str) -> sqlite3.Connection:
    conn = sqlite3.connect(path, isolation_level=None, check_same_thread=False, timeout=30)
    conn.row_factory = sqlite3.Row
    conn.execute("PRAGMA journal_mode=WAL")
    conn.execute("PRAGMA synchronous=FULL")
    conn.execute("PRAGMA foreign_keys=ON")
    return conn


Job = tuple[Callable[[sqlite3.Connection], Any], asyncio.Future[Any]]


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

    def _commit(self, conn: sqlite3.Connection, batch: list[Job]) -> None:
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


class SQLiteStore(Store):
    def __init__(self, path: str) -> None:
        self.path = path
        self._writer: _Writer | None = None
        self._readers = ThreadPoolExecutor(max_workers=2, thread_name_prefix="hookwise-sqlite-read")
        self._local = threading.local()

    async def open(self) -> None:
        Path(self.path).parent.mkdir(parents=True, exist_ok=True)
        self._writer = _Writer(self.path)
        self._writer.start()
        await asyncio.wrap_future(self._writer.ready)
        await self._write(_migrate)

    async def close(self) -> None:
        if self._writer is not None:
            self._writer.jobs.put(None)
            await asyncio.to_thread(self._writer.join)
            self._writer = None
        self._readers.shutdown(wait=True)

    async def _write(self, fn: Callable[[sqlite3.Connection], T]) -> T:
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

    async def _read(self, fn: Callable[[sqlite3.Connection], T]) -> T:
        def call() -> T:
            try:
                conn = getattr(self._local, "conn", None)
                if conn is None:
                    conn = self._local.conn = _connect(self.path)
                return fn(conn)
            except sqlite3.Error as exc:
                raise StoreError(f"sqlite: {exc}") from exc

        return await asyncio.get_running_loop().run_in_executor(self._readers, call)

    async def accept(
        self, event: Event, dedupe_key: str, window: float, runs: list[NewRun]
    ) -> AcceptResult:
        def write(conn: sqlite3.Connection) -> AcceptResult:
            seen = conn.execute(
                "SELECT event_id FROM dedupe WHERE key = ? AND seen_at > ?",
                (dedupe_key, event.received_at - window),
            ).fetchone()
            if seen:
                return AcceptResult(seen["event_id"], duplicate=True)
            conn.execute(
                "INSERT INTO events (id, source, kind, domain, event_type, delivery_id, "
                "received_at, data, headers, artifacts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    event.id,
                    event.source,
                    event.kind,
                    event.domain,
                    event.event_type,
                    event.delivery_id,
                    event.received_at,
                    json.dumps(event.data),
                    json.dumps(event.headers),
                    json.dumps(event.artifacts),
                ),
            )
            conn.execute(
                "INSERT OR REPLACE INTO dedupe VALUES (?, ?, ?)",
                (dedupe_key, event.id, event.received_at),
            )
            _insert_runs(conn, event.id, runs, event.received_at)
            return AcceptResult(event.id, duplicate=False)

        return await self._write(write)

    async def add_runs(self, event_id: str, runs: list[NewRun]) -> None:
        await self._write(lambda conn: _insert_runs(conn, event_id, runs, time.time()))

    async def claim(
        self, owner: str, limit: int, lease: float, exclude: Collection[str] = ()
    ) -> list[RunRecord]:
        skip = list(exclude)

        def write(conn: sqlite3.Connection) -> list[RunRecord]:
            now = time.time()
            rows = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE "
                "((status IN ('pending', 'retrying') AND next_attempt_at <= ?) "
                "OR (status = 'running' AND lease_expires_at < ?)) "
                f"AND id NOT IN ({','.join('?' * len(skip))}) "
                "ORDER BY next_attempt_at LIMIT ?",
                (now, now, *skip, limit),
            ).fetchall()
            claimed = []
            for row in rows:
                record = _run_record(row)
                token = f"{owner}/{new_id()}"
                if record.status == "running":
                    _record_lost_attempt(conn, record, now)
                    record.attempt += 1
                    record.attempts_total += 1
                conn.execute(
                    "UPDATE runs SET status = 'running', lease_owner = ?, lease_expires_at = ?, "
                    "attempt = ?, attempts_total = ?, updated_at = ? WHERE id = ?",
                    (token, now + lease, record.attempt, record.attempts_total, now, record.id),
                )
                record.status = "running"
                record.lease = token
                claimed.append(record)
            return claimed

        return await self._write(write)

    async def renew(self, tokens: list[str], lease: float) -> None:
        if not tokens:
            return
        marks = ",".join("?" * len(tokens))
        await self._write(
            lambda conn: conn.execute(
                "UPDATE runs SET lease_expires_at = ? "
                f"WHERE status = 'running' AND lease_owner IN ({marks})",
                (time.time() + lease, *tokens),
            )
        )

    async def record(
        self, token: str, run_id: str, attempt: AttemptRecord | None, progress: Progress
    ) -> bool:
        def write(conn: sqlite3.Connection) -> bool:
            keep_lease = progress.status == "running"
            updated = conn.execute(
                "UPDATE runs SET status = ?, step = ?, attempt = ?, "
                "attempts_total = attempts_total + ?, outputs = ?, error = ?, "
                "next_attempt_at = ?, updated_at = ?, "
                "lease_owner = CASE WHEN ? THEN lease_owner END, "
                "lease_expires_at = CASE WHEN ? THEN lease_expires_at END "
                "WHERE id = ? AND lease_owner = ? AND status = 'running'",
                (
                    progress.status,
                    progress.step,
                    progress.attempt,
                    int(attempt is not None),
                    json.dumps(progress.outputs),
                    progress.error,
                    progress.next_attempt_at,
                    time.time(),
                    keep_lease,
                    keep_lease,
                    run_id,
                    token,
                ),
            ).rowcount
            if updated and attempt is not None:
                _insert_attempt(conn, attempt)
            return bool(updated)

        return await self._write(write)

    async def get_event(self, event_id: str) -> Event | None:
        row = await self._read(
            lambda conn: conn.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
        )
        return _event(row) if row else None

    async def list_events(
        self, filters: dict[str, str], status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        where = " AND ".join(f"e.{column} = ?" for column in filters) or "1 = 1"
        having = "HAVING event_status = ?" if status else ""
        sql = (
            "SELECT e.*, COUNT(r.id) AS run_count, "
            "CASE WHEN COUNT(r.id) = 0 THEN 'unmatched' "
            "WHEN SUM(r.status = 'dead') > 0 THEN 'failed' "
            "WHEN SUM(r.status IN ('pending', 'running', 'retrying')) > 0 THEN 'active' "
            "ELSE 'succeeded' END AS event_status "
            f"FROM events e LEFT JOIN runs r ON r.event_id = e.id WHERE {where} "
            f"GROUP BY e.id {having} ORDER BY e.id DESC LIMIT ?"
        )
        params = (*filters.values(), *([status] if status else []), limit)
        rows = await self._read(lambda conn: conn.execute(sql, params).fetchall())
        return [
            {**_event(row).as_dict(), "status": row["event_status"], "runs": row["run_count"]}
            for row in rows
        ]

    async def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        def read(conn: sqlite3.Connection) -> list[dict[str, Any]]:
            runs = conn.execute(
                f"SELECT {_RUN_COLUMNS} FROM runs WHERE event_id = ? ORDER BY created_at, id",
                (event_id,),
            ).fetchall()
            out = []
            for row in runs:
                attempts = conn.execute(
                    "SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (row["id"],)
                ).fetchall()
                out.append(run_view(_run_record(row), [_attempt(a) for a in attempts]))
            return out

        return await self._read(read)

    async def queue_depth(self) -> int:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT COUNT(*) FROM runs WHERE status IN ('pending', 'retrying')"
            ).fetchone()
        )
        return int(row[0])

    async def next_due(self) -> float | None:
        row = await self._read(
            lambda conn: conn.execute(
                "SELECT MIN(next_attempt_at) FROM runs WHERE status IN ('pending', 'retrying')"
            ).fetchone()
        )
        return row[0]


def _migrate(conn: sqlite3.Connection) -> None:
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version > len(MIGRATIONS):
        raise StoreError(
            f"the database schema is version {version}, newer than this hookwise knows "
            f"({len(MIGRATIONS)}); upgrade hookwise"
        )
    for number, script in enumerate(MIGRATIONS[version:], start=version + 1):
        for statement in filter(str.strip, script.split(";")):
            conn.execute(statement)
        conn.execute(f"PRAGMA user_version = {number}")


def _insert_runs(conn: sqlite3.Connection, event_id: str, runs: list[NewRun], now: float) -> None:
    conn.executemany(
        "INSERT INTO runs (id, event_id, rule, status, spec, created_at, updated_at, "
        "next_attempt_at) VALUES (?, ?, ?, 'pending', ?, ?, ?, ?)",
        [(run.id, event_id, run.rule, json.dumps(run.spec), now, now, now) for run in runs],
    )


def _record_lost_attempt(conn: sqlite3.Connection, record: RunRecord, now: float) -> None:
    action = record.spec["actions"][record.step]
    _insert_attempt(
        conn,
        AttemptRecord(
            run_id=record.id,
            step=record.step,
            action=action_label(action.get("id"), action["uses"], record.step),
            number=record.attempt + 1,
            started_at=record.updated_at,
            ended_at=now,
            status="lost",
            error="the worker running this attempt stopped before finishing (lease expired)",
        ),
    )


def _insert_attempt(conn: sqlite3.Connection, attempt: AttemptRecord) -> None:
    conn.execute(
        "INSERT INTO attempts (run_id, step, action, number, started_at, ended_at, status, "
        "output, error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            attempt.run_id,
            attempt.step,
            attempt.action,
            attempt.number,
            attempt.started_at,
            attempt.ended_at,
            attempt.status,
            json.dumps(attempt.output),
            attempt.error,
            json.dumps(attempt.log),
        ),
    )


def _load(cls: type[R], row: sqlite3.Row, *json_columns: str) -> R:
    """A record dataclass from a row: same names, JSON columns decoded."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {key: row[key] for key in names.intersection(row.keys())}
    for column in json_columns:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    return cls(**values)


def _event(row: sqlite3.Row) -> Event:
    return _load(Event, row, "data", "headers", "artifacts")


def _run_record(row: sqlite3.Row) -> RunRecord:
    return _load(RunRecord, row, "spec", "outputs")


def _attempt(row: sqlite3.Row) -> AttemptRecord:
    return _load(AttemptRecord, row, "output", "log")
