"""Records as JSON: one shape for the HTTP API, the CLI's `--json` and the console.

The service hands out typed records; only front ends turn them into text or JSON,
and they all use these functions, so the shapes cannot drift apart.
"""

from __future__ import annotations

from typing import Any

from hookwise.actions import action_label
from hookwise.event import iso_time
from hookwise.rules import Rule
from hookwise.status import RunStatus
from hookwise.store import (
    Decision,
    EventDetail,
    EventSummary,
    RuleStats,
    RunDetail,
    RunRecord,
)


def summary_view(summary: EventSummary) -> dict[str, Any]:
    """An event in a list: its fields, its status, and how many runs it caused."""
    return {**summary.event.as_dict(), "status": summary.status, "runs": summary.runs}


def event_view(detail: EventDetail) -> dict[str, Any]:
    return {"event": detail.event.as_dict(), "runs": [run_view(run) for run in detail.runs]}


def _log_line(line: dict[str, Any]) -> dict[str, Any]:
    """Log lines are stored with Unix times; the API speaks ISO 8601 throughout."""
    at = line.get("at")
    return {**line, "at": iso_time(at) if isinstance(at, int | float) else at}


def decision_view(decision: Decision) -> dict[str, Any]:
    return {
        "by": decision.actor,
        "decision": decision.decision,
        "reason": decision.reason,
        "via": decision.via,
        "at": iso_time(decision.decided_at),
    }


def run_summary_view(run: RunRecord) -> dict[str, Any]:
    """A run in a list: where it stands, without its history."""
    actions = run.spec["actions"]
    step = min(run.step, len(actions) - 1)
    return {
        "id": run.id,
        "rule": run.rule,
        "status": run.status,
        "action": action_label(actions[step].get("id"), actions[step]["uses"], step),
        "attempts": run.attempts_total,
        "error": run.error,
        "event_id": run.event_id,
        "created_at": iso_time(run.created_at),
        "updated_at": iso_time(run.updated_at),
        "next_attempt_at": _next_attempt(run),
    }


def _next_attempt(run: RunRecord) -> str | None:
    return iso_time(run.next_attempt_at) if run.status == RunStatus.RETRYING else None


def run_view(detail: RunDetail) -> dict[str, Any]:
    """A run: summary fields first, then every attempt, its events and decisions."""
    run, attempts = detail.run, detail.attempts
    return {
        **run_summary_view(run),
        "output": run.outputs,
        "log": [_log_line(line) for attempt in attempts for line in attempt.log],
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


def rule_view(rule: Rule, stats: RuleStats | None) -> dict[str, Any]:
    """A loaded rule, with what its runs in the history add up to."""
    return {
        "name": rule.name,
        "origin": rule.origin,
        "enabled": rule.enabled,
        "description": rule.description,
        "when": rule.when.model_dump(mode="json", exclude_defaults=True),
        "actions": [call.uses for call in rule.actions],
        "matches": stats.matches if stats else 0,
        "runs": stats.runs if stats else 0,
        "failures": stats.failures if stats else 0,
        "last_fired": iso_time(stats.last_fired) if stats else None,
        "last_error": stats.last_error if stats else None,
    }
