"""The JFrog Artifactory source: `X-JFrog-Event-Auth` token, `{domain, event_type, data}`."""

from __future__ import annotations

import hmac
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.sources import Delivery, SourceKind, require_str

AUTH_HEADER = "X-JFrog-Event-Auth"


class ArtifactoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: SecretStr | None = None
    allow_unauthenticated: bool = False

    @model_validator(mode="after")
    def _needs_secret(self) -> ArtifactoryOptions:
        if self.secret is not None and not self.secret.get_secret_value():
            raise ValueError("secret is empty: is its environment variable set to a value?")
        if self.secret is None and not self.allow_unauthenticated:
            raise ValueError(
                "no secret configured: set `secret: ${ENV_VAR}` to the webhook's secret token, "
                "or `allow_unauthenticated: true` to accept anyone's events"
            )
        return self


def verify(delivery: Delivery, options: ArtifactoryOptions) -> None:
    if options.secret is None:
        return
    sent = delivery.header(AUTH_HEADER)
    if sent is None:
        raise VerificationError(f"missing {AUTH_HEADER} header")
    if not hmac.compare_digest(sent.encode(), options.secret.get_secret_value().encode()):
        raise VerificationError(f"{AUTH_HEADER} does not match the configured secret")


def normalize(delivery: Delivery, options: ArtifactoryOptions) -> list[Incoming]:
    payload = delivery.json()
    if not isinstance(payload, dict):
        raise PayloadError("an Artifactory event must be a JSON object")
    # Release-bundle and distribution events name their domain `destination`.
    domain = require_str(payload, "domain", "destination")
    event_type = require_str(payload, "event_type")
    data: Any = payload.get("data")
    if not isinstance(data, dict):
        raise PayloadError("event is missing 'data' (an object with the event's details)")
    return [Incoming(domain=domain, event_type=event_type, data=data)]


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="artifactory",
            options=ArtifactoryOptions,
            verify=verify,
            normalize=normalize,
            description="JFrog Artifactory webhooks, authenticated by X-JFrog-Event-Auth.",
        )
    ]
