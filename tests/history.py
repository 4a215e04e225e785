"""Stored history at chosen times, for the retention tests: `clock.now` in the test's hand.

`deliver` stores an event received at a given moment, `settle` executes what is due as
a worker would record it, and `finished` does both for one event with one run.
"""

from __future__ import annotations

import pytest

from hookwise import clock
from hookwise.event import Event, new_id
from hookwise.store import AttemptRecord, NewRun, Progress, Store

DAY = 86400.0
T0 = 1_800_000_000.0
SPEC = {"name": "r", "description": "", "actions": [{"uses": "log", "with": {"message": "x"}}]}


class Clock:
    """Replaces `clock.now` for the test; starts at `start`."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, start: float = T0) -> None:
        self.now = start
        monkeypatch.setattr(clock, "now", lambda: self.now)


def received(when: float) -> Event:
    return Event(new_id(), "artifactory", "artifactory", "docker", "pushed", None, when, {}, {})


async def deliver(store: Store, at: Clock, when: float, *runs: NewRun, key: str = "") -> str:
    """An event received at `when` with its runs; its id."""
    at.now = when
    accepted = await store.accept(received(when), key or new_id(), 3600, list(runs))
    return accepted.event_id


async def settle(store: Store, status: str, *, tries: int = 1, due: float = 0.0) -> list[str]:
    """Claim every due run and record `tries` attempts, the last leaving it `status`."""
    settled = []
    for run in await store.claim("w", 100, lease=60):
        for number in range(1, tries + 1):
            now, last = clock.now(), number == tries
            attempt = AttemptRecord(
                run.id, 0, "log#1", number, now, now, status if last else "retry"
            )
            progress = Progress(status if last else "running", 1, 0, {}, next_attempt_at=due)
            assert await store.record(run.lease, run.id, attempt, progress)
        settled.append(run.id)
    return settled


async def finished(store: Store, at: Clock, when: float, status: str = "succeeded") -> str:
    """An event received at `when` whose one run ended `status` at once; the event's id."""
    event_id = await deliver(store, at, when, NewRun(new_id(), "r", SPEC))
    assert len(await settle(store, status)) == 1
    return event_id
