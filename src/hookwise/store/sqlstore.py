"""The Store interface on top of `sql/`; a backend only supplies transactions.

SQLite and PostgreSQL differ in how they connect, batch and lock, not in what they
store, so the logic lives once and both backends pass the same tests.
"""

from __future__ import annotations

import functools
from abc import abstractmethod
from collections.abc import Callable, Collection, Sequence
from typing import TypeVar, cast

from hookwise import clock
from hookwise.errors import StoreError
from hookwise.event import Event
from hookwise.store import sql
from hookwise.store.base import Store
from hookwise.store.records import (
    AcceptResult,
    AttemptRecord,
    Decision,
    EventQuery,
    EventSummary,
    Intervention,
    NewRun,
    Overview,
    Progress,
    Pruned,
    RuleStats,
    RunDetail,
    RunQuery,
    RunRecord,
)
from hookwise.store.sql import Tx
from hookwise.store.sql.common import Later

T = TypeVar("T")
R = TypeVar("R", Decision, Intervention)


class SqlStore(Store):
    # Appended to SELECTs whose rows the transaction will update; PostgreSQL skips rows
    # another worker holds, SQLite's single writer needs nothing.
    row_lock = ""
    # Appended to a SELECT of one row the transaction must hold until it commits.
    for_update = ""
    # Run at the end of a write that created due work, in its transaction, so that other
    # processes hear of it when (and only if) it commits; the second form only when the
    # event named is stored (not a duplicate's).
    announce = ""
    announce_if_stored = ""

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
        awaited: Sequence[tuple[str, str]] = (),
    ) -> AcceptResult:
        pairs = list(awaited)

        def write(tx: Tx) -> Later[AcceptResult]:
            result = sql.accept(tx, event, dedupe_key, window, runs, pairs)
            if (runs or pairs) and self.announce_if_stored:
                tx.execute(self.announce_if_stored, (event.id,))
            return result

        return cast(AcceptResult, await self._write(write))

    async def add_runs(self, event_id: str, runs: list[NewRun]) -> None:
        now = clock.now()

        def write(tx: Tx) -> None:
            sql.add_runs(tx, event_id, runs, now)
            self._announce(tx)

        await self._write(write)

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
        lock = self.for_update
        kept = await self._write(
            lambda tx: sql.record(tx, token, run_id, attempt, progress, now, lock)
        )
        return cast(bool, kept)

    async def decide(self, decision: Decision) -> str:
        return await self._intervene(sql.decide, decision, "recorded")

    async def retry(self, request: Intervention) -> str:
        return await self._intervene(sql.retry, request, "done")

    async def cancel(self, request: Intervention) -> str:
        return await self._intervene(sql.cancel, request, "done")

    async def _intervene(
        self, change: Callable[[Tx, R, float, str], str], request: R, done: str
    ) -> str:
        """Apply a person's change to one run; wake the workers when it made work due."""
        now = clock.now()

        def write(tx: Tx) -> str:
            answer = change(tx, request, now, self.for_update)
            if answer == done:
                self._announce(tx)
            return answer

        return await self._write(write)

    def _announce(self, tx: Tx) -> None:
        if self.announce:
            tx.execute(self.announce)

    async def get_event(self, event_id: str) -> Event | None:
        return await self._read(lambda tx: sql.get_event(tx, event_id))

    async def get_run(self, run_id: str) -> RunRecord | None:
        return await self._read(lambda tx: sql.get_run(tx, run_id))

    async def run_detail(self, run_id: str) -> RunDetail | None:
        def read(tx: Tx) -> RunDetail | None:
            run = sql.get_run(tx, run_id)
            return sql.run_detail(tx, run) if run else None

        return await self._read(read)

    async def events_of_run(self, run_id: str) -> list[Event]:
        return await self._read(lambda tx: sql.events_of_run(tx, run_id))

    async def decisions_of(self, run_id: str) -> list[Decision]:
        return await self._read(lambda tx: sql.decisions_of(tx, run_id))

    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        return await self._read(lambda tx: sql.list_runs(tx, query))

    async def list_events(self, query: EventQuery) -> list[EventSummary]:
        return await self._read(lambda tx: sql.list_events(tx, query))

    async def ids_starting(self, prefix: str) -> list[tuple[str, str]]:
        return await self._read(lambda tx: sql.ids_starting(tx, prefix))

    async def rule_stats(self) -> dict[str, RuleStats]:
        return await self._read(sql.rule_stats)

    async def overview(self, now: float) -> Overview:
        return await self._read(lambda tx: sql.overview(tx, now))

    async def runs_of(self, event_id: str) -> list[RunDetail]:
        return await self._read(lambda tx: sql.runs_of(tx, event_id))

    async def prune(self, before: float, batch: int = 1000) -> Pruned:
        total = Pruned()
        while True:
            now = clock.now()
            done = await self._write(
                functools.partial(sql.prune, before=before, now=now, limit=batch)
            )
            if done is None:
                return total + Pruned(busy=True)
            total += done
            if max(done.events, done.runs, done.dedupe_keys, done.throttles) < batch:
                return total

    async def queue_depth(self) -> int:
        return await self._read(sql.queue_depth)

    async def next_due(self) -> float | None:
        return await self._read(sql.next_due)


def migrations_to_apply(found: int, latest: int, where: str, upgrade: bool) -> range:
    """The version numbers to apply, under one policy for every backend.

    An empty database (version 0) gets the whole schema. An older one is only upgraded
    on request (`hookwise db upgrade`), after its owner has had the chance to back it
    up; a newer one belongs to a newer hookwise and is never touched.
    """
    if found > latest:
        raise StoreError(
            f"the database schema of {where} is version {found}, newer than this hookwise "
            f"knows ({latest}); upgrade hookwise"
        )
    if 0 < found < latest and not upgrade:
        raise StoreError(
            f"the database schema of {where} is version {found}, this hookwise needs "
            f"{latest}: back it up, then run `hookwise db upgrade`"
        )
    return range(found + 1, latest + 1)
