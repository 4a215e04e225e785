"""What a source plugin provides: how to trust a delivery and how to read it."""

from __future__ import annotations

import json
import math
import re
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hookwise.errors import PayloadError, VerificationError
from hookwise.event import Incoming


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery as received: lower-cased headers and the exact raw body."""

    headers: Mapping[str, str]
    body: bytes

    @classmethod
    def from_raw(
        cls, raw: Iterable[tuple[bytes, bytes]], body: bytes, once: Iterable[str] = ()
    ) -> Delivery:
        """From ASGI's raw headers; a header in `once` sent twice is refused as ambiguous.

        Which copy a check reads and which one a proxy saw may differ: a bad token
        first and a good one second must not pass.
        """
        unique = {name.lower() for name in once}
        headers: dict[str, str] = {}
        for raw_name, raw_value in raw:
            name = raw_name.decode("latin-1").lower()
            if name in headers and name in unique:
                raise VerificationError(
                    f"{name} was sent more than once; it is a credential, so send it once"
                )
            headers[name] = raw_value.decode("latin-1")
        return cls(headers, body)

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """Parse the body; call only after `verify` has passed."""
        return parse_json(self.body)


def no_headers(options: Any) -> list[str]:
    return []


@dataclass(frozen=True)
class SourceKind:
    """A kind of sender (`kind:` under `sources:`).

    `options` validates the rest of the source's config block. `verify` raises
    VerificationError and sees only raw bytes; `normalize` raises PayloadError and
    returns one Incoming per event in the delivery (batch formats send several).
    `credential_headers(options)` names the headers `verify` reads (tokens,
    signatures, signed timestamps): hookwise never stores them or shows them to
    templates, and refuses a delivery that sends one of them twice.
    """

    kind: str
    options: type[BaseModel]
    verify: Callable[[Delivery, Any], None]
    normalize: Callable[[Delivery, Any], list[Incoming]]
    description: str = ""
    credential_headers: Callable[[Any], list[str]] = no_headers


def require_str(payload: Mapping[str, Any], *names: str) -> str:
    """The first of `names` present as a non-empty string, or a PayloadError naming them."""
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    wanted = " or ".join(repr(n) for n in names)
    raise PayloadError(f"event is missing {wanted} (a non-empty string)")


MAX_DEPTH = 64


def parse_json(raw: bytes, what: str = "body") -> Any:
    """JSON from raw bytes, every way it can fail turned into a PayloadError (400).

    Strict JSON only: NaN and Infinity are refused (they cannot be served back as
    JSON), and so is nesting deeper than MAX_DEPTH, which no real webhook needs.
    """
    try:
        value = json.loads(raw, parse_constant=_refuse_constant, parse_float=_finite_float)
    except RecursionError as exc:
        raise PayloadError(f"{what} is nested too deeply to be an event") from exc
    except ValueError as exc:  # also bad UTF-8 and integers too long to convert
        raise PayloadError(f"{what} is not valid JSON: {exc}") from exc
    if _depth(value) > MAX_DEPTH:
        raise PayloadError(f"{what} is nested more than {MAX_DEPTH} levels deep")
    if _SURROGATE_ESCAPE.search(raw) and not _encodable(value):
        raise PayloadError(
            f"{what} has a string with a lone UTF-16 surrogate (such as \\ud800), which is not "
            "text; escape only whole characters"
        )
    return value


# `\ud800` and friends: only then can json.loads return a string that is not text.
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")


def _encodable(value: Any) -> bool:
    """Every key and string encodes as UTF-8: a surrogate *pair* does, a lone one not."""
    stack = [value]
    while stack:
        item = stack.pop()
        if isinstance(item, str):
            try:
                item.encode("utf-8")
            except UnicodeEncodeError:
                return False
        elif isinstance(item, dict):
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list):
            stack.extend(item)
    return True


def _refuse_constant(name: str) -> Any:
    raise ValueError(f"{name} is not allowed in JSON")


def _finite_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise ValueError(f"number {text} is out of range")
    return value


def _depth(value: Any) -> int:
    """Nesting depth, computed without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        item, depth = stack.pop()
        if isinstance(item, dict | list):
            deepest = max(deepest, depth)
            children = item.values() if isinstance(item, dict) else item
            stack.extend((child, depth + 1) for child in children)
    return deepest


class TypeRule(BaseModel):
    """How an event's `type` string splits into a domain and an event type."""

    model_config = ConfigDict(extra="forbid")

    type_prefix: str = Field(
        default="",
        description="Removed from the start of `type` first, when there: with `com.example.`, "
        "`com.example.image.pushed` reads as `image.pushed`.",
    )
    type_pattern: re.Pattern[str] | None = Field(
        default=None,
        description="Regex with named groups `domain` and `event_type` that must match the "
        "whole (prefix-stripped) type, e.g. `(?P<domain>[^.]+)\\.(?P<event_type>.+)`. Default: "
        "the last dot-separated segment is the event type and the one before it the domain; "
        "a type without dots is both.",
    )

    @field_validator("type_pattern")
    @classmethod
    def _named_groups(cls, pattern: re.Pattern[str] | None) -> re.Pattern[str] | None:
        if pattern is not None and not {"domain", "event_type"} <= set(pattern.groupindex):
            raise ValueError("type_pattern needs groups (?P<domain>...) and (?P<event_type>...)")
        return pattern

    def split(self, event_type: str) -> tuple[str, str]:
        rest = event_type.removeprefix(self.type_prefix)
        if self.type_pattern is not None:
            match = self.type_pattern.fullmatch(rest)
            if match is None or not match["domain"] or not match["event_type"]:
                raise PayloadError(
                    f"type {event_type!r} does not match this source's type_pattern "
                    f"{self.type_pattern.pattern!r}"
                )
            return match["domain"], match["event_type"]
        parts = rest.split(".")
        domain, name = (parts[-2], parts[-1]) if len(parts) > 1 else (rest, rest)
        if not domain or not name:
            raise PayloadError(f"type {event_type!r} does not read as <domain>.<event_type>")
        return domain, name


# CloudEvents attributes that are the event itself; every other one is an extension.
CLOUDEVENT_CORE = frozenset(
    {"specversion", "id", "source", "type", "datacontenttype", "dataschema", "data",
     "data_base64", "time", "subject"}
)  # fmt: skip


def meta_of(**values: Any) -> dict[str, Any]:
    """The sender's envelope as rules see it in `meta`: only what it says, plain values."""
    return {key: value for key, value in values.items() if _plain(value)}


def cloudevent_meta(attributes: Mapping[str, Any]) -> dict[str, Any]:
    """`meta` of a CloudEvent: when, about what, from where, and every extension
    attribute (`traceparent`, Harbor's `operator` and `requestid`) under its own name."""
    extensions = {k: v for k, v in attributes.items() if k not in CLOUDEVENT_CORE}
    known = {
        "occurred_at": attributes.get("time"),
        "subject": attributes.get("subject"),
        "sender": attributes.get("source"),
        "request_id": attributes.get("requestid"),
    }
    return {key: value for key, value in {**extensions, **known}.items() if _plain(value)}


def _plain(value: Any) -> bool:
    return isinstance(value, str | int | float | bool)
