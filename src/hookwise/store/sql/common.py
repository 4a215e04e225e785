"""What every part of the store's SQL shares: the transaction protocol, the run columns,
and the status sets queries are written against."""

from __future__ import annotations

from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol

from hookwise.status import WAITING, RunStatus

Row = Mapping[str, Any]

RUN_COLUMNS = (
    "id, event_id, rule, status, spec, step, attempt, attempts_total, outputs, error, "
    "created_at, updated_at, next_attempt_at, flow, concurrency_key, awaited_event_id"
)
# Statuses a run can be claimed from once due; `running` only when its lease expired.
CLAIMABLE = (RunStatus.PENDING, RunStatus.RETRYING, RunStatus.DEBOUNCING, *WAITING)
# Runs in these statuses occupy one of their concurrency key's slots.
HOLDING = (RunStatus.RUNNING, RunStatus.RETRYING)
NOT_STARTED = (RunStatus.PENDING, RunStatus.DEBOUNCING, *WAITING)


class Cursor(Protocol):
    @property
    def rowcount(self) -> int: ...

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = (), /) -> Cursor: ...

    def lock(self, name: str) -> None:
        """Wait for the named lock; it is held until the transaction ends."""

    def try_lock(self, name: str) -> bool:
        """Take the named lock if it is free, without waiting."""


def not_in(column: str, items: Collection[Any]) -> str:
    return f"AND {column} NOT IN ({','.join('?' * len(items))})" if items else ""


def quoted(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{status}'" for status in statuses)
