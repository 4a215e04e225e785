"""The store contract every backend implements, and the records it hands out."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Collection
from dataclasses import dataclass, field
from typing import Any

from hookwise.actions import action_label
from hookwise.event import Event, iso_time

EVENT_STATUSES = ("unmatched", "active", "succeeded", "failed")


@dataclass(frozen=True)
class AcceptResult:
    event_id: str
    duplicate: bool


@dataclass(frozen=True)
class NewRun:
    """A run to create: the rule's name and a snapshot of its actions at match time.

    The snapshot makes a run independent of later rule edits and reloads.
    """

    id: str
    rule: str
    spec: dict[str, Any]


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
    lease: str = ""


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


@dataclass(frozen=True)
class Progress:
    """The run's state after an attempt; written only while the lease is still ours."""

    status: str
    step: int
    attempt: int
    outputs: dict[str, Any]
    error: str | None = None
    next_attempt_at: float = 0.0


class Store(ABC):
    @abstractmethod
    async def open(self) -> None: ...

    @abstractmethod
    async def close(self) -> None: ...

    @abstractmethod
    async def accept(
        self, event: Event, dedupe_key: str, window: float, runs: list[NewRun]
    ) -> AcceptResult:
        """Persist the event and its runs atomically, unless `dedupe_key` was seen in `window`."""

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
    async def get_event(self, event_id: str) -> Event | None: ...

    @abstractmethod
    async def list_events(
        self, filters: dict[str, str], status: str | None, limit: int
    ) -> list[dict[str, Any]]:
        """Newest first, each event's dict plus `status` and `runs` (count)."""

    @abstractmethod
    async def runs_of(self, event_id: str) -> list[dict[str, Any]]:
        """Runs with their attempts, oldest first."""

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
