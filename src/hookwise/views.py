"""Records as JSON: one shape for the HTTP API, the CLI's `--json` and the console.

The service hands out typed records; only front ends turn them into text or JSON,
and they all use these functions, so the shapes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from hookwise.actions import action_label
from hookwise.event import iso_time
from hookwise.status import RunStatus
from hookwise.store import Decision, EventDetail, EventSummary, RunDetail


def summary_view(summary: EventSummary) -> dict[str, Any]:
    """An event in a list: its fields, its status, and how many runs it caused."""
    return {**summary.event.as_dict(), "status": summary.status, "runs": summary.runs}


def event_view(detail: EventDetail) -> dict[str, Any]:
    return {"event": detail.event.as_dict(), "runs": [run_view(run) for run in detail.runs]}


def decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "by": decision.actor,
        "decision": decision.decision,
        "reason": decision.reason,
        "via": decision.via,
        "at": iso_time(decision.decided_at),
    }


def run_view(detail: RunDetail) -> dict[str, Any]:
    """A run: summary fields first, then every attempt, its events and decisions."""
    run, attempts = detail.run, detail.attempts
    actions = run.spec["actions"]
    step = min(run.step, len(actions) - 1)
    retrying = run.status == RunStatus.RETRYING
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
        "next_attempt_at": iso_time(run.next_attempt_at) if retrying else None,
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
        "events": detail.events,
        "awaited_event": run.awaited_event_id,
        "decisions": [decision_view(d) for d in detail.decisions],
    }
