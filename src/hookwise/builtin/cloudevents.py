"""The CloudEvents v1.0 source, over the HTTP protocol binding.

A delivery comes in one of three modes, told apart by Content-Type as the binding says:
`application/cloudevents+json` is one structured event (attributes and `data` in the
JSON body), `application/cloudevents-batch+json` a JSON array of them, and anything else
with a `ce-specversion` header is binary mode (attributes in `ce-*` headers, the body is
the data). Each event becomes one Incoming, so a batch is accepted or refused whole.

Rules see the event's `data` unchanged. The context attributes (subject, time,
extensions, ...) have no place of their own in the normalized event, so `envelope: true`
makes `data` the whole event instead (`data.subject`, `data.data.x`); in binary mode
they are also in `headers` as `ce-*`.

`type` names what happened (`com.example.image.pushed`); by default its last segment is
the event type and the one before it the domain. `id` with `source` identifies an event
for deduplication. CloudEvents defines no authentication, so a shared token is checked.
"""

from __future__ import annotations

import base64
import binascii
import codecs
import json
from typing import Any
from urllib.parse import unquote

from pydantic import Field, model_validator

from hookwise.errors import PayloadError
from hookwise.event import Incoming
from hookwise.hookspecs import hookimpl
from hookwise.signatures import TokenAuth, check_token, require_credential, token_headers
from hookwise.sources import Delivery, SourceKind, TypeRule, cloudevent_meta, parse_json

STRUCTURED = "application/cloudevents+json"
BATCH = "application/cloudevents-batch+json"
REQUIRED = ("specversion", "id", "source", "type")


class CloudEventsOptions(TypeRule, TokenAuth):
    envelope: bool = Field(
        default=False,
        description="Give rules the whole event as `data` (attributes plus `data`), not just "
        "its `data`, so they can match on subject, time or extensions in every mode.",
    )

    @model_validator(mode="after")
    def _needs_token(self) -> CloudEventsOptions:
        require_credential(
            self.token,
            "token",
            self.allow_unauthenticated,
            "the token senders put in `Authorization: Bearer <token>` (see `header`, `scheme`)",
        )
        return self


def verify(delivery: Delivery, options: CloudEventsOptions) -> None:
    check_token(delivery, options)


def media_type(content_type: str | None) -> tuple[str, dict[str, str]]:
    """`Text/JSON; charset="UTF-8"` → ("text/json", {"charset": "UTF-8"})."""
    media, *params = (content_type or "").split(";")
    pairs = (param.partition("=") for param in params)
    return media.strip().lower(), {k.strip().lower(): v.strip().strip('"') for k, _, v in pairs}


def is_json(media: str) -> bool:
    return media in ("application/json", "text/json") or media.endswith("+json")


# Charsets of text: decoding any of them takes linear time, and none makes surrogates.
# (Python's codecs include transforms such as punycode, quadratic in the input.)
TEXT_CODECS = frozenset(
    {"utf-8", "utf-16", "utf-16-le", "utf-16-be", "utf-32", "utf-32-le", "utf-32-be", "ascii",
     "iso8859-1", *(f"iso8859-{n}" for n in range(2, 17) if n != 12),
     *(f"cp{n}" for n in range(1250, 1259))}
)  # fmt: skip


def _codec(charset: str) -> str | None:
    try:
        return codecs.lookup(charset).name
    except LookupError:
        return None


def decode_data(raw: bytes, content_type: str | None, what: str) -> Any:
    """Data bytes as rules can use them: JSON parsed, text decoded, other bytes base64."""
    media, params = media_type(content_type)
    if not raw:
        return None
    if is_json(media):
        return parse_json(raw, what)
    charset = params.get("charset")
    if charset is not None and _codec(charset) not in TEXT_CODECS:
        raise PayloadError(
            f"{what}: charset {charset[:40]!r} is not supported; send UTF-8, UTF-16, UTF-32, "
            "ASCII, or an ISO 8859 or Windows code page"
        )
    try:
        text = raw.decode(charset or "utf-8")
        text.encode("utf-8")  # a lone surrogate is not text
    except (UnicodeError, ValueError) as exc:
        if charset:
            raise PayloadError(f"{what} is not valid {charset[:40]} text: {exc}") from None
        return base64.b64encode(raw).decode()  # no charset said: bytes, kept as base64
    if not media:  # no Content-Type: JSON if it is JSON (the JSON format's default), else text
        try:
            return parse_json(raw, what)
        except PayloadError:
            return text
    return text


def binary(delivery: Delivery) -> tuple[dict[str, Any], Any]:
    """Attributes from the percent-encoded `ce-*` headers; the body is the data."""
    headers = delivery.headers.items()
    attributes: dict[str, Any] = {k[3:]: unquote(v) for k, v in headers if k.startswith("ce-")}
    content_type = delivery.header("content-type")
    if content_type:
        attributes["datacontenttype"] = content_type
    return attributes, decode_data(delivery.body, content_type, "body")


def structured(event: Any, where: str) -> tuple[dict[str, Any], Any]:
    if not isinstance(event, dict):
        raise PayloadError(f"{where}a structured CloudEvent must be a JSON object")
    attributes = {k: v for k, v in event.items() if k not in ("data", "data_base64")}
    if "data_base64" not in event:
        return attributes, event.get("data")
    encoded = event["data_base64"]
    if "data" in event:
        raise PayloadError(f"{where}an event has either 'data' or 'data_base64', not both")
    try:
        raw = base64.b64decode(encoded, validate=True) if isinstance(encoded, str) else None
    except binascii.Error:
        raw = None
    if raw is None:
        raise PayloadError(f"{where}'data_base64' is not a base64 string")
    content_type = event.get("datacontenttype")
    if content_type is not None and not isinstance(content_type, str):
        raise PayloadError(f"{where}'datacontenttype' must be a string, like 'text/plain'")
    return attributes, decode_data(raw, content_type, f"{where}'data_base64'")


def incoming(
    attributes: dict[str, Any], data: Any, options: CloudEventsOptions, where: str, mode: str
) -> Incoming:
    for name in REQUIRED:
        value = attributes.get(name)
        if not isinstance(value, str) or not value:
            hint = f"the ce-{name} header" if mode == "binary" else f"the {name!r} member"
            raise PayloadError(
                f"{where}CloudEvent is missing required attribute {name!r} "
                f"({hint}, a non-empty string)"
            )
    if attributes["specversion"] != "1.0":
        raise PayloadError(
            f"{where}specversion {attributes['specversion']!r} is not supported; send "
            "CloudEvents 1.0"
        )
    domain, event_type = options.split(attributes["type"])
    return Incoming(
        domain=domain,
        event_type=event_type,
        data={**attributes, "data": data} if options.envelope else data,
        delivery_id=attributes["id"],
        dedupe_key=json.dumps([attributes["source"], attributes["id"]]),
        meta=cloudevent_meta(attributes),
    )


def normalize(delivery: Delivery, options: CloudEventsOptions) -> list[Incoming]:
    media, _ = media_type(delivery.header("content-type"))
    if media == STRUCTURED:
        attributes, data = structured(parse_json(delivery.body), "")
        return [incoming(attributes, data, options, "", "structured")]
    if media == BATCH:
        batch = parse_json(delivery.body)
        if not isinstance(batch, list):
            raise PayloadError("a CloudEvents batch must be a JSON array of events")
        events = []
        for index, event in enumerate(batch):
            where = f"batch event {index}: "
            attributes, data = structured(event, where)
            events.append(incoming(attributes, data, options, where, "structured"))
        return events
    if media.startswith("application/cloudevents"):
        raise PayloadError(f"event format {media!r} is not supported; send {STRUCTURED}")
    if delivery.header("ce-specversion") is None:
        raise PayloadError(
            "not a CloudEvent: send ce-specversion, ce-id, ce-source and ce-type headers "
            f"(binary mode) or Content-Type: {STRUCTURED} (structured mode)"
        )
    attributes, data = binary(delivery)
    return [incoming(attributes, data, options, "", "binary")]


@hookimpl
def hookwise_sources() -> list[SourceKind]:
    return [
        SourceKind(
            kind="cloudevents",
            options=CloudEventsOptions,
            verify=verify,
            normalize=normalize,
            description="CloudEvents 1.0 over HTTP (binary, structured, batch); shared token.",
            credential_headers=token_headers,
        )
    ]
