"""The store contract every backend implements, and the records it hands out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Collection, Sequence
from dataclasses import dataclass, field
from typing import Any

from hookwise.actions import action_label
from hookwise.event import Event, iso_time

EVENT_STATUSES = ("unmatched", "active", "succeeded", "failed", "stopped")
# Runs held back by flow control until an event, a decision or their deadline arrives.
WAITING_STATUSES = ("waiting_event", "waiting_approval")
ACTIVE_STATUSES = ("pending", "running", "retrying", "debouncing", *WAITING_STATUSES)
# Ends other than succeeded and dead: the run was stopped by flow control or a person.
STOPPED_STATUSES = ("skipped", "superseded", "expired", "rejected")
# A run in one of these will not change again; only these are ever pruned.
FINISHED_STATUSES = ("succeeded", "dead", *STOPPED_STATUSES)
RUN_STATUSES = (*ACTIVE_STATUSES, *FINISHED_STATUSES)


@dataclass(frozen=True)
class AcceptResult:
    event_id: str
    duplicate: bool


@dataclass(frozen=True)
class Schema:
    """The schema version a store found when it opened, and the one it left."""

    found: int
    current: int


@dataclass(frozen=True)
class Pruned:
    """What a retention pass removed; `busy` when it stopped because another was under way."""

    events: int = 0
    runs: int = 0
    attempts: int = 0
    dedupe_keys: int = 0
    throttles: int = 0
    busy: bool = False

    def __add__(self, other: Pruned) -> Pruned:
        return Pruned(
            self.events + other.events,
            self.runs + other.runs,
            self.attempts + other.attempts,
            self.dedupe_keys + other.dedupe_keys,
            self.throttles + other.throttles,
            self.busy or other.busy,
        )


@dataclass(frozen=True)
class FlowKeys:
    """The rendered keys of a rule's flow control for one event; None where unused."""

    debounce: str | None = None
    throttle: str | None = None
    concurrency: str | None = None
    wait: str | None = None


@dataclass(frozen=True)
class NewRun:
    """A run to create: the rule's name and a snapshot of its actions at match time.

    The snapshot makes a run independent of later rule edits and reloads. A run
    that cannot start (its flow key did not render) is created `dead` with the reason.
    """

    id: str
    rule: str
    spec: dict[str, Any]
    keys: FlowKeys = FlowKeys()
    status: str = "pending"
    error: str | None = None


@dataclass(frozen=True)
class Decision:
    """One person's approve or reject of a run waiting for approval."""

    run_id: str
    actor: str
    decision: str  # approve | reject
    reason: str | None = None
    via: str = "api"
    decided_at: float = 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "by": self.actor,
            "decision": self.decision,
            "reason": self.reason,
            "via": self.via,
            "at": iso_time(self.decided_at),
        }


@dataclass
class RunRecord:
    id: str
    event_id: str
    rule: str
    status: str
    spec: dict[str, Any]
    step: int
    attempt: int
    attempts_total: int
    outputs: dict[str, Any]
    error: str | None
    created_at: float
    updated_at: float
    next_attempt_at: float
    flow: dict[str, Any] = field(default_factory=dict)
    concurrency_key: str | None = None
    awaited_event_id: str | None = None
    lease: str = ""
    # The status the run was claimed from, so the runner knows which gate woke it.
    phase: str = ""


@dataclass
class AttemptRecord:
    """One try of one action, as it appears in the run's history."""

    run_id: str
    step: int
    action: str
    number: int
    started_at: float
    ended_at: float
    status: str
    output: Any = None
    error: str | None = None
    log: list[dict[str, Any]] = field(default_factory=list)
    # Flow-control entries (approval requested, decided, …) are history, not attempts.
    counted: bool = True


@dataclass(frozen=True)
class Progress:
    """The run's state after an attempt; written only while the lease is still ours."""

    status: str
    step: int
    attempt: int
    outputs: dict[str, Any]
    error: str | None = None
    next_attempt_at: float = 0.0
    flow: dict[str, Any] | None = None  # replaces the run's flow state when given


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
        awaited: list[tuple[str, str]] = (),  # type: ignore[assignment]
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
    async def get_event(self, event_id: str) -> Event | None: ...

    @abstractmethod
    async def get_run(self, run_id: str) -> RunRecord | None: ...

    @abstractmethod
    async def run_details(self, run_id: str) -> dict[str, Any] | None:
        """The API's view of one run, with its attempts, events and decisions."""

    @abstractmethod
    async def events_of_run(self, run_id: str) -> list[Event]:
        """The events that triggered a run, oldest first: one, or a debounced batch."""

    @abstractmethod
    async def decisions_of(self, run_id: str) -> list[Decision]: ...

    @abstractmethod
    async def recent_runs(self, statuses: Sequence[str], limit: int) -> list[RunRecord]:
        """Most recently updated first."""

    @abstractmethod
    async def list_events(
        self, filters: dict[str, str], status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first, each event's dict plus `status` and `runs` (count)."""

    @abstractmethod
    async def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        """Runs with their attempts, oldest first."""

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


def run_view(run: RunRecord, attempts: list[AttemptRecord]) -> dict[str, Any]:
    """The API's shape of a run: summary fields first, then every attempt."""
    actions = run.spec["actions"]
    step = min(run.step, len(actions) - 1)
    return {
        "id": run.id,
        "rule": run.rule,
        "status": run.status,
        "action": action_label(actions[step].get("id"), actions[step]["uses"], step),
        "attempts": run.attempts_total,
        "output": run.outputs,
        "error": run.error,
        "log": [line for attempt in attempts for line in attempt.log],
        "created_at": iso_time(run.created_at),
        "updated_at": iso_time(run.updated_at),
        "next_attempt_at": iso_time(run.next_attempt_at) if run.status == "retrying" else None,
        "history": [
            {
                "action": a.action,
                "attempt": a.number,
                "status": a.status,
                "started_at": iso_time(a.started_at),
                "duration_ms": round((a.ended_at - a.started_at) * 1000, 1),
                "output": a.output,
                "error": a.error,
            }
            for a in attempts
        ],
    }
