"""The generic source: any JSON sender, described by configuration instead of code.

Most webhook senders (GitHub, GitLab, in-house services) differ only in where they put
three things: what happened (domain and event type), the delivery's id, and the proof
that they sent it. This kind takes each from a configured dotted path into the body, a
header or a fixed value, and checks either an HMAC of the raw body or a shared token,
so a new sender needs a few lines of YAML rather than a plugin. GitHub, for example:

    github:
      kind: generic
      domain: {value: github}
      event_type: {header: X-GitHub-Event}
      delivery_id: {header: X-GitHub-Delivery}
      hmac: {header: X-Hub-Signature-256, secret: "${GITHUB_WEBHOOK_SECRET}", prefix: "sha256="}

"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, SecretStr, model_validator

from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.paths import MISSING, lookup
from hookwise.signatures import (
    Algorithm,
    Encoding,
    TokenAuth,
    check_token,
    not_empty,
    same,
    sign,
    token_headers,
)
from hookwise.sources import Delivery, SourceKind, parse_json


class Locate(BaseModel):
    """Where one value of the event comes from: exactly one of `path`, `header`, `value`."""

    model_config = ConfigDict(extra="forbid")

    path: str | None = Field(
        default=None,
        description="Dotted path into the JSON body, e.g. `action` or `commits.0.id`.",
    )
    header: str | None = Field(default=None, description="HTTP header, e.g. `X-GitHub-Event`.")
    value: str | None = Field(default=None, description="A fixed value.")
    default: str | None = Field(
        default=None,
        description="Used when the path or header is absent; without it such deliveries get 400.",
    )

    @model_validator(mode="after")
    def _exactly_one(self) -> Locate:
        given = [name for name in ("path", "header", "value") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError("give exactly one of `path`, `header` or `value`")
        return self

    def find(self, delivery: Delivery, body: Any, name: str) -> str:
        if self.value:
            return self.value
        if self.header:
            found: Any = delivery.header(self.header)
            where = f"header {self.header}"
        else:
            found = lookup(body, self.path or "")
            where = f"body field {self.path!r}"
        if isinstance(found, int | float) and not isinstance(found, bool):
            found = str(found)
        if isinstance(found, str) and found:
            return found
        if found not in (None, "", MISSING):
            raise PayloadError(f"{name}: {where} is a {type(found).__name__}, not a string")
        if self.default is not None:
            return self.default
        raise PayloadError(
            f"{name}: the delivery has no {where}; send it, or give this source's "
            f"`{name}` a `default`"
        )


class Hmac(BaseModel):
    """An HMAC of the raw body in a header, as GitHub and many in-house senders do."""

    model_config = ConfigDict(extra="forbid")

    header: str = Field(description="Header with the signature, e.g. `X-Hub-Signature-256`.")
    secret: SecretStr = Field(description="The signing secret; write it as `${ENV_VAR}`.")
    algorithm: Algorithm = Field(default="sha256", description="sha1, sha256 or sha512.")
    encoding: Encoding = Field(default="hex", description="hex or base64.")
    prefix: str = Field(default="", description='Text before the digest, e.g. "sha256=".')


class GenericOptions(TokenAuth):
    domain: Locate = Field(
        default=Locate(value="generic"),
        description="Where the domain comes from; default: the fixed value `generic`.",
    )
    event_type: Locate = Field(
        default=Locate(path="type", default="unknown"),
        description="Where the event type comes from; default: the body's `type`, else `unknown`.",
    )
    delivery_id: Locate | None = Field(
        default=None,
        description="Where the sender's delivery id is; redeliveries with the same id are "
        "duplicates. Without it, an identical body is a duplicate.",
    )
    data: str | None = Field(
        default=None, description="Dotted path to the part of the body rules see as `data`."
    )
    hmac: Hmac | None = Field(default=None, description="Check an HMAC signature of the body.")

    @model_validator(mode="after")
    def _needs_auth(self) -> GenericOptions:
        not_empty(self.token, "token")
        if self.hmac is not None:
            not_empty(self.hmac.secret, "hmac.secret")
        if self.token is None and self.hmac is None and not self.allow_unauthenticated:
            raise ValueError(
                "no credentials configured: set `hmac: {header, secret}` for a signing sender, "
                "`token: ${ENV_VAR}` for a shared token, or `allow_unauthenticated: true`"
            )
        return self


def credential_headers(options: GenericOptions) -> list[str]:
    signature = [options.hmac.header] if options.hmac is not None else []
    return [*token_headers(options), *signature]


def verify(delivery: Delivery, options: GenericOptions) -> None:
    check_token(delivery, options)
    if options.hmac is None:
        return
    config = options.hmac
    sent = (delivery.header(config.header) or "").strip()
    if not sent:
        raise VerificationError(f"missing {config.header} header with the body's signature")
    if not sent.lower().startswith(config.prefix.lower()):
        raise VerificationError(f"{config.header} should start with {config.prefix!r}")
    digest = sent[len(config.prefix) :]
    if config.encoding == "hex":
        digest = digest.lower()
    expected = sign(
        config.secret.get_secret_value().encode(), delivery.body, config.algorithm, config.encoding
    )
    if not same(digest, expected):
        raise VerificationError(
            f"{config.header} is not the {config.encoding} HMAC-{config.algorithm.upper()} "
            "of this body with the configured secret"
        )


def normalize(delivery: Delivery, options: GenericOptions) -> list[Incoming]:
    body = parse_json(delivery.body)
    if not isinstance(body, dict):
        raise PayloadError("a generic event must be a JSON object")
    data = body
    if options.data is not None:
        data = lookup(body, options.data)
        if data is MISSING:
            raise PayloadError(f"the body has no {options.data!r}, the configured `data` path")
    found_id = options.delivery_id
    return [
        Incoming(
            domain=options.domain.find(delivery, body, "domain"),
            event_type=options.event_type.find(delivery, body, "event_type"),
            data=data,
            delivery_id=found_id.find(delivery, body, "delivery_id") if found_id else None,
        )
    ]


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="generic",
            options=GenericOptions,
            verify=verify,
            normalize=normalize,
            description="Any JSON sender: domain, event type and id from configured paths or "
            "headers; HMAC signature or shared token.",
            credential_headers=credential_headers,
        )
    ]
