"""The statuses of runs and events: one vocabulary for the store, the API, the CLI and Slack.

A run is active until it reaches a final status; an event is as far as its runs.
"""

from __future__ import annotations

from enum import StrEnum


class RunStatus(StrEnum):
    PENDING = "pending"  # due, or queued for a concurrency slot
    RUNNING = "running"  # claimed by a worker
    RETRYING = "retrying"  # an action failed; tried again at next_attempt_at
    DEBOUNCING = "debouncing"  # gathering a batch until its key falls quiet
    WAITING_EVENT = "waiting_event"  # held until a related event arrives (wait_for)
    WAITING_APPROVAL = "waiting_approval"  # held until people decide
    SUCCEEDED = "succeeded"
    DEAD = "dead"  # failed for good, with the reason
    SKIPPED = "skipped"  # throttled, or its awaited event said no
    SUPERSEDED = "superseded"  # a newer run of its concurrency key replaced it
    EXPIRED = "expired"  # what it waited for did not come in time
    REJECTED = "rejected"  # a person said no
    CANCELLED = "cancelled"  # a person stopped it


class EventStatus(StrEnum):
    UNMATCHED = "unmatched"  # no rule matched
    ACTIVE = "active"  # a run is still going
    SUCCEEDED = "succeeded"  # runs ended, at least one succeeded and none died
    DEAD = "dead"  # a run is dead
    STOPPED = "stopped"  # every run was stopped by flow control or a person


# Held back by flow control until an event, a decision or a deadline arrives.
WAITING = (RunStatus.WAITING_EVENT, RunStatus.WAITING_APPROVAL)
ACTIVE = (
    RunStatus.PENDING,
    RunStatus.RUNNING,
    RunStatus.RETRYING,
    RunStatus.DEBOUNCING,
    *WAITING,
)
# Ends other than succeeded and dead: the run was stopped by flow control or a person.
STOPPED = (
    RunStatus.SKIPPED,
    RunStatus.SUPERSEDED,
    RunStatus.EXPIRED,
    RunStatus.REJECTED,
    RunStatus.CANCELLED,
)
# What people may do: cancel a run not in a worker's hands (a running one is cancelled
# once its attempt has ended); retry a dead run, or a retrying one at once.
CANCELLABLE = tuple(status for status in ACTIVE if status != RunStatus.RUNNING)
RETRYABLE = (RunStatus.DEAD, RunStatus.RETRYING)
# A run in one of these will not change again; only these are ever pruned.
FINISHED = (RunStatus.SUCCEEDED, RunStatus.DEAD, *STOPPED)
