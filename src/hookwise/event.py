"""The normalized event: the one shape rules, templates, the API and the CLI see."""

from __future__ import annotations

import os
import random
import re
import time
from collections.abc import Mapping
from dataclasses import dataclass, field, fields
from datetime import UTC, datetime
from typing import Any

_CROCKFORD = "0123456789ABCDEFGHJKMNPQRSTVWXYZ"
# Broad on purpose: dropping a harmless header costs little, storing a credential a lot.
_SENSITIVE_HEADER = re.compile(r"auth|token|secret|sig|cookie|pass|key|credential|art-api", re.I)


# Ids name things, they grant nothing (the API and Slack authenticate every request),
# so a generator seeded from the OS will do: os.urandom per id is a system call that
# gives up the GIL on the busiest path, once per accepted event.
_random = random.Random(os.urandom(32))


def new_id() -> str:
    """A ULID: time-ordered, so ids sort by arrival and listings need no extra index."""
    value = (int(time.time() * 1000) << 80) | _random.getrandbits(80)
    return "".join(_CROCKFORD[(value >> shift) & 31] for shift in range(125, -1, -5))


def safe_headers(headers: Mapping[str, str], credentials: frozenset[str]) -> dict[str, str]:
    """Headers worth keeping for rules and history: not the source's credential headers,
    whatever their names, nor anything whose name looks like one."""
    return {
        name.lower(): value
        for name, value in headers.items()
        if name.lower() not in credentials and not _SENSITIVE_HEADER.search(name)
    }


@dataclass(frozen=True)
class Incoming:
    """What a source plugin extracts from one delivery, before hookwise assigns an id."""

    domain: str
    event_type: str
    data: Any
    delivery_id: str | None = None
    dedupe_key: str | None = None
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    # The sender's envelope around `data`: who acted, when, through what (see `meta`).
    meta: dict[str, Any] = field(default_factory=dict)


@dataclass(frozen=True)
class Event:
    id: str
    source: str
    kind: str
    domain: str
    event_type: str
    delivery_id: str | None
    received_at: float
    data: Any
    headers: dict[str, str] = field(default_factory=dict)
    artifacts: list[dict[str, Any]] = field(default_factory=list)
    # What the sender says around the data, the same keys for every source kind where
    # they exist: operator, occurred_at, request_id, subject, origin, subscription,
    # sender, and the sender's extension attributes. Rules match it as `meta.<key>`.
    meta: dict[str, Any] = field(default_factory=dict)

    def as_dict(self) -> dict[str, Any]:
        """JSON-ready: `received_at` in ISO 8601 UTC, and `artifact`, the first of `artifacts`."""
        out = {f.name: getattr(self, f.name) for f in fields(self)}  # shallow: data is shared
        out["received_at"] = iso_time(self.received_at)
        out["artifact"] = self.artifacts[0] if self.artifacts else None
        return out


def iso_time(epoch: float | None) -> str | None:
    if epoch is None:
        return None
    return datetime.fromtimestamp(epoch, tz=UTC).isoformat(timespec="milliseconds")
