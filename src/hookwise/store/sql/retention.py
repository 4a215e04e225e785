"""Retention: deleting what nobody needs any more, in batches, one pruner at a time."""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from hookwise.status import FINISHED
from hookwise.store.records import (
    Pruned,
)
from hookwise.store.sql.common import (
    Tx,
    quoted,
)

PRUNE_LOCK = "hookwise:prune"
# Ids per `IN (...)` list, well below either database's limit on parameters.
ID_CHUNK = 500


def prune(tx: Tx, before: float, now: float, limit: int) -> Pruned | None:
    """One bounded round of retention; None when another process is pruning.

    Removes, at most `limit` of each:
    - finished runs last changed before `before`, with their attempts, decisions and
      links to events;
    - events received before `before` that no run refers to any more (as its event, one
      of a debounced batch, or the event it waited for), so an event with unfinished
      work, or kept by a run that is not old enough, stays;
    - dedupe keys first seen before `before` (the caller keeps `before` outside the
      dedupe window, so these no longer recognise anything);
    - throttle turns older than `before` whose period is over (turns recorded before
      periods were stored are kept until the key's next turn).

    Runs go first, so events they alone kept go in the same round.
    """
    if not tx.try_lock(PRUNE_LOCK):
        return None
    runs = _ids(
        tx,
        f"SELECT id FROM runs WHERE status IN ({quoted(FINISHED)}) AND updated_at < ? LIMIT ?",
        (before, limit),
    )
    attempts = _delete_in(tx, "attempts", "run_id", runs)
    _delete_in(tx, "decisions", "run_id", runs)
    _delete_in(tx, "run_events", "run_id", runs)
    _delete_in(tx, "runs", "id", runs)
    events = _ids(
        tx,
        "SELECT id FROM events e WHERE received_at < ? "
        "AND NOT EXISTS (SELECT 1 FROM runs r WHERE r.event_id = e.id) "
        "AND NOT EXISTS (SELECT 1 FROM run_events l WHERE l.event_id = e.id) "
        "AND NOT EXISTS (SELECT 1 FROM runs w WHERE w.awaited_event_id = e.id) LIMIT ?",
        (before, limit),
    )
    _delete_in(tx, "events", "id", events)
    keys = tx.execute(
        "DELETE FROM dedupe WHERE key IN (SELECT key FROM dedupe WHERE seen_at < ? LIMIT ?)",
        (before, limit),
    ).rowcount
    throttles = tx.execute(
        "DELETE FROM throttles WHERE (rule, key) IN (SELECT rule, key FROM throttles "
        "WHERE last_at < ? AND expires_at <= ? LIMIT ?)",
        (before, now, limit),
    ).rowcount
    return Pruned(len(events), len(runs), attempts, keys, throttles)


def _ids(tx: Tx, sql: str, params: Sequence[Any]) -> list[str]:
    return [row["id"] for row in tx.execute(sql, params).fetchall()]


def _delete_in(tx: Tx, table: str, column: str, ids: list[str]) -> int:
    deleted = 0
    for start in range(0, len(ids), ID_CHUNK):
        chunk = ids[start : start + ID_CHUNK]
        deleted += tx.execute(
            f"DELETE FROM {table} WHERE {column} IN ({','.join('?' * len(chunk))})", chunk
        ).rowcount
    return deleted
