"""`integrations.slack`: where and as whom hookwise talks to Slack."""

from __future__ import annotations

import re

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hookwise.durations import Duration
from hookwise.validation import http_url

DEFAULT_BASE_URL = "https://slack.com/api/"
# Channel, group (private) and direct-message IDs; names need a lookup Slack's history API lacks.
CHANNEL_ID = re.compile(r"^[CGD][A-Z0-9]{2,}$")
TS = re.compile(r"^\d+\.\d+$")


class SlackSettings(BaseModel):
    """Where and as whom to post: a bot token for the Web API, or an incoming webhook."""

    # Errors must not quote a mistyped token or webhook URL back into logs.
    model_config = ConfigDict(extra="forbid", hide_input_in_errors=True)

    token: SecretStr | None = Field(
        default=None,
        description="Bot token (xoxb-…) with the chat:write scope; posts, threads and updates.",
    )
    webhook_url: SecretStr | None = Field(
        default=None,
        description=(
            "Incoming-webhook URL (https://hooks.slack.com/services/…); used when no token "
            "is set. Posts to the webhook's channel only: no threads, no updates."
        ),
    )
    base_url: str = Field(
        default=DEFAULT_BASE_URL, description="Web API root; change it only for a proxy or test."
    )
    default_channel: str | None = Field(
        default=None, description="Channel for slack.message when the action names none."
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Per request, e.g. 10s.")
    signing_secret: SecretStr | None = Field(
        default=None,
        description=(
            "The app's signing secret: verifies approval clicks (/slack/interactions) and "
            "the /hookwise command (/slack/commands). Without it both endpoints answer 404."
        ),
    )
    operators: list[str] = Field(
        default_factory=list,
        description=(
            "Slack user ids (U…) allowed to run /hookwise commands that change something "
            "(replay, approve, reject); reading commands are open to the workspace."
        ),
    )

    @field_validator("token")
    @classmethod
    def _token_shape(cls, token: SecretStr | None) -> SecretStr | None:
        if token is None:
            return None
        value = token.get_secret_value()
        if not value.strip():
            raise ValueError("token is empty")
        if not value.startswith("xox") or any(c.isspace() for c in value):
            raise ValueError("token must be a Slack token: xoxb-… for a bot, xoxp-… for a user")
        return token

    @field_validator("webhook_url")
    @classmethod
    def _webhook_shape(cls, url: SecretStr | None) -> SecretStr | None:
        if url is not None:
            http_url(url.get_secret_value(), "webhook_url")  # the message never echoes it
        return url

    @field_validator("base_url")
    @classmethod
    def _base_url_shape(cls, url: str) -> str:
        # slack_sdk joins base and method with urljoin: without the slash the last segment is lost
        http_url(url, "base_url", root=True)
        return url if url.endswith("/") else url + "/"

    @field_validator("default_channel")
    @classmethod
    def _channel_shape(cls, channel: str | None) -> str | None:
        if channel is not None and not channel.strip("# "):
            raise ValueError("default_channel is empty")
        return channel

    @model_validator(mode="after")
    def _one_way_in(self) -> SlackSettings:
        if self.token is None and self.webhook_url is None:
            raise ValueError("set `token` (a bot token) or `webhook_url` (an incoming webhook)")
        return self
