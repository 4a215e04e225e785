"""What a source plugin provides: how to trust a delivery and how to read it."""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any

from pydantic import BaseModel

from hookwise.errors import PayloadError
from hookwise.event import Incoming


@dataclass(frozen=True)
class Delivery:
    """One HTTP delivery as received: lower-cased headers and the exact raw body."""

    headers: Mapping[str, str]
    body: bytes

    def header(self, name: str) -> str | None:
        return self.headers.get(name.lower())

    def json(self) -> Any:
        """Parse the body; call only after `verify` has passed."""
        try:
            return json.loads(self.body)
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise PayloadError(f"body is not valid JSON: {exc}") from exc


@dataclass(frozen=True)
class SourceKind:
    """A kind of sender (`kind:` under `sources:`).

    `options` validates the rest of the source's config block. `verify` raises
    VerificationError and sees only raw bytes; `normalize` raises PayloadError and
    returns one Incoming per event in the delivery (batch formats send several).
    """

    kind: str
    options: type[BaseModel]
    verify: Callable[[Delivery, Any], None]
    normalize: Callable[[Delivery, Any], list[Incoming]]
    description: str = ""


def require_str(payload: Mapping[str, Any], *names: str) -> str:
    """The first of `names` present as a non-empty string, or a PayloadError naming them."""
    for name in names:
        value = payload.get(name)
        if isinstance(value, str) and value:
            return value
    wanted = " or ".join(repr(n) for n in names)
    raise PayloadError(f"event is missing {wanted} (a non-empty string)")
