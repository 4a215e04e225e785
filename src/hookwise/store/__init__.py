"""Where events and runs live. `open_store` picks the backend from the config's URL.

- `base`: the contract every backend implements; `records`: what it takes and returns;
- `sql/`: the store's logic as portable SQL, one module per part (accept, execute,
  retention, read), shared by both backends;
- `sqlstore`: the contract on top of `sql/`; `sqlite`, `postgres`: the backends;
- `batching`: group commit, shared by both writers.
"""

from __future__ import annotations

import re
from urllib.parse import urlsplit, urlunsplit

from hookwise.store.base import Store
from hookwise.store.records import (
    AcceptResult,
    AttemptRecord,
    Decision,
    EventDetail,
    EventQuery,
    EventSummary,
    FlowKeys,
    Intervention,
    NewRun,
    Overview,
    Progress,
    Pruned,
    RuleStats,
    RunDetail,
    RunQuery,
    RunRecord,
    Schema,
)

__all__ = [
    "AcceptResult",
    "AttemptRecord",
    "Decision",
    "EventDetail",
    "EventQuery",
    "EventSummary",
    "FlowKeys",
    "Intervention",
    "NewRun",
    "Overview",
    "Progress",
    "Pruned",
    "RuleStats",
    "RunDetail",
    "RunQuery",
    "RunRecord",
    "Schema",
    "Store",
    "check_url",
    "display_url",
    "open_store",
]

SQLITE = "sqlite:///"
POSTGRES = ("postgresql://", "postgres://")


def check_url(url: str) -> None:
    """Raise ValueError saying what is wrong with a store URL, so `check` catches it."""
    if url.startswith(SQLITE):
        return
    if url.startswith(POSTGRES):
        from psycopg import ProgrammingError
        from psycopg.conninfo import conninfo_to_dict

        try:
            conninfo_to_dict(url)
        except ProgrammingError as exc:
            raise ValueError(f"not a PostgreSQL URL: {display_url(url)}: {exc}") from None
        return
    scheme = url.partition(":")[0]
    raise ValueError(
        f"unsupported store {scheme!r}: use sqlite:///path/to/hookwise.db or "
        "postgresql://user:password@host:5432/database"
    )


def display_url(url: str) -> str:
    """The URL fit for logs and messages: a password in it is shown as ***."""
    parts = urlsplit(url)
    netloc, query = parts.netloc, parts.query
    if parts.password is not None:
        user, _, hosts = netloc.rpartition("@")
        netloc = f"{user.partition(':')[0]}:***@{hosts}"
    query = re.sub(r"(^|&)(password=)[^&]*", r"\1\2***", query, flags=re.IGNORECASE)
    if (netloc, query) == (parts.netloc, parts.query):
        return url
    return urlunsplit(parts._replace(netloc=netloc, query=query))


def open_store(url: str) -> Store:
    check_url(url)
    if url.startswith(POSTGRES):
        from hookwise.store.postgres import PostgresStore

        return PostgresStore(url, display_url(url))
    from hookwise.store.sqlite import SQLiteStore

    return SQLiteStore(url.removeprefix(SQLITE))
