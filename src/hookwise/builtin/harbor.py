"""The Harbor source.

A Harbor webhook policy (project → Webhooks, notify type HTTP) posts one event per
request, in the payload format chosen for the policy:

- Default: `{type, occur_at, operator, event_data}`, `type` like `PUSH_ARTIFACT`;
- CloudEvents, structured mode: `{specversion, id, source, type, time, data}` plus the
  extensions `operator` and `requestid`, `type` like `harbor.artifact.pushed`.

Both arrive on the same endpoint and are told apart by content (a `specversion` key),
not by Content-Type, so a proxy that rewrites headers cannot change how one is read.

One naming serves both formats, Harbor's own CloudEvents types without `harbor.`: the
first segment is the domain, the rest the event type (`harbor.replication.status.changed`
→ `replication` / `status.changed`); Default types map to those CloudEvents types. A type
hookwise does not know yet passes through instead of failing: a dotted CloudEvents type
follows the same rule (`harbor.artifact.labeled` → `artifact` / `labeled`); an unknown
Default type becomes domain `harbor`, event type the type lower-cased (`UPLOAD_CHART` →
`harbor` / `upload_chart`), since guessing a domain from its words would be guesswork.

Harbor sends the policy's "auth header" verbatim as `Authorization`.

Deduplication: a CloudEvents `id` is unique per event, and Harbor retries a failed
delivery with the same payload. Default payloads carry no id, so their key is the SHA-256
of the whole payload as canonical JSON: a retry is a duplicate, while any difference
(another tag, digest, second, operator or scan result) makes a new event. A key built
from chosen fields would merge events differing only outside them. `occur_at` counts
whole seconds, so two identical events in the same second are indistinguishable anyway.
"""

from __future__ import annotations

import hashlib
import json
from typing import Any

from pydantic import BaseModel, ConfigDict, SecretStr, model_validator

from hookwise.artifacts import artifact, host_of, sha256_digest
from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.signatures import require_credential, same
from hookwise.sources import Delivery, SourceKind, cloudevent_meta, meta_of, require_str

AUTH_HEADER = "Authorization"

CLOUDEVENTS_TYPES = {
    "PUSH_ARTIFACT": "harbor.artifact.pushed",
    "PULL_ARTIFACT": "harbor.artifact.pulled",
    "DELETE_ARTIFACT": "harbor.artifact.deleted",
    "SCANNING_COMPLETED": "harbor.scan.completed",
    "SCANNING_STOPPED": "harbor.scan.stopped",
    "SCANNING_FAILED": "harbor.scan.failed",
    "QUOTA_EXCEED": "harbor.quota.exceeded",
    "QUOTA_WARNING": "harbor.quota.warned",
    "REPLICATION": "harbor.replication.status.changed",
    "TAG_RETENTION": "harbor.tag_retention.finished",
}


class HarborOptions(BaseModel):
    model_config = ConfigDict(extra="forbid")

    auth_header: SecretStr | None = None
    allow_unauthenticated: bool = False

    @model_validator(mode="after")
    def _needs_auth_header(self) -> HarborOptions:
        require_credential(
            self.auth_header,
            "auth_header",
            self.allow_unauthenticated,
            "the auth header set on the Harbor webhook",
        )
        return self


def verify(delivery: Delivery, options: HarborOptions) -> None:
    if options.auth_header is None:
        return
    sent = delivery.header(AUTH_HEADER)
    if sent is None:
        raise VerificationError(f"missing {AUTH_HEADER} header (the Harbor webhook's auth header)")
    if not same(sent, options.auth_header.get_secret_value()):
        raise VerificationError(f"{AUTH_HEADER} header does not match the configured auth_header")


def normalize(delivery: Delivery, options: HarborOptions) -> list[Incoming]:
    payload = delivery.json()
    if not isinstance(payload, dict):
        raise PayloadError("a Harbor event must be a JSON object")
    return [from_cloudevent(payload) if "specversion" in payload else from_default(payload)]


def from_cloudevent(payload: dict[str, Any]) -> Incoming:
    require_str(payload, "specversion")
    event_id = require_str(payload, "id")
    source = require_str(payload, "source")
    domain, event_type = event_name(require_str(payload, "type"))
    data = payload.get("data")
    return Incoming(
        domain=domain,
        event_type=event_type,
        data=data,
        delivery_id=event_id,
        dedupe_key=f"{source}/{event_id}",
        artifacts=artifacts_of(data),
        meta=cloudevent_meta(payload),
    )


def from_default(payload: dict[str, Any]) -> Incoming:
    domain, event_type = event_name(require_str(payload, "type"))
    data = payload.get("event_data")
    if not isinstance(data, dict):
        raise PayloadError(
            "event is missing 'event_data' (an object with the event's details), "
            "or 'specversion' if it is a CloudEvent"
        )
    return Incoming(
        domain=domain,
        event_type=event_type,
        data=data,
        dedupe_key=content_key(payload),
        artifacts=artifacts_of(data),
        meta=meta_of(operator=payload.get("operator"), occurred_at=payload.get("occur_at")),
    )


def event_name(harbor_type: str) -> tuple[str, str]:
    """(domain, event_type) for a Default or CloudEvents type; see the module docstring."""
    name = CLOUDEVENTS_TYPES.get(harbor_type, harbor_type).removeprefix("harbor.")
    domain, _, event_type = name.partition(".")
    if domain and event_type:
        return domain, event_type
    return "harbor", (name or harbor_type).lower()


def content_key(payload: dict[str, Any]) -> str:
    """The same for the same payload, however its keys are ordered or spaced."""
    canonical = json.dumps(payload, sort_keys=True, separators=(",", ":"))
    return f"sha256:{hashlib.sha256(canonical.encode()).hexdigest()}"


def artifacts_of(data: Any) -> list[dict[str, Any]]:
    """One per entry of `resources`; replication and retention events have none."""
    if not isinstance(data, dict) or not isinstance(data.get("resources"), list):
        return []
    repository = data.get("repository")
    if not isinstance(repository, dict):
        repository = {}
    return [artifact_of(r, repository) for r in data["resources"] if isinstance(r, dict)]


def artifact_of(resource: dict[str, Any], repository: dict[str, Any]) -> dict[str, Any]:
    url = text(resource, "resource_url")
    tag = text(resource, "tag")
    return artifact(
        registry=host_of(url),
        repository=text(repository, "repo_full_name"),
        name=text(repository, "name"),
        image=text(repository, "repo_full_name"),
        # An untagged push names its digest as the tag; a real tag never contains ":".
        tag=tag if tag and ":" not in tag else None,
        digest=sha256_digest(resource.get("digest")),
        size=resource.get("size"),
        url=url,
    )


def text(mapping: dict[str, Any], key: str) -> str | None:
    value = mapping.get(key)
    return value if isinstance(value, str) and value else None


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="harbor",
            options=HarborOptions,
            verify=verify,
            normalize=normalize,
            description="Harbor: Default or CloudEvents payloads, auth header as Authorization.",
            credential_headers=lambda options: [AUTH_HEADER],
        )
    ]
