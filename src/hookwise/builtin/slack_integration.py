"""The `slack` integration: one workspace connection for ChatOps and the Slack actions."""

from __future__ import annotations

from hookwise.actions import IntegrationSpec
from hookwise.hookspecs import hookimpl
from hookwise.slack import SlackSettings


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
