"""The Store interface on top of `sql.py`; a backend only supplies transactions.

SQLite and PostgreSQL differ in how they connect, batch and lock, not in what they
store, so the logic lives once and both backends pass the same tests.
"""

from __future__ import annotations

from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import Any, TypeVar

from hookwise import clock
from hookwise.event import Event
from hookwise.store import sql
from hookwise.store.base import (
    AcceptResult,
    AttemptRecord,
    Decision,
    NewRun,
    Progress,
    RunRecord,
    Store,
)
from hookwise.store.sql import Tx

T = TypeVar("T")


class SqlStore(Store):
    # Appended to SELECTs whose rows the transaction will update; PostgreSQL skips rows
    # another worker holds, SQLite's single writer needs nothing.
    row_lock = ""
    # Appended to a SELECT of one row the transaction must hold until it commits.
    for_update = ""

    @abstractmethod
    async def _write(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` in a write transaction."""

    @abstractmethod
    async def _read(self, fn: Callable[[Tx], T]) -> T:
        """Run `fn` on a read-only snapshot."""

    async def accept(
        self,
        event: Event,
        dedupe_key: str,
        window: float,
        runs: list[NewRun],
        awaited: list[tuple[str, str]] = (),  # type: ignore[assignment]
    ) -> AcceptResult:
        pairs = list(awaited)
        return await self._write(lambda tx: sql.accept(tx, event, dedupe_key, window, runs, pairs))

    async def add_runs(self, event_id: str, runs: list[NewRun]) -> None:
        now = clock.now()
        await self._write(lambda tx: sql.add_runs(tx, event_id, runs, now))

    async def claim(
        self, owner: str, limit: int, lease: float, exclude: Collection[str] = ()
    ) -> list[RunRecord]:
        skip = list(exclude)
        now = clock.now()
        return await self._write(
            lambda tx: sql.claim(tx, owner, limit, lease, skip, now, self.row_lock)
        )

    async def renew(self, tokens: list[str], lease: float) -> None:
        if tokens:
            now = clock.now()
            await self._write(lambda tx: sql.renew(tx, tokens, lease, now))

    async def record(
        self, token: str, run_id: str, attempt: AttemptRecord | None, progress: Progress
    ) -> bool:
        now = clock.now()
        return await self._write(lambda tx: sql.record(tx, token, run_id, attempt, progress, now))

    async def decide(self, decision: Decision) -> str:
        now = clock.now()
        return await self._write(lambda tx: sql.decide(tx, decision, now, self.for_update))

    async def get_event(self, event_id: str) -> Event | None:
        return await self._read(lambda tx: sql.get_event(tx, event_id))

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda tx: sql.get_run(tx, run_id))

    async def run_details(self, run_id: str) -> dict[str, Any] | None:
        def read(tx: Tx) -> dict[str, Any] | None:
            run = sql.get_run(tx, run_id)
            return sql.run_details(tx, run) if run else None

        return await self._read(read)

    async def events_of_run(self, run_id: str) -> list[Event]:
        return await self._read(lambda tx: sql.events_of_run(tx, run_id))

    async def decisions_of(self, run_id: str) -> list[Decision]:
        return await self._read(lambda tx: sql.decisions_of(tx, run_id))

    async def recent_runs(self, statuses: Sequence[str], limit: int) -> list[RunRecord]:
        return await self._read(lambda tx: sql.recent_runs(tx, statuses, limit))

    async def list_events(
        self, filters: dict[str, str], status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        return await self._read(lambda tx: sql.list_events(tx, filters, status, limit))

    async def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        return await self._read(lambda tx: sql.runs_of(tx, event_id))

    async def queue_depth(self) -> int:
        return await self._read(sql.queue_depth)

    async def next_due(self) -> float | None:
        return await self._read(sql.next_due)
