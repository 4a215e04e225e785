"""The JFrog Artifactory source.

Artifactory puts its webhook secret in `X-JFrog-Event-Auth`: either the secret itself,
or, with "Use secret for payload signing", the hex HMAC-SHA256 of the body (`signed: true`).
The envelope is `{domain, event_type, data, ...}`; release-bundle, distribution and
destination events name their domain `destination`.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from hookwise.artifacts import artifact, host_of, sha256_digest
from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.signatures import require_credential, same, sign
from hookwise.sources import Delivery, SourceKind, meta_of, require_str

AUTH_HEADER = "X-JFrog-Event-Auth"


class ArtifactoryOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    secret: SecretStr | None = None
    signed: bool = False
    allow_unauthenticated: bool = False

    @model_validator(mode="after")
    def _needs_secret(self) -> ArtifactoryOptions:
        require_credential(
            self.secret, "secret", self.allow_unauthenticated, "the webhook's secret token"
        )
        return self


def verify(delivery: Delivery, options: ArtifactoryOptions) -> None:
    if options.secret is None:
        return
    sent = delivery.header(AUTH_HEADER)
    if sent is None:
        raise VerificationError(f"missing {AUTH_HEADER} header")
    secret = options.secret.get_secret_value()
    if options.signed:
        if not same(sent.strip().lower(), sign(secret.encode(), delivery.body)):
            raise VerificationError(
                f"{AUTH_HEADER} is not the HMAC-SHA256 of this body with the configured secret"
            )
    elif not same(sent, secret):
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
    origin = payload.get("jpd_origin") if isinstance(payload.get("jpd_origin"), str) else None
    found = [artifact_of(data, origin)] if "repo_key" in data else []
    meta = meta_of(
        origin=origin,
        subscription=payload.get("subscription_key"),
        sender=payload.get("source"),
    )
    return [Incoming(domain=domain, event_type=event_type, data=data, artifacts=found, meta=meta)]


def artifact_of(data: dict[str, Any], origin: str | None) -> dict[str, Any]:
    """Artifact and Docker events describe one file in one repository."""
    repo, path = data.get("repo_key"), data.get("path")
    url = f"{origin.rstrip('/')}/{repo}/{path}" if origin and repo and path else None
    return artifact(
        registry=host_of(origin),
        repository=repo,
        path=path,
        name=data.get("name"),
        image=data.get("image_name"),
        tag=data.get("tag"),
        digest=sha256_digest(data.get("sha256")),
        size=data.get("size"),
        url=url,
    )


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="artifactory",
            options=ArtifactoryOptions,
            verify=verify,
            normalize=normalize,
            description="JFrog Artifactory: X-JFrog-Event-Auth token or HMAC-SHA256 signature.",
            credential_headers=lambda options: [AUTH_HEADER],
        )
    ]
