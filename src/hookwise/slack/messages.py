"""What people read in Slack: the approval request and the run's status message.

Every message has a plain `text` (the notification and what screen readers say) and
Block Kit blocks for the layout. Event data is escaped: it must not inject mentions
or links into a channel.
"""

from __future__ import annotations

import json
from typing import Any

from hookwise.event import Event, iso_time
from hookwise.slack.text import artifact_label, cut, escape, summary
from hookwise.store import Decision, RunRecord

APPROVE = "hookwise_approve"
REJECT = "hookwise_reject"
STATUS_ICONS = {
    "pending": ":hourglass_flowing_sand:",
    "debouncing": ":hourglass_flowing_sand:",
    "running": ":arrows_counterclockwise:",
    "retrying": ":repeat:",
    "waiting_event": ":hourglass_flowing_sand:",
    "waiting_approval": ":raised_hand:",
    "succeeded": ":white_check_mark:",
    "dead": ":x:",
    "skipped": ":fast_forward:",
    "superseded": ":fast_forward:",
    "expired": ":alarm_clock:",
    "rejected": ":no_entry:",
    "cancelled": ":no_entry_sign:",
}


def _section(text: str) -> dict[str, Any]:
    return {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}


def _context(text: str) -> dict[str, Any]:
    return {"type": "context", "elements": [{"type": "mrkdwn", "text": cut(text, 2000)}]}


def _what(events: list[Event]) -> str:
    latest = events[-1]
    more = f" (+{len(events) - 1} earlier events in this batch)" if len(events) > 1 else ""
    return escape(summary(latest)) + more


def _who(decision: Decision) -> str:
    who = f"<@{decision.actor}>" if decision.via == "slack" else escape(decision.actor)
    verb = "approved" if decision.decision == "approve" else "rejected"
    reason = f": {escape(decision.reason)}" if decision.reason else ""
    return f"{verb} by {who} at {iso_time(decision.decided_at)}{reason}"


def approval_request(
    run: RunRecord,
    events: list[Event],
    message: str,
    preview: list[tuple[str, Any]],
    decisions: list[Decision],
    outcome: str | None = None,
    link: str | None = None,
) -> tuple[str, list[dict[str, Any]]]:
    """The request with Approve / Reject buttons; once decided, who decided and when.
    `link` is the run's console page, for deciding there when Slack's buttons cannot."""
    approval = run.spec["approval"]
    title = message or f"Run rule {run.rule} for {summary(events[-1])}?"
    blocks = [_section(f"*{escape(title)}*"), _section(f"Event: {_what(events)}")]
    for label, params in preview:
        rendered = cut(json.dumps(params, indent=2, default=str), 1500)
        blocks.append(_section(f"*{escape(label)}* with:\n```{escape(rendered)}```"))
    lines = [_who(d) for d in decisions]
    approvals = sum(d.decision == "approve" for d in decisions)
    if outcome is None:
        lines.append(f"{approvals} of {approval['required']} approvals")
    else:
        lines.append(f"*{outcome}*")
    blocks.append(_section("\n".join(lines)))
    if outcome is None:
        blocks.append(
            {
                "type": "actions",
                "block_id": f"hookwise_approval_{run.id}",
                "elements": [
                    _button("Approve", APPROVE, run.id, "primary"),
                    _button("Reject", REJECT, run.id, "danger"),
                ],
            }
        )
    blocks.append(_context(f"hookwise · rule `{escape(run.rule)}` · {_run_ref(run.id, link)}"))
    text = f"{title} ({outcome})" if outcome else f"Approval needed: {title}"
    return text, blocks


def _button(text: str, action_id: str, run_id: str, style: str) -> dict[str, Any]:
    return {
        "type": "button",
        "text": {"type": "plain_text", "text": text},
        "action_id": action_id,
        "value": run_id,
        "style": style,
    }


def run_status(
    run: RunRecord, events: list[Event], status: str, error: str | None, link: str | None = None
) -> tuple[str, list[dict[str, Any]]]:
    """The rule's notice: its state, and for a failure what failed and how to retry."""
    icon = STATUS_ICONS.get(status, "")
    label = artifact_label(events[-1].as_dict()["artifact"]) or events[-1].event_type
    text = f"{icon} {run.rule}: {status.replace('_', ' ')} ({label})"
    lines = [f"{icon} *{escape(run.rule)}* · {status.replace('_', ' ')}", f"Event: {_what(events)}"]
    if error:
        lines.append(f"```{escape(cut(error, 1500))}```")
    if status == "dead":
        where = f", or <{link}|in the console>" if link else ""
        lines.append(f"Retry with `/hookwise retry {run.id}` or `hookwise retry {run.id}`{where}.")
    blocks = [_section("\n".join(lines)), _context(f"hookwise · {_run_ref(run.id, link)}")]
    return text, blocks


def _run_ref(run_id: str, link: str | None) -> str:
    """`run <id>`, a link to its console page when there is one."""
    return f"<{link}|run {run_id}>" if link else f"run `{run_id}`"
