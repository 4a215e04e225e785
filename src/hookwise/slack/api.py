"""Slack's Web API as hookwise calls it: guarded clients, and every failure classified.

Failures follow Slack's contract: HTTP 429 retries after its Retry-After; 5xx,
connection errors and the `ok: false` errors Slack calls transient retry; every other
`ok: false` error (bad token, missing scope, unknown channel, …) is permanent, with a
message that says what to fix.
"""

from __future__ import annotations

import http.client
import logging
from collections.abc import Callable
from typing import Any
from urllib.parse import urlsplit

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse
from slack_sdk.webhook import WebhookClient

from hookwise import secrets
from hookwise.egress import EgressPolicy, GuardedWebClient, GuardedWebhookClient
from hookwise.errors import EgressDenied, PermanentFailure, RetryLater
from hookwise.retry import retry_after
from hookwise.secrets import excerpt
from hookwise.slack.settings import SlackSettings

# slack_sdk logs failed requests itself, webhook URL included; every failure is reported
# by hookwise instead, classified and with secrets masked.
SDK_LOG = logging.getLogger("hookwise.slack.sdk")
SDK_LOG.setLevel(logging.CRITICAL)

RETRYABLE = {
    "fatal_error",
    "internal_error",
    "service_unavailable",
    "request_timeout",
    "ratelimited",
    "rate_limited",
}

# `ok: false` errors whose fix is known; `{channel}` and `{ts}` are filled in.
HINTS = {
    "invalid_auth": "the token is not valid: check integrations.slack.token (a bot token, xoxb-…)",
    "not_authed": "no token reached Slack: check integrations.slack.token",
    "account_inactive": "the token's user or app is deactivated: reinstall the app",
    "token_revoked": "the token was revoked: reinstall the app and update integrations.slack.token",
    "token_expired": "the token expired (token rotation is on): issue a new one",
    "no_permission": "the token may not do this in this workspace: check the app's permissions",
    "ekm_access_denied": "an administrator has suspended this app's access (EKM)",
    "channel_not_found": (
        "Slack knows no channel {channel} that the app can see: check the name or ID, "
        "and invite the app to a private channel"
    ),
    "not_in_channel": (
        "the app is not a member of {channel}: invite it (/invite @app), or grant the "
        "chat:write.public scope to post in public channels without joining"
    ),
    "is_archived": "{channel} is archived: unarchive it or post elsewhere",
    "msg_too_long": "the message text is longer than Slack allows (40,000 characters)",
    "no_text": "the message has neither text nor blocks",
    "too_many_blocks": "a message may have at most 50 blocks",
    "message_not_found": (
        "there is no message with ts {ts} in {channel}: pass the channel ID and ts from "
        "slack.message's output (steps.<id>.output.channel / .ts)"
    ),
    "cant_update_message": (
        "the message at ts {ts} cannot be edited with this token: only messages the same "
        "app posted can be updated"
    ),
    "edit_window_closed": "the workspace no longer allows editing the message at ts {ts}",
    "restricted_action": "a workspace preference forbids the app to post in {channel}",
}
BLOCK_ERRORS = {"invalid_blocks", "invalid_blocks_format"}


def web_client(settings: SlackSettings, policy: EgressPolicy) -> WebClient:
    """slack-sdk's client, sending through the egress guard, retrying nothing itself."""
    assert settings.token is not None
    return GuardedWebClient(
        policy=policy,
        token=settings.token.get_secret_value(),
        base_url=settings.base_url,
        timeout=settings.timeout,
        logger=SDK_LOG,
        retry_handlers=[],
    )


def webhook_client(settings: SlackSettings, policy: EgressPolicy) -> WebhookClient:
    assert settings.webhook_url is not None
    return GuardedWebhookClient(
        settings.webhook_url.get_secret_value(),
        policy=policy,
        timeout=int(max(1, settings.timeout)),
        logger=SDK_LOG,
        retry_handlers=[],
    )


def header(headers: Any, name: str) -> str | None:
    for key, value in dict(headers or {}).items():
        if key.lower() == name:
            return str(value[0] if isinstance(value, list) else value)
    return None


def api_failure(
    method: str, response: SlackResponse, channel: str | None, ts: str | None
) -> Exception:
    """Slack's answer, classified: what failed, Slack's words, and what to check."""
    status = response.status_code
    data = response.data if isinstance(response.data, dict) else {}
    error = str(data.get("error") or "unknown_error")
    where = f"Slack {method}" + (f" to {channel}" if channel and method != "chat.update" else "")
    if status == 429:
        delay = retry_after(header(response.headers, "retry-after"))
        after = f"; retrying after {delay:g}s" if delay is not None else ""
        return RetryLater(f"{where} was rate-limited (HTTP 429){after}", delay=delay)
    if status >= 500:
        return RetryLater(f"{where} failed: HTTP {status} from Slack ({excerpt(error, 200)})")
    if status != 200 or "non-JSON" in error:
        return PermanentFailure(
            f"{where} answered HTTP {status} ({excerpt(error, 200)}): is "
            f"integrations.slack.base_url the Slack Web API (https://slack.com/api/)?"
        )
    if error in RETRYABLE:
        return RetryLater(f"{where} failed ({error}): a transient Slack error")
    if error == "missing_scope":
        needed = data.get("needed") or "?"
        provided = data.get("provided") or "none"
        return PermanentFailure(
            f"{where} failed (missing_scope): the token lacks the {needed} scope "
            f"(it has {provided}); add {needed} under OAuth & Permissions, reinstall the app, "
            f"and update the token"
        )
    if error in BLOCK_ERRORS:
        details = data.get("errors") or (data.get("response_metadata") or {}).get("messages")
        said = "; ".join(str(d) for d in (details or [])[:3]) or "no details"
        return PermanentFailure(
            f"{where} failed ({error}): Slack refused the blocks: {excerpt(said, 500)}; "
            f"try them in Block Kit Builder"
        )
    hint = HINTS.get(error)
    if hint is None:
        return PermanentFailure(
            f"{where} failed ({excerpt(error, 200)}); see https://api.slack.com/methods/{method}#errors"
        )
    return PermanentFailure(
        f"{where} failed ({error}): {hint.format(channel=channel or '?', ts=ts or '?')}"
    )


def call(
    method: str,
    settings: SlackSettings,
    request: Callable[[], Any],
    channel: str | None = None,
    ts: str | None = None,
) -> Any:
    """Run one request; every failure becomes RetryLater or PermanentFailure, secrets masked."""
    try:
        return request()
    except SlackApiError as exc:
        failure = api_failure(method, exc.response, channel, ts)
    except EgressDenied as exc:
        failure = PermanentFailure(f"Slack {method}: {exc}")
    except SlackClientError as exc:  # refused before sending (e.g. a bad proxy setting)
        failure = PermanentFailure(f"Slack {method} could not be sent: {exc}")
    except (OSError, http.client.HTTPException) as exc:  # URLError, timeouts, refused, reset
        reason = getattr(exc, "reason", None) or exc
        if isinstance(reason, TimeoutError):
            failure = RetryLater(f"Slack {method} timed out after {settings.timeout:g}s")
        else:
            webhook = settings.webhook_url.get_secret_value() if settings.webhook_url else ""
            host = urlsplit(settings.base_url if settings.token else webhook).hostname
            failure = RetryLater(f"Slack {method} could not reach {host}: {reason}")
    failure.args = (secrets.mask(str(failure)),)
    raise failure
