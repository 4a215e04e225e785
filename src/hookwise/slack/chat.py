"""The Slack calls ChatOps makes, async, egress-checked, failures classified.

slack_sdk's WebClient is synchronous; each call runs in a thread so the event loop
never waits on Slack. Failures raise RetryLater or PermanentFailure (hookwise.slack).
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from slack_sdk import WebClient

from hookwise.config import Config, unset_in
from hookwise.egress import EgressPolicy
from hookwise.slack.api import call, web_client
from hookwise.slack.settings import SlackSettings


@dataclass(frozen=True)
class Posted:
    """Where a message lives, so it can be updated and replied to."""

    channel: str
    ts: str


class SlackChat:
    def __init__(self, settings: SlackSettings, policy: EgressPolicy) -> None:
        self.settings = settings
        self.client = web_client(settings, policy)

    async def _call(
        self,
        method: str,
        request: Callable[[WebClient], Any],
        channel: str | None = None,
        ts: str | None = None,
    ) -> Any:
        def run() -> Any:
            return call(method, self.settings, lambda: request(self.client), channel=channel, ts=ts)

        return await asyncio.to_thread(run)

    async def post(
        self, channel: str, text: str, blocks: list[dict[str, Any]], thread_ts: str | None = None
    ) -> Posted:
        answer = await self._call(
            "chat.postMessage",
            lambda c: c.chat_postMessage(
                channel=channel, text=text, blocks=blocks, thread_ts=thread_ts
            ),
            channel,
        )
        return Posted(answer.get("channel") or channel, answer["ts"])

    async def update(self, posted: Posted, text: str, blocks: list[dict[str, Any]]) -> None:
        await self._call(
            "chat.update",
            lambda c: c.chat_update(channel=posted.channel, ts=posted.ts, text=text, blocks=blocks),
            posted.channel,
            posted.ts,
        )

    async def ephemeral(self, channel: str, user: str, text: str) -> None:
        await self._call(
            "chat.postEphemeral",
            lambda c: c.chat_postEphemeral(channel=channel, user=user, text=text),
            channel,
        )

    async def group_members(self, group: str) -> list[str]:
        answer = await self._call(
            "usergroups.users.list", lambda c: c.usergroups_users_list(usergroup=group)
        )
        return list(answer.get("users") or [])


def chat_for(config: Config) -> SlackChat | None:
    """Slack for approvals and notices, when the config gives it a bot token."""
    block = config.integrations.get("slack")
    if not block or not block.get("token") or unset_in(config, ("integrations", "slack")):
        return None
    return SlackChat(SlackSettings.model_validate(block), EgressPolicy(config.egress.allow))
