"""The records the store takes and hands out: plain typed data, no storage in them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookwise.event import Event
from hookwise.status import EventStatus, RunStatus


@dataclass(frozen=True)
class AcceptResult:
    event_id: str
    duplicate: bool
    # Runs were added or released: a worker has something new to claim.
    new_work: bool = False


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
    status: RunStatus = RunStatus.PENDING
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


@dataclass
class RunRecord:
    id: str
    event_id: str
    rule: str
    status: RunStatus
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
    phase: RunStatus | None = None
    # Its trigger events, oldest first, when the claim read them along with it; None
    # where a run was read for other reasons (they are then `Store.events_of_run`).
    events: list[Event] | None = None


@dataclass(frozen=True)
class Intervention:
    """A person retrying or cancelling a run, from the API, the CLI, Slack or the console.

    `restart` is the rule's current snapshot when a retry starts over from the first action.
    """

    run_id: str
    actor: str
    via: str
    reason: str | None = None
    restart: dict[str, Any] | None = None


@dataclass(frozen=True)
class EventQuery:
    """Which events a list shows, newest first; `before` is the last id of the page before."""

    source: str | None = None
    domain: str | None = None
    event_type: str | None = None
    status: EventStatus | None = None
    text: str | None = None  # found in the artifacts' names, tags and digests
    since: float | None = None
    until: float | None = None
    before: str | None = None
    limit: int = 50


@dataclass(frozen=True)
class RunQuery:
    """Which runs a list shows, newest first; `key` is any of the run's flow-control keys."""

    statuses: tuple[RunStatus, ...] = ()
    rule: str | None = None
    source: str | None = None
    key: str | None = None
    since: float | None = None
    until: float | None = None
    before: str | None = None
    limit: int = 50


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

    status: RunStatus
    step: int
    attempt: int
    outputs: dict[str, Any]
    error: str | None = None
    next_attempt_at: float = 0.0
    flow: dict[str, Any] | None = None  # replaces the run's flow state when given


@dataclass(frozen=True)
class EventSummary:
    """An event as lists show it: with its status, which follows from its runs."""

    event: Event
    status: EventStatus
    runs: int


@dataclass(frozen=True)
class RunDetail:
    """One run with everything that happened to it: attempts, trigger events, decisions."""

    run: RunRecord
    attempts: list[AttemptRecord]
    events: list[str]
    decisions: list[Decision]


@dataclass(frozen=True)
class EventDetail:
    """One event with every run it caused, oldest first."""

    event: Event
    runs: list[RunDetail]


@dataclass(frozen=True)
class RuleStats:
    """What one rule did, over the runs still in the history."""

    matches: int  # events
    runs: int
    failures: int  # dead runs
    last_fired: float
    last_error: str | None


@dataclass(frozen=True)
class Overview:
    """The state of things at a glance: the console's front page."""

    last_hour: dict[str, int]  # runs created, by status
    last_day: dict[str, int]
    events_last_hour: int
    events_last_day: int
    oldest_active: tuple[str, float] | None  # the run that has waited longest, and since when
    dead: int  # every dead run in the history: the dead-letter queue
    active: dict[str, int] = field(default_factory=dict)  # runs not finished, by status, now
