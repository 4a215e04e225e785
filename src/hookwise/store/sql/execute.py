"""Executing runs: claims, leases, progress."""

from __future__ import annotations

import json
from collections.abc import Collection
from typing import Any

from hookwise.actions import action_label
from hookwise.event import Event, new_id
from hookwise.status import RunStatus
from hookwise.store.records import AttemptRecord, Progress, RunRecord
from hookwise.store.sql.common import (
    CLAIMABLE,
    HOLDING,
    RUN_COLUMNS,
    Later,
    Tx,
    insert,
    not_in,
    quoted,
)
from hookwise.store.sql.rows import event_from, run_record


def claim(
    tx: Tx,
    owner: str,
    limit: int,
    lease: float,
    exclude: Collection[str],
    now: float,
    row_lock: str = "",
) -> list[RunRecord]:
    rows = _due(tx, list(exclude), limit * 4, now, row_lock)
    claimed: list[RunRecord] = []
    for row in rows:
        if len(claimed) == limit:
            break
        record = run_record(row)
        if not _slot_free(tx, record):
            continue
        token = f"{owner}/{new_id()}"
        if record.status == "running":
            _record_lost_attempt(tx, record, now)
            record.attempt += 1
            record.attempts_total += 1
        tx.execute(
            "UPDATE runs SET status = 'running', lease_owner = ?, lease_expires_at = ?, "
            "attempt = ?, attempts_total = ?, updated_at = ? WHERE id = ?",
            (token, now + lease, record.attempt, record.attempts_total, now, record.id),
        )
        record.phase, record.status, record.lease = record.status, RunStatus.RUNNING, token
        claimed.append(record)
    _attach_events(tx, claimed)
    return claimed


def _attach_events(tx: Tx, runs: list[RunRecord]) -> None:
    """Each claimed run's trigger events, read in the claim: a worker needs them at once."""
    if not runs:
        return
    by_run: dict[str, list[Event]] = {run.id: [] for run in runs}
    rows = tx.execute(
        "SELECT l.run_id AS run_id, e.* FROM run_events l JOIN events e ON e.id = l.event_id "
        f"WHERE l.role = 'trigger' AND l.run_id IN ({','.join('?' * len(runs))}) "
        "ORDER BY e.received_at, e.id",
        list(by_run),
    ).fetchall()
    for row in rows:
        by_run[row["run_id"]].append(event_from(row))
    for run in runs:
        run.events = by_run[run.id]


def _due(tx: Tx, skip: list[str], limit: int, now: float, row_lock: str) -> list[Any]:
    """The `limit` runs due first: one index walk of `runs_due` per claimable status.

    A single WHERE with an OR over the statuses makes both planners read every due
    run and sort them, a cost that grows with the backlog. Here each status's branch
    reads at most `limit` rows in index order, and only those few are merged. Running
    runs whose lease expired are few (at most the processes' concurrency).
    """
    excluded = not_in("id", skip)
    branch = (
        f"SELECT * FROM (SELECT {RUN_COLUMNS} FROM runs WHERE status = ? AND {{due}} "
        f"{excluded} ORDER BY next_attempt_at LIMIT ?{row_lock}) AS {{name}}"
    )
    due = "next_attempt_at <= ?"
    branches = [branch.format(due=due, name=f"s{n}") for n in range(len(CLAIMABLE))]
    branches.append(branch.format(due="lease_expires_at < ?", name="expired"))
    params: list[Any] = []
    for status in (*CLAIMABLE, RunStatus.RUNNING):
        params += [status, now, *skip, limit]
    return tx.execute(
        f"SELECT * FROM ({' UNION ALL '.join(branches)}) AS due ORDER BY next_attempt_at LIMIT ?",
        (*params, limit),
    ).fetchall()


def _slot_free(tx: Tx, run: RunRecord) -> bool:
    """A run about to start its actions needs a free slot of its concurrency key.

    Runs already holding one (retrying, or running with an expired lease) keep it;
    waiting runs only pass their gate and come back as `pending` to queue for a slot.
    A claim holds the rows it selected, so it must not wait for the key's lock: an
    accept holding that lock may be waiting for one of those rows (supersede). A busy
    key counts as full this time; the run is claimed on a later pass.
    """
    if run.concurrency_key is None or run.status not in ("pending", "debouncing"):
        return True
    if not tx.try_lock(f"concurrency:{run.rule}:{run.concurrency_key}"):
        return False
    holders = tx.execute(
        f"SELECT COUNT(*) AS n FROM runs WHERE rule = ? AND concurrency_key = ? "
        f"AND status IN ({quoted(HOLDING)})",
        (run.rule, run.concurrency_key),
    ).fetchone()["n"]
    return bool(holders < run.spec["concurrency"].get("limit", 1))


def renew(tx: Tx, tokens: list[str], lease: float, now: float) -> None:
    if tokens:
        tx.execute(
            "UPDATE runs SET lease_expires_at = ? "
            f"WHERE status = 'running' AND lease_owner IN ({','.join('?' * len(tokens))})",
            (now + lease, *tokens),
        )


def record(
    tx: Tx,
    token: str,
    run_id: str,
    attempt: AttemptRecord | None,
    progress: Progress,
    now: float,
    for_update: str = "",
) -> Later[bool]:
    """The attempt and the run's progress, if the lease is still `token`'s.

    The attempt goes in first, on that condition, locking the run's row where rows are
    locked (`for_update`), so the update after it finds the run as the insert did:
    both happen or neither, without waiting for the first's answer. Whether they did
    is read with the rest of the batch's answers.
    """
    if attempt is not None:
        insert_attempt(tx, attempt, (run_id, token, for_update))
    keep_lease = progress.status == "running"
    flow = json.dumps(progress.flow) if progress.flow is not None else None
    updated = tx.execute(
        "UPDATE runs SET status = ?, step = ?, attempt = ?, "
        "attempts_total = attempts_total + ?, outputs = ?, error = ?, "
        "next_attempt_at = ?, updated_at = ?, flow = COALESCE(?, flow), "
        "lease_owner = CASE WHEN ? THEN lease_owner END, "
        "lease_expires_at = CASE WHEN ? THEN lease_expires_at END "
        "WHERE id = ? AND lease_owner = ? AND status = 'running' RETURNING id",
        (
            progress.status,
            progress.step,
            progress.attempt,
            int(attempt is not None and attempt.counted),
            json.dumps(progress.outputs),
            progress.error,
            progress.next_attempt_at,
            now,
            flow,
            keep_lease,
            keep_lease,
            run_id,
            token,
        ),
    )
    # Rows, not the row count: PostgreSQL's pipeline knows a count only once synced.
    return Later(lambda: bool(updated.fetchall()))


def _record_lost_attempt(tx: Tx, run: RunRecord, now: float) -> None:
    action = run.spec["actions"][min(run.step, len(run.spec["actions"]) - 1)]
    insert_attempt(
        tx,
        AttemptRecord(
            run_id=run.id,
            step=run.step,
            action=action_label(action.get("id"), action["uses"], run.step),
            number=run.attempt + 1,
            started_at=run.updated_at,
            ended_at=now,
            status="lost",
            error="the worker running this attempt stopped before finishing (lease expired)",
        ),
    )


def insert_attempt(
    tx: Tx, attempt: AttemptRecord, leased: tuple[str, str, str] | None = None
) -> None:
    """With `leased` (run id, lease token, row lock), only while the run is leased so."""
    condition = None
    if leased is not None:
        run_id, token, row_lock = leased
        where = f"id = ? AND lease_owner = ? AND status = 'running'{row_lock}"
        condition = (f"EXISTS (SELECT 1 FROM runs WHERE {where})", (run_id, token))
    insert(
        tx,
        "attempts (run_id, step, action, number, started_at, ended_at, status, output, error, log)",
        (
            attempt.run_id,
            attempt.step,
            attempt.action,
            attempt.number,
            attempt.started_at,
            attempt.ended_at,
            attempt.status,
            json.dumps(attempt.output),
            attempt.error,
            json.dumps(attempt.log),
        ),
        only_if=condition,
    )
