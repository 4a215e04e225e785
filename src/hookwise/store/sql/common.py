"""What every part of the store's SQL shares: the transaction protocol, the run columns,
and the status sets queries are written against."""

from __future__ import annotations

from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from typing import Any, Generic, Protocol, TypeVar

from hookwise.status import WAITING, RunStatus

Row = Mapping[str, Any]
T = TypeVar("T")

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


def insert(
    tx: Tx,
    into: str,
    values: Sequence[Any],
    *,
    only_if: tuple[str, Sequence[Any]] | None = None,
    ignore: str | None = None,
) -> None:
    """INSERT INTO `into` (a table and its columns) these values.

    `only_if` is a condition with its parameters, checked by the same statement: the
    writes that do not wait for an earlier answer (`Later`) are conditional on it.
    `ignore` names the key whose conflict is no error (the row is there already).
    """
    marks = ", ".join("?" * len(values))
    tail = f" ON CONFLICT {ignore} DO NOTHING" if ignore else ""
    if only_if is None:
        tx.execute(f"INSERT INTO {into} VALUES ({marks}){tail}", values)
    else:
        condition, params = only_if
        tx.execute(f"INSERT INTO {into} SELECT {marks} WHERE {condition}{tail}", (*values, *params))


class Later(Generic[T]):
    """A write's result, read once the rest of its batch has been sent.

    On PostgreSQL's pipeline, a result read at once costs a round trip per write; read
    after the batch, one for all of it. The writers read it (`settled`) before they
    commit, so a result still says what was committed.
    """

    def __init__(self, read: Callable[[], T]) -> None:
        self.read = read


def settled(result: Any) -> Any:
    """A write's result, reading it now if it was a `Later`."""
    return result.read() if isinstance(result, Later) else result
