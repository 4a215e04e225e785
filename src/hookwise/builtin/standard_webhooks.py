"""The Standard Webhooks source (https://www.standardwebhooks.com), as Svix and others send.

Every delivery carries `webhook-id`, `webhook-timestamp` (unix seconds) and
`webhook-signature` (or the same as `svix-id`, `svix-timestamp`, `svix-signature`,
which Svix sends by default and its libraries accept), a space-separated list of
`v1,<base64 HMAC-SHA256>` over
`{id}.{timestamp}.{body}`; senders list several while rotating secrets, and any one
matching is enough. Signing the timestamp lets a receiver refuse replays: deliveries
older or newer than `tolerance` are refused even with a good signature.

Secrets are handed out as `whsec_<base64>`, the key being the decoded bytes (with or
without the `=` padding, as the reference library takes them); a secret
without that prefix is used as-is (its UTF-8 bytes), like the reference libraries'
`from_raw`. The payload convention is `{"type": "invoice.paid", "timestamp", "data"}`:
`type` gives domain and event type as in the CloudEvents source, `data` is what rules
see, and `webhook-id` identifies the delivery for deduplication.
"""

from __future__ import annotations

import base64
import binascii
import time

from pydantic import Field, SecretStr, model_validator

from hookwise.durations import Duration
from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.signatures import require_credential, same, sign, unix_seconds
from hookwise.sources import (
    Delivery,
    SourceKind,
    TypeRule,
    meta_of,
    parse_json,
    require_str,
)

HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
SVIX_HEADERS = ("svix-id", "svix-timestamp", "svix-signature")
PREFIX = "whsec_"


def signing_key(secret: str) -> bytes:
    """`whsec_<base64>` → the decoded bytes; anything else → its UTF-8 bytes."""
    if not secret.startswith(PREFIX):
        return secret.encode()
    try:
        encoded = secret.removeprefix(PREFIX)
        return base64.b64decode(encoded + "=" * (-len(encoded) % 4), validate=True)
    except binascii.Error as exc:
        raise ValueError(f"the part of the secret after {PREFIX} is not valid base64") from exc


class StandardWebhooksOptions(TypeRule):
    secret: SecretStr | None = Field(
        default=None,
        description="The endpoint's signing secret, `whsec_<base64>` (a secret without the "
        "prefix is used as-is); write it as `${ENV_VAR}`.",
    )
    tolerance: Duration = Field(
        default=300.0,
        description="How far webhook-timestamp may be from now, either way, e.g. `5m`.",
    )
    allow_unauthenticated: bool = Field(
        default=False, description="Accept unsigned deliveries from anyone."
    )

    @model_validator(mode="after")
    def _needs_secret(self) -> StandardWebhooksOptions:
        require_credential(
            self.secret, "secret", self.allow_unauthenticated, "the endpoint's whsec_... secret"
        )
        if self.secret is not None and not signing_key(self.secret.get_secret_value()):
            raise ValueError("secret decodes to an empty key")
        return self


def header_names(delivery: Delivery) -> tuple[str, str, str]:
    """The `svix-*` set when the delivery uses it, else the standard `webhook-*` one."""
    if delivery.header("webhook-id") is None and delivery.header("svix-id") is not None:
        return SVIX_HEADERS
    return HEADERS


def verify(delivery: Delivery, options: StandardWebhooksOptions) -> None:
    if options.secret is None:
        return
    names = header_names(delivery)
    values = [(delivery.header(name) or "").strip() for name in names]
    msg_id, stamp, signatures = values
    missing = [name for name, value in zip(names, values, strict=True) if not value]
    if missing:
        raise VerificationError(
            f"missing {', '.join(missing)}: Standard Webhooks deliveries carry webhook-id, "
            "webhook-timestamp and webhook-signature headers"
        )
    if not unix_seconds(stamp):
        raise VerificationError(f"{names[1]} must be unix seconds, got {stamp[:40]!r}")
    skew = time.time() - int(stamp)
    if abs(skew) > options.tolerance:
        when = "old" if skew > 0 else "in the future"
        raise VerificationError(
            f"{names[1]} is {abs(skew):.0f}s {when}, beyond the {options.tolerance:g}s "
            "tolerance: a replayed delivery, or a clock to fix (or raise `tolerance`)"
        )
    pairs = (entry.partition(",") for entry in signatures.split())
    sent = [signature for version, _, signature in pairs if version == "v1"]
    if not sent:
        raise VerificationError(f"{names[2]} has no `v1,<base64>` signature to check")
    key = signing_key(options.secret.get_secret_value())
    expected = sign(key, f"{msg_id}.{stamp}.".encode() + delivery.body, "sha256", "base64")
    if not any([same(signature, expected) for signature in sent]):
        raise VerificationError(
            f"no v1 signature in {names[2]} matches this body, id and timestamp with the "
            "configured secret; check that it is this endpoint's whsec_... secret"
        )


def normalize(delivery: Delivery, options: StandardWebhooksOptions) -> list[Incoming]:
    payload = parse_json(delivery.body)
    if not isinstance(payload, dict):
        raise PayloadError(
            'a Standard Webhooks payload must be a JSON object like {"type": "invoice.paid", '
            '"data": {...}}'
        )
    domain, event_type = options.split(require_str(payload, "type"))
    return [
        Incoming(
            domain=domain,
            event_type=event_type,
            data=payload.get("data", payload),
            delivery_id=delivery.header(header_names(delivery)[0]) or None,
            meta=meta_of(occurred_at=payload.get("timestamp")),
        )
    ]


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="standard-webhooks",
            options=StandardWebhooksOptions,
            verify=verify,
            normalize=normalize,
            description="Standard Webhooks (Svix and others): webhook-signature HMAC-SHA256 "
            "with whsec_ secret, timestamp tolerance.",
            credential_headers=lambda options: [*HEADERS, *SVIX_HEADERS],
        )
    ]
