"""Filters as people type them (`?status=dead&since=1h`, `--status dead --since 1h`), read
into the store's queries. The API, the CLI and the console share this, so a filter means
the same everywhere and a mistake gets the same message naming the parameter.
"""

from __future__ import annotations

import re
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any, TypeVar

from hookwise import clock
from hookwise.durations import parse_duration
from hookwise.status import EventStatus, RunStatus
from hookwise.store import EventQuery, RunQuery

MAX_LIMIT = 1000
ID = re.compile(r"[0-9A-Z]{26}")
EVENT_STATUSES = [status.value for status in EventStatus]
RUN_STATUSES = [status.value for status in RunStatus]
# The parameters each list takes, for messages and the OpenAPI document.
EVENT_FILTERS = ("source", "domain", "event_type", "status", "text", "since", "until")
RUN_FILTERS = ("status", "rule", "source", "key", "since", "until")
Q = TypeVar("Q", EventQuery, RunQuery)


class QueryError(ValueError):
    """A filter that cannot be read; the message names the parameter and what it takes."""

    def __init__(self, parameter: str, problem: str) -> None:
        super().__init__(f"{parameter}: {problem}")
        self.parameter = parameter


def event_query(params: Mapping[str, str]) -> EventQuery:
    status = params.get("status") or None
    if status is not None and status not in EVENT_STATUSES:
        raise QueryError("status", f"one of {', '.join(EVENT_STATUSES)}, not {status!r}")
    return _paged(
        EventQuery,
        params,
        source=params.get("source") or None,
        domain=params.get("domain") or None,
        event_type=params.get("event_type") or None,
        status=EventStatus(status) if status else None,
        text=params.get("text") or None,
    )


def run_query(params: Mapping[str, str]) -> RunQuery:
    statuses = [s for s in (params.get("status") or "").split(",") if s]
    unknown = [s for s in statuses if s not in RUN_STATUSES]
    if unknown:
        raise QueryError(
            "status",
            f"one or more of {', '.join(RUN_STATUSES)}, comma-separated, not {unknown[0]!r}",
        )
    return _paged(
        RunQuery,
        params,
        statuses=tuple(RunStatus(s) for s in statuses),
        rule=params.get("rule") or None,
        source=params.get("source") or None,
        key=params.get("key") or None,
    )


def _paged(make: Callable[..., Q], params: Mapping[str, str], **filters: Any) -> Q:
    before = params.get("before") or None
    if before is not None and not ID.fullmatch(before):
        raise QueryError("before", "the id of the last item of the previous page")
    return make(
        **filters,
        since=_moment("since", params.get("since")),
        until=_moment("until", params.get("until")),
        before=before,
        limit=_limit(params.get("limit")),
    )


def _limit(value: str | None) -> int:
    if not value:
        return 50
    if not (value.isascii() and value.isdigit()) or int(value) < 1:
        raise QueryError("limit", f"a whole number from 1 to {MAX_LIMIT}, not {value!r}")
    return min(int(value), MAX_LIMIT)


def _moment(parameter: str, value: str | None) -> float | None:
    """ISO 8601 (`2026-12-04T08:00:00Z`), or a duration back from now (`90m`, `2d`)."""
    if not value:
        return None
    try:
        return clock.now() - parse_duration(value)
    except ValueError:
        pass
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise QueryError(
            parameter,
            f"an ISO 8601 time (2026-12-04T08:00:00Z) or a duration ago (2h), not {value!r}",
        ) from None
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()
