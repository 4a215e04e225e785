"""The store contract every backend implements; the records are in `records.py`."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence

from hookwise.event import Event
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
    Schema,
)


class Store(ABC):
    """Durable events and runs; every backend passes the same test suite."""

    @abstractmethod
    async def open(self, *, upgrade: bool = False) -> Schema:
        """Connect, and create the schema in an empty database.

        A schema older than this code is an error unless `upgrade` (`hookwise db
        upgrade`) applies the missing migrations.
        """

    @abstractmethod
    async def close(self) -> None: ...

    async def subscribe(self, wake: Callable[[], None]) -> None:
        """Call `wake` whenever another process may have added due work, until `close`.

        Lets several processes share one database without waiting for their poll. A
        store that only one process uses (SQLite) has nothing to announce.
        """
        return None

    @abstractmethod
    async def accept(
        self,
        event: Event,
        dedupe_key: str,
        window: float,
        runs: list[NewRun],
        awaited: Sequence[tuple[str, str]] = (),
    ) -> AcceptResult:
        """Persist the event and its runs atomically, unless `dedupe_key` was seen in `window`.

        Flow control is applied in the same transaction: a run joins its key's open
        debounce batch, is skipped by its throttle, or supersedes older runs of its key.
        `awaited` lists (rule, correlation key) pairs whose waiting runs this event releases.
        """

    @abstractmethod
    async def add_runs(self, event_id: str, runs: list[NewRun]) -> None:
        """Add runs to a stored event (replay)."""

    @abstractmethod
    async def claim(
        self, owner: str, limit: int, lease: float, exclude: Collection[str] = ()
    ) -> list[RunRecord]:
        """Take due runs, and runs whose lease expired (their lost attempt is counted).

        Each claimed run gets its own lease token (`RunRecord.lease`), so a stale
        execution can never write over a newer claim, even from the same process.
        `exclude` names runs the caller is still executing.
        """

    @abstractmethod
    async def renew(self, tokens: list[str], lease: float) -> None:
        """Extend the leases of runs still being executed."""

    @abstractmethod
    async def record(
        self, token: str, run_id: str, attempt: AttemptRecord | None, progress: Progress
    ) -> bool:
        """Write an attempt (if any) and the run's new state; False when the lease was lost."""

    @abstractmethod
    async def decide(self, decision: Decision) -> str:
        """Record a decision on a run waiting for approval; see `sql.decide` for answers."""

    @abstractmethod
    async def retry(self, request: Intervention) -> str:
        """Make a dead run due again from its failed action, or a retrying one due now.

        Returns `done`, `unknown`, or the run's status when it cannot be retried.
        """

    @abstractmethod
    async def cancel(self, request: Intervention) -> str:
        """Stop a run that is not in a worker's hands; recorded with who and why.

        Returns `done`, `unknown`, or the run's status when it cannot be cancelled.
        """

    @abstractmethod
    async def get_event(self, event_id: str) -> Event | None: ...

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def run_detail(self, run_id: str) -> RunDetail | None:
        """One run with its attempts, trigger events and decisions."""

    @abstractmethod
    async def events_of_run(self, run_id: str) -> list[Event]:
        """The events that triggered a run, oldest first: one, or a debounced batch."""

    @abstractmethod
    async def decisions_of(self, run_id: str) -> list[Decision]: ...

    @abstractmethod
    async def list_runs(self, query: RunQuery) -> list[RunRecord]:
        """Newest first, the page after `query.before`."""

    @abstractmethod
    async def list_events(self, query: EventQuery) -> list[EventSummary]:
        """Newest first, the page after `query.before`."""

    @abstractmethod
    async def rule_stats(self) -> dict[str, RuleStats]:
        """Per rule name, what its runs still in the history add up to."""

    @abstractmethod
    async def overview(self, now: float) -> Overview: ...

    @abstractmethod
    async def ids_starting(self, prefix: str) -> list[tuple[str, str]]:
        """(`event` or `run`, id) of up to two ids of each kind that begin with `prefix`."""

    @abstractmethod
    async def runs_of(self, event_id: str) -> list[RunDetail]:
        """The event's runs, oldest first."""

    @abstractmethod
    async def prune(self, before: float, batch: int = 1000) -> Pruned:
        """Delete finished runs last changed before `before`, and the events, dedupe keys
        and throttle turns nothing needs any more; see `sql.prune` for exactly what.

        Works in transactions of at most `batch` rows of each kind, until nothing is left.
        Only one process prunes a store at a time: when another one is, this stops and
        returns what it had removed so far with `busy` set.
        """

    @abstractmethod
    async def queue_depth(self) -> int:
        """Runs waiting to be executed or retried."""

    @abstractmethod
    async def next_due(self) -> float | None:
        """When the earliest waiting run becomes due, so idle workers sleep exactly that long."""
