"""What people do to runs, whichever way they ask: the HTTP API, the CLI or Slack.

One place decides what an approval or a rejection means and how each outcome is
worded, so the three front ends answer alike.
"""

from __future__ import annotations

import asyncio
from dataclasses import dataclass

from hookwise.store import Store
from hookwise.store.base import Decision

# A run being looked at by a worker (a few milliseconds) is asked again this often.
BUSY_RETRIES = 20
BUSY_PAUSE = 0.1


@dataclass(frozen=True)
class Answer:
    ok: bool
    status: int  # the HTTP status the API answers with
    message: str


async def decide(
    store: Store, run_id: str, actor: str, decision: str, reason: str | None, via: str
) -> Answer:
    """Record an approve or reject; the run's worker acts on it and updates Slack."""
    noun = "approval" if decision == "approve" else "rejection"
    outcome = "running"
    for _ in range(BUSY_RETRIES):
        outcome = await store.decide(Decision(run_id, actor, decision, reason or None, via))
        if outcome != "running":
            break
        await asyncio.sleep(BUSY_PAUSE)
    if outcome == "recorded":
        return Answer(True, 202, f"{noun} of run {run_id} by {actor} recorded")
    if outcome == "unknown":
        return Answer(False, 404, f"no run {run_id}")
    if outcome == "repeated":
        return Answer(
            False, 409, f"{actor} already decided on run {run_id}; one decision per person"
        )
    return Answer(
        False, 409, f"run {run_id} is {outcome.replace('_', ' ')}, not waiting for approval"
    )
