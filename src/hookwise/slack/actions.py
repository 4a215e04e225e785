"""`slack.message` posts (or replies in a thread), `slack.update` edits; and the `slack`
integration they share with ChatOps: a built-in plugin, registered like any other.

Settings (`integrations.slack`): a bot `token` for the Web API and/or an incoming
`webhook_url`. With a token, messages go through `chat.postMessage` and can be threaded
and updated; with only a webhook, they go to the webhook's fixed channel, and Slack
answers without a `ts`, so such messages cannot be replied to or updated.

Outputs (JSON, for later actions as `steps.<id>.output`):

- `slack.message` → `{"channel": "C0123", "ts": "1700000000.000100", "thread_ts": null,
  "via": "web_api"}`; `channel` is the channel ID Slack answered with (what `slack.update`
  needs), `thread_ts` the parent's ts for a reply. Through a webhook:
  `{"channel": null, "ts": null, "thread_ts": null, "via": "webhook"}`.
- `slack.update` → `{"channel": "C0123", "ts": "1700000000.000100"}`.

Failures follow Slack's contract: HTTP 429 retries after its Retry-After; 5xx, connection
errors and the `ok: false` errors Slack calls transient (`internal_error`,
`service_unavailable`, …) retry; every other `ok: false` error (bad token, missing scope,
unknown channel, invalid blocks, …) is permanent. slack_sdk's own retry handlers are
switched off so hookwise's retry policy alone decides.

Slack cannot deduplicate `chat.postMessage`, so each message carries the action's
idempotency key in its metadata; a retry first looks for a message with that key (when
the channel is given by ID and the token may read history) and returns it instead of
posting twice.
"""

from __future__ import annotations

import http.client
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.webhook import WebhookResponse

from hookwise.actions import ActionContext, ActionSpec, IntegrationSpec
from hookwise.errors import PermanentFailure, RetryLater
from hookwise.event import Event
from hookwise.hookspecs import hookimpl
from hookwise.retry import retry_after
from hookwise.secrets import excerpt
from hookwise.slack import api
from hookwise.slack.settings import CHANNEL_ID, TS, SlackSettings
from hookwise.slack.text import artifact_label, cut, escape, short_digest, summary

METADATA_TYPE = "hookwise_action"
CLOCK_SKEW = 300.0

WEBHOOK_HINTS = {
    "invalid_payload": "Slack could not read the message: check `blocks`",
    "no_text": "the message has neither text nor blocks",
    "invalid_token": "the webhook URL is not valid: check integrations.slack.webhook_url",
    "no_service": (
        "the webhook no longer exists (removed, or the app was uninstalled): create a new "
        "incoming webhook and update integrations.slack.webhook_url"
    ),
    "no_active_hooks": "the webhook is disabled: enable it in the app's settings",
    "action_prohibited": "an administrator has restricted posting to this webhook's channel",
    "channel_not_found": "the webhook's channel is gone: create a new webhook",
    "channel_is_archived": "the webhook's channel is archived: unarchive it",
    "posting_to_general_channel_denied": "only admins may post in the webhook's channel",
    "too_many_attachments": "a message may have at most 100 attachments",
}


def _blocks(value: Any) -> Any:
    """Accept Block Kit Builder's JSON too: a string, or an object with `blocks`."""
    if isinstance(value, str):
        try:
            value = json.loads(value)
        except ValueError as exc:
            raise ValueError(f"blocks is a string but not JSON: {exc}") from None
    if isinstance(value, dict) and "blocks" in value:
        value = value["blocks"]
    return value


def _ts(value: Any) -> Any:
    if value == "":
        return None
    if isinstance(value, int | float) and not isinstance(value, bool):
        raise ValueError("quote a Slack ts ('1700000000.000100'): as a number it loses digits")
    if isinstance(value, str) and not TS.match(value):
        raise ValueError(f"a Slack ts looks like 1700000000.000100, got {value!r}")
    return value


class MessageParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str | None = Field(
        default=None,
        description="Channel ID (C0123…) or name (#deploys); default: the default_channel setting.",
    )
    text: str | None = Field(
        default=None,
        description="Message text (mrkdwn); default: a one-line summary of the event.",
    )
    blocks: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "Block Kit blocks. Left out: a layout showing the event and its artifact. "
            "[]: the text alone."
        ),
    )
    thread_ts: str | None = Field(
        default=None,
        description="Reply in this message's thread, e.g. {{ steps.notify.output.ts }}.",
    )
    reply_broadcast: bool = Field(
        default=False, description="Show a threaded reply in the channel too."
    )

    _parse_blocks = field_validator("blocks", mode="before")(_blocks)
    _check_ts = field_validator("thread_ts", mode="before")(_ts)


class UpdateParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(
        description="Channel ID of the message: {{ steps.notify.output.channel }}."
    )
    ts: str = Field(description="The message's ts: {{ steps.notify.output.ts }}.")
    text: str | None = Field(default=None, description="New text (mrkdwn).")
    blocks: list[dict[str, Any]] | None = Field(
        default=None,
        description=(
            "New Block Kit blocks. Left out: the event layout with the new text. "
            "[]: remove the blocks."
        ),
    )

    _parse_blocks = field_validator("blocks", mode="before")(_blocks)
    _check_ts = field_validator("ts", mode="before")(_ts)

    @model_validator(mode="before")
    @classmethod
    def _something_new(cls, data: Any) -> Any:
        # Before the fields, so `hookwise check` says so even when `ts` is a template.
        if isinstance(data, dict) and data.get("text") is None and data.get("blocks") is None:
            raise ValueError("give `text`, `blocks` or both")
        return data


# ---------------------------------------------------------------------------------------
# The default layout


def default_blocks(text: str, event: Event, rule: str) -> list[dict[str, Any]]:
    """The text, then what happened, where, to which artifact (linked when it has a URL)."""
    artifact = event.as_dict()["artifact"]
    facts: list[tuple[str, str]] = [
        ("Event", f"{event.source} · {event.domain} · {event.event_type}")
    ]
    if artifact:
        if artifact.get("repository"):
            facts.append(("Repository", escape(artifact["repository"])))
        label = artifact_label(artifact)
        url = artifact.get("url")
        if label and isinstance(url, str) and url.startswith(("http://", "https://")):
            link = url.replace("|", "%7C").replace(">", "%3E")
            facts.append(("Artifact", f"<{link}|{escape(label)}>"))
        elif label:
            facts.append(("Artifact", f"`{escape(label)}`"))
        digest = short_digest(artifact.get("digest"))
        if digest and artifact.get("tag"):  # without a tag, the label shows the digest already
            facts.append(("Digest", f"`{escape(digest)}`"))
    elif isinstance(event.data, dict):
        scalars = [(k, v) for k, v in event.data.items() if isinstance(v, str | int | float)]
        facts.extend((escape(key), escape(value)) for key, value in scalars[:5])
    fields = [
        {"type": "mrkdwn", "text": cut(f"*{label}*\n{value}", 2000)} for label, value in facts
    ]
    return [
        {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}},
        {"type": "section", "fields": fields[:10]},
        {
            "type": "context",
            "elements": [
                {
                    "type": "mrkdwn",
                    "text": cut(f"hookwise · rule `{escape(rule)}` · event `{event.id}`", 2000),
                }
            ],
        },
    ]


def _content(
    text: str | None, blocks: list[dict[str, Any]] | None, context: ActionContext
) -> tuple[str, list[dict[str, Any]] | None]:
    """The text (never empty: it is the notification) and the blocks to send (None: none)."""
    body = text if text and text.strip() else summary(context.event)
    if blocks is None:
        return body, default_blocks(body, context.event, context.rule)
    return body, blocks


# ---------------------------------------------------------------------------------------
# Talking to Slack


def _earlier_post(
    client: WebClient,
    settings: SlackSettings,
    channel: str,
    thread_ts: str | None,
    context: ActionContext,
) -> dict[str, Any] | None:
    """A message an earlier attempt of this action posted before its answer got lost."""
    if not CHANNEL_ID.match(channel):
        context.log.info(
            f"retry: cannot look for an earlier post in {channel} by name (history needs the "
            f"channel ID); posting again"
        )
        return None
    # From a little before the event arrived: Slack's clock and ours may differ a bit.
    since = f"{max(0.0, context.event.received_at - CLOCK_SKEW):.6f}"
    try:
        if thread_ts:
            answer = client.conversations_replies(
                channel=channel, ts=thread_ts, oldest=since, include_all_metadata=True, limit=200
            )
        else:
            answer = client.conversations_history(
                channel=channel, oldest=since, include_all_metadata=True, limit=200
            )
    except (SlackApiError, SlackClientError, OSError, http.client.HTTPException) as exc:
        reason = exc.response.get("error") if isinstance(exc, SlackApiError) else exc
        message = f"retry: could not look for an earlier post ({reason}); posting again"
        context.log.warning(message)
        return None
    for message in answer.get("messages") or []:
        metadata = message.get("metadata") or {}
        payload = metadata.get("event_payload") or {}
        ours = metadata.get("event_type") == METADATA_TYPE
        if (
            ours
            and payload.get("key") == context.idempotency_key
            and message.get("ts") != thread_ts
        ):
            return dict(message)
    return None


def post_message(params: MessageParams, context: ActionContext) -> dict[str, Any]:
    settings: SlackSettings = context.settings
    text, blocks = _content(params.text, params.blocks, context)
    if settings.token is None:
        return _post_webhook(params, settings, text, blocks, context)
    channel = params.channel or settings.default_channel
    if not channel:
        raise PermanentFailure(
            "slack.message needs a channel: give `channel`, or set "
            "integrations.slack.default_channel"
        )
    client = api.web_client(settings, context.egress)
    if context.resumed:
        earlier = _earlier_post(client, settings, channel, params.thread_ts, context)
        if earlier is not None:
            context.log.info(f"an earlier attempt already posted ts {earlier.get('ts')}")
            return _message_output(channel, earlier, params.thread_ts)
    metadata = {
        "event_type": METADATA_TYPE,
        "event_payload": {
            "key": context.idempotency_key,
            "rule": context.rule,
            "event_id": context.event.id,
        },
    }
    answer = api.call(
        "chat.postMessage",
        settings,
        lambda: client.chat_postMessage(
            channel=channel,
            text=text,
            blocks=blocks or None,
            thread_ts=params.thread_ts,
            reply_broadcast=params.reply_broadcast or None,
            metadata=metadata,
        ),
        channel=channel,
    )
    output = {
        "channel": answer.get("channel") or channel,
        "ts": answer.get("ts"),
        "thread_ts": params.thread_ts,
        "via": "web_api",
    }
    where = f"thread {params.thread_ts} in " if params.thread_ts else ""
    context.log.info(f"posted to {where}{channel} ({output['channel']}) as ts {output['ts']}")
    return output


def _message_output(
    channel: str, message: dict[str, Any], thread_ts: str | None = None
) -> dict[str, Any]:
    return {
        "channel": channel,
        "ts": message.get("ts"),
        "thread_ts": thread_ts or message.get("thread_ts"),
        "via": "web_api",
    }


def _post_webhook(
    params: MessageParams,
    settings: SlackSettings,
    text: str,
    blocks: list[dict[str, Any]] | None,
    context: ActionContext,
) -> dict[str, Any]:
    if params.thread_ts:
        raise PermanentFailure(
            "slack.message cannot reply in a thread through an incoming webhook (it has no "
            "thread_ts and returns no ts): set integrations.slack.token to a bot token"
        )
    if params.channel:
        context.log.warning(
            f"channel {params.channel} ignored: an incoming webhook posts to the channel "
            f"chosen when it was created"
        )
    client = api.webhook_client(settings, context.egress)
    response = api.call(
        "incoming webhook", settings, lambda: client.send(text=text, blocks=blocks or None)
    )
    _check_webhook(response, settings)
    context.log.info("posted through the incoming webhook")
    return {"channel": None, "ts": None, "thread_ts": None, "via": "webhook"}


def _check_webhook(response: WebhookResponse, settings: SlackSettings) -> None:
    """Webhooks answer `ok`, or an HTTP error with a one-word reason."""
    status, body = response.status_code, (response.body or "").strip()
    if status == 200 and body == "ok":
        return
    said = excerpt(body, 200) or "no reason given"
    where = "Slack incoming webhook"
    if status == 429:
        delay = retry_after(api.header(response.headers, "retry-after"))
        after = f"; retrying after {delay:g}s" if delay is not None else ""
        raise RetryLater(f"{where} was rate-limited (HTTP 429){after}", delay=delay)
    if status >= 500:
        raise RetryLater(f"{where} failed: HTTP {status} ({said})")
    hint = WEBHOOK_HINTS.get(body, "check integrations.slack.webhook_url and the message")
    raise PermanentFailure(f"{where} refused the message: HTTP {status} ({said}): {hint}")


def update_message(params: UpdateParams, context: ActionContext) -> dict[str, Any]:
    settings: SlackSettings = context.settings
    if settings.token is None:
        raise PermanentFailure(
            "slack.update needs integrations.slack.token: incoming webhooks cannot edit messages"
        )
    text, blocks = _content(params.text, params.blocks, context)
    client = api.web_client(settings, context.egress)
    answer = api.call(
        "chat.update",
        settings,
        lambda: client.chat_update(channel=params.channel, ts=params.ts, text=text, blocks=blocks),
        channel=params.channel,
        ts=params.ts,
    )
    output = {
        "channel": answer.get("channel") or params.channel,
        "ts": answer.get("ts") or params.ts,
    }
    context.log.info(f"updated ts {output['ts']} in {output['channel']}")
    return output


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="slack.message",
            params=MessageParams,
            run=post_message,
            description="Post a Slack message or threaded reply; output has channel and ts.",
            integration="slack",
        ),
        ActionSpec(
            name="slack.update",
            params=UpdateParams,
            run=update_message,
            description="Edit a message posted by slack.message (chat.update).",
            integration="slack",
        ),
    ]


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [
        IntegrationSpec(
            "slack",
            SlackSettings,
            "Slack workspace: a bot token (Web API) and/or an incoming-webhook URL; "
            "signing_secret for approvals and the /hookwise command.",
        )
    ]
