"""A rule's `notify:` message: posted when its run starts, kept up to date in place.

Retries and gate steps (an approval asked for or decided, an awaited event) are
replies in the message's thread. Slack being down never fails a run: the message
catches up at the run's next change.
"""

from __future__ import annotations

import dataclasses
import logging
from typing import Any

from hookwise.errors import PermanentFailure, RetryLater
from hookwise.event import Event
from hookwise.links import Links
from hookwise.slack.chat import Posted, SlackChat
from hookwise.slack.messages import run_status
from hookwise.slack.text import cut
from hookwise.status import RunStatus
from hookwise.store import AttemptRecord, Progress, RunRecord

log = logging.getLogger("hookwise.notify")
# Ends that are not news when nothing was announced yet: no message, no noise.
QUIET = (RunStatus.SKIPPED, RunStatus.SUPERSEDED, RunStatus.CANCELLED)


class Notifier:
    def __init__(self, chat: SlackChat | None, links: Links) -> None:
        self.chat = chat
        self.links = links

    async def sync(
        self,
        run: RunRecord,
        events: list[Event],
        progress: Progress,
        entry: AttemptRecord | None,
    ) -> Progress:
        """Bring the message to `progress`; returns it with the message's place recorded."""
        if self.chat is None or "notify" not in run.spec or not events:
            return progress
        flow = dict(progress.flow if progress.flow is not None else run.flow)
        state: dict[str, Any] = dict(flow.get("notify") or {})
        if not state.get("ts") and progress.status in QUIET:
            return progress
        shown = (progress.status, progress.error)
        try:
            if not state.get("ts"):
                text, blocks = run_status(
                    run, events, progress.status, progress.error, self.links.run(run.id)
                )
                posted = await self.chat.post(run.spec["notify"]["slack"]["channel"], text, blocks)
                state.update(channel=posted.channel, ts=posted.ts)
            elif state.get("shown") != list(shown):
                text, blocks = run_status(
                    run, events, progress.status, progress.error, self.links.run(run.id)
                )
                await self.chat.update(Posted(state["channel"], state["ts"]), text, blocks)
            state["shown"] = list(shown)
            reply = _thread_reply(progress, entry)
            if reply:
                await self.chat.post(state["channel"], reply, [], thread_ts=state["ts"])
        except (RetryLater, PermanentFailure) as exc:
            verb = "updated" if state.get("ts") else "posted"
            log.warning("run %s: the notify message could not be %s: %s", run.id, verb, exc)
        flow["notify"] = state
        run.flow = flow
        return dataclasses.replace(progress, flow=flow)


def _thread_reply(progress: Progress, entry: AttemptRecord | None) -> str | None:
    if entry is None:
        return None
    if progress.status == "retrying" and entry.counted:
        return cut(f"{entry.action} attempt {entry.number} failed: {entry.error}; retrying", 2000)
    if not entry.counted:
        return cut(entry.error or f"{entry.action}: {entry.status}", 2000)
    return None
