"""The store's logic as portable SQL, shared by the SQLite and PostgreSQL backends.

Each function runs inside one transaction the backend opened, on a `Tx`: anything with
`execute(sql, params)` returning a cursor whose rows read like mappings. Placeholders
are `?`, and no SQL text here contains a literal `?` or `%`, so a backend that spells
placeholders differently can translate blindly. `lock(name)` serializes writers that
touch the same flow key until their transaction ends (a no-op where one writer does
everything), so debounce, throttle, supersede and concurrency limits hold across
processes. Only standard SQL that SQLite and PostgreSQL both read the same way is used.
"""

from __future__ import annotations

import dataclasses
import json
from collections.abc import Collection, Iterable, Mapping, Sequence
from typing import Any, Protocol, TypeVar

from hookwise.actions import action_label
from hookwise.event import Event, new_id
from hookwise.store.base import (
    ACTIVE_STATUSES,
    FINISHED_STATUSES,
    WAITING_STATUSES,
    AcceptResult,
    AttemptRecord,
    Decision,
    NewRun,
    Progress,
    Pruned,
    RunRecord,
    run_view,
)

R = TypeVar("R")
Row = Mapping[str, Any]

RUN_COLUMNS = (
    "id, event_id, rule, status, spec, step, attempt, attempts_total, outputs, error, "
    "created_at, updated_at, next_attempt_at, flow, concurrency_key, awaited_event_id"
)
# Statuses a run can be claimed from once due; `running` only when its lease expired.
CLAIMABLE = ("pending", "retrying", "debouncing", *WAITING_STATUSES)
# Runs in these statuses occupy one of their concurrency key's slots.
HOLDING = ("running", "retrying")
NOT_STARTED = ("pending", "debouncing", *WAITING_STATUSES)


class Cursor(Protocol):
    rowcount: int

    def fetchone(self) -> Any: ...

    def fetchall(self) -> list[Any]: ...


class Tx(Protocol):
    def execute(self, sql: str, params: Sequence[Any] = ()) -> Cursor: ...

    def lock(self, name: str) -> None:
        """Wait for the named lock; it is held until the transaction ends."""

    def try_lock(self, name: str) -> bool:
        """Take the named lock if it is free, without waiting."""


def _not_in(column: str, items: Collection[Any]) -> str:
    return f"AND {column} NOT IN ({','.join('?' * len(items))})" if items else ""


def _quoted(statuses: Iterable[str]) -> str:
    return ", ".join(f"'{status}'" for status in statuses)


# ----------------------------------------------------------------------------------------
# Accepting events


def accept(
    tx: Tx,
    event: Event,
    dedupe_key: str,
    window: float,
    runs: list[NewRun],
    awaited: list[tuple[str, str]],
) -> AcceptResult:
    # One statement claims the key, atomically on both backends: a concurrent copy of
    # the delivery waits for this transaction, then finds the key taken. A key older
    # than the window is taken over.
    claimed = tx.execute(
        "INSERT INTO dedupe (key, event_id, seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at "
        "WHERE dedupe.seen_at <= ? RETURNING event_id",
        (dedupe_key, event.id, event.received_at, event.received_at - window),
    ).fetchone()
    if claimed is None:
        seen = tx.execute("SELECT event_id FROM dedupe WHERE key = ?", (dedupe_key,)).fetchone()
        return AcceptResult(seen["event_id"], duplicate=True)
    tx.execute(
        "INSERT INTO events (id, source, kind, domain, event_type, delivery_id, "
        "received_at, data, headers, artifacts) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            event.id,
            event.source,
            event.kind,
            event.domain,
            event.event_type,
            event.delivery_id,
            event.received_at,
            json.dumps(event.data),
            json.dumps(event.headers),
            json.dumps(event.artifacts),
        ),
    )
    # Release earlier waiting runs first, so a run is never released by its own event.
    for rule, key in awaited:
        _resolve_waiting(tx, rule, key, event.id, event.received_at)
    add_runs(tx, event.id, runs, event.received_at)
    return AcceptResult(event.id, duplicate=False)


def add_runs(tx: Tx, event_id: str, runs: list[NewRun], now: float) -> None:
    for run in runs:
        if run.keys.debounce is not None and _join_batch(tx, run, event_id, now):
            continue
        status, error = run.status, run.error
        if status == "pending" and run.keys.throttle is not None:
            error = _throttled(tx, run, now)
            status = "skipped" if error else status
        if status == "pending" and run.keys.concurrency is not None:
            _supersede(tx, run, now)
        _insert_run(tx, run, event_id, status, error, now)


def _insert_run(
    tx: Tx, run: NewRun, event_id: str, status: str, error: str | None, now: float
) -> None:
    flow: dict[str, Any] = {}
    due = now
    if status == "pending" and run.keys.debounce is not None:
        status, due = "debouncing", now + run.spec["debounce"]["window"]
    elif status == "pending" and run.keys.wait is not None:
        deadline = now + run.spec["wait_for"]["timeout"]
        status, due, flow = "waiting_event", deadline, {"wait_deadline": deadline}
    tx.execute(
        "INSERT INTO runs (id, event_id, rule, status, spec, error, created_at, updated_at, "
        "next_attempt_at, flow, debounce_key, concurrency_key, await_key) "
        "VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
        (
            run.id,
            event_id,
            run.rule,
            status,
            json.dumps(run.spec),
            error,
            now,
            now,
            due,
            json.dumps(flow),
            run.keys.debounce if status == "debouncing" else None,
            run.keys.concurrency,
            run.keys.wait,
        ),
    )
    _link(tx, run.id, event_id, "trigger")


def _link(tx: Tx, run_id: str, event_id: str, role: str) -> None:
    tx.execute(
        "INSERT INTO run_events (run_id, event_id, role) VALUES (?, ?, ?) "
        "ON CONFLICT (run_id, event_id) DO NOTHING",
        (run_id, event_id, role),
    )


def _join_batch(tx: Tx, run: NewRun, event_id: str, now: float) -> bool:
    """Add the event to the rule's open batch for this key; False when there is none."""
    tx.lock(f"debounce:{run.rule}:{run.keys.debounce}")
    open_batch = tx.execute(
        "SELECT id, created_at FROM runs "
        "WHERE rule = ? AND debounce_key = ? AND status = 'debouncing'",
        (run.rule, run.keys.debounce),
    ).fetchone()
    if open_batch is None:
        return False
    settings = run.spec["debounce"]
    due = now + settings["window"]
    if settings.get("max_wait") is not None:
        due = min(due, open_batch["created_at"] + settings["max_wait"])
    tx.execute(
        "UPDATE runs SET next_attempt_at = ?, updated_at = ? WHERE id = ?",
        (due, now, open_batch["id"]),
    )
    _link(tx, open_batch["id"], event_id, "trigger")
    return True


def _throttled(tx: Tx, run: NewRun, now: float) -> str | None:
    """Why the run is skipped, or None after taking the key's turn for this period."""
    tx.lock(f"throttle:{run.rule}:{run.keys.throttle}")
    period = run.spec["throttle"]["once_per"]
    last = tx.execute(
        "SELECT last_at, run_id FROM throttles WHERE rule = ? AND key = ?",
        (run.rule, run.keys.throttle),
    ).fetchone()
    if last is not None and last["last_at"] > now - period:
        wait = last["last_at"] + period - now
        return (
            f"throttled: run {last['run_id']} already ran for key {run.keys.throttle!r} "
            f"{now - last['last_at']:.0f}s ago (once per {period:g}s; next allowed in {wait:.0f}s)"
        )
    tx.execute(
        "INSERT INTO throttles (rule, key, last_at, run_id, expires_at) VALUES (?, ?, ?, ?, ?) "
        "ON CONFLICT (rule, key) DO UPDATE SET last_at = excluded.last_at, "
        "run_id = excluded.run_id, expires_at = excluded.expires_at",
        (run.rule, run.keys.throttle, now, run.id, now + period),
    )
    return None


def _supersede(tx: Tx, run: NewRun, now: float) -> None:
    """Latest wins: runs of the same key that have not started give way to this one."""
    if run.spec["concurrency"].get("on_conflict") != "supersede":
        return
    tx.lock(f"concurrency:{run.rule}:{run.keys.concurrency}")
    tx.execute(
        f"UPDATE runs SET status = 'superseded', error = ?, updated_at = ? "
        f"WHERE rule = ? AND concurrency_key = ? AND status IN ({_quoted(NOT_STARTED)}) "
        "AND attempts_total = 0",
        (
            f"superseded by run {run.id}, a newer one for the same key",
            now,
            run.rule,
            run.keys.concurrency,
        ),
    )


def _resolve_waiting(tx: Tx, rule: str, key: str, event_id: str, now: float) -> None:
    """Hand this event to runs of `rule` waiting for `key`; they are due at once."""
    waiting = tx.execute(
        "SELECT id FROM runs WHERE rule = ? AND await_key = ? AND status = 'waiting_event' "
        "AND awaited_event_id IS NULL",
        (rule, key),
    ).fetchall()
    for row in waiting:
        updated = tx.execute(
            "UPDATE runs SET awaited_event_id = ?, next_attempt_at = ?, updated_at = ? "
            "WHERE id = ? AND awaited_event_id IS NULL AND status = 'waiting_event'",
            (event_id, now, now, row["id"]),
        ).rowcount
        if updated:
            _link(tx, row["id"], event_id, "awaited")


# ----------------------------------------------------------------------------------------
# Executing runs


def claim(
    tx: Tx,
    owner: str,
    limit: int,
    lease: float,
    exclude: Collection[str],
    now: float,
    row_lock: str = "",
) -> list[RunRecord]:
    skip = list(exclude)
    rows = tx.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE "
        f"((status IN ({_quoted(CLAIMABLE)}) AND next_attempt_at <= ?) "
        f"OR (status = 'running' AND lease_expires_at < ?)) {_not_in('id', skip)} "
        f"ORDER BY next_attempt_at LIMIT ?{row_lock}",
        (now, now, *skip, limit * 4),
    ).fetchall()
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
        record.phase, record.status, record.lease = record.status, "running", token
        claimed.append(record)
    return claimed


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
        f"AND status IN ({_quoted(HOLDING)})",
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
) -> bool:
    keep_lease = progress.status == "running"
    flow = json.dumps(progress.flow) if progress.flow is not None else None
    updated = tx.execute(
        "UPDATE runs SET status = ?, step = ?, attempt = ?, "
        "attempts_total = attempts_total + ?, outputs = ?, error = ?, "
        "next_attempt_at = ?, updated_at = ?, flow = COALESCE(?, flow), "
        "lease_owner = CASE WHEN ? THEN lease_owner END, "
        "lease_expires_at = CASE WHEN ? THEN lease_expires_at END "
        "WHERE id = ? AND lease_owner = ? AND status = 'running'",
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
    ).rowcount
    if updated and attempt is not None:
        insert_attempt(tx, attempt)
    return bool(updated)


def decide(tx: Tx, decision: Decision, now: float, for_update: str = "") -> str:
    """Record an approver's decision and wake the run; the runner acts on it.

    One decision per person and run (a database constraint), so `required: 2` means
    two different people. Returns what happened: recorded, repeated, unknown, or the
    run's status when it is not waiting for approval.
    """
    row = tx.execute(
        f"SELECT status FROM runs WHERE id = ?{for_update}", (decision.run_id,)
    ).fetchone()
    if row is None:
        return "unknown"
    if row["status"] != "waiting_approval":
        return row["status"]
    inserted = tx.execute(
        "INSERT INTO decisions (run_id, actor, decision, reason, via, decided_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, actor) DO NOTHING",
        (decision.run_id, decision.actor, decision.decision, decision.reason, decision.via, now),
    ).rowcount
    if not inserted:
        return "repeated"
    tx.execute(
        "UPDATE runs SET next_attempt_at = ? WHERE id = ? AND status = 'waiting_approval'",
        (now, decision.run_id),
    )
    return "recorded"


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


def insert_attempt(tx: Tx, attempt: AttemptRecord) -> None:
    tx.execute(
        "INSERT INTO attempts (run_id, step, action, number, started_at, ended_at, status, "
        "output, error, log) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    )


# ----------------------------------------------------------------------------------------
# Retention

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
        f"SELECT id FROM runs WHERE status IN ({_quoted(FINISHED_STATUSES)}) "
        "AND updated_at < ? LIMIT ?",
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


# ----------------------------------------------------------------------------------------
# Reading


def get_event(tx: Tx, event_id: str) -> Event | None:
    row = tx.execute("SELECT * FROM events WHERE id = ?", (event_id,)).fetchone()
    return event_from(row) if row else None


def get_run(tx: Tx, run_id: str) -> RunRecord | None:
    row = tx.execute(f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?", (run_id,)).fetchone()
    return run_record(row) if row else None


def events_of_run(tx: Tx, run_id: str) -> list[Event]:
    """The events that triggered the run, oldest first (one, or a debounced batch)."""
    rows = tx.execute(
        "SELECT e.* FROM events e JOIN run_events l ON l.event_id = e.id "
        "WHERE l.run_id = ? AND l.role = 'trigger' ORDER BY e.received_at, e.id",
        (run_id,),
    ).fetchall()
    return [event_from(row) for row in rows]


def decisions_of(tx: Tx, run_id: str) -> list[Decision]:
    rows = tx.execute(
        "SELECT run_id, actor, decision, reason, via, decided_at FROM decisions "
        "WHERE run_id = ? ORDER BY decided_at, actor",
        (run_id,),
    ).fetchall()
    return [load(Decision, row) for row in rows]


def list_events(
    tx: Tx, filters: dict[str, str], status: str | None, limit: int
) -> list[dict[str, Any]]:
    where = " AND ".join(f"e.{column} = ?" for column in filters) or "1 = 1"
    having = "HAVING " + _EVENT_STATUS + " = ?" if status else ""
    sql = (
        f"SELECT e.*, COUNT(r.id) AS run_count, {_EVENT_STATUS} AS event_status "
        "FROM events e LEFT JOIN run_events l ON l.event_id = e.id "
        f"LEFT JOIN runs r ON r.id = l.run_id WHERE {where} "
        f"GROUP BY e.id {having} ORDER BY e.id DESC LIMIT ?"
    )
    params = (*filters.values(), *([status] if status else []), limit)
    return [
        {**event_from(row).as_dict(), "status": row["event_status"], "runs": row["run_count"]}
        for row in tx.execute(sql, params).fetchall()
    ]


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


# An event is as far as its runs: any dead → failed; any still going → active;
# any succeeded → succeeded; all stopped by flow control (skipped, expired, …) → stopped.
_DEAD = _count("r.status = 'dead'")
_GOING = _count(f"r.status IN ({_quoted(ACTIVE_STATUSES)})")
_SUCCEEDED = _count("r.status = 'succeeded'")
_EVENT_STATUS = (
    f"CASE WHEN COUNT(r.id) = 0 THEN 'unmatched' WHEN {_DEAD} > 0 THEN 'failed' "
    f"WHEN {_GOING} > 0 THEN 'active' WHEN {_SUCCEEDED} > 0 THEN 'succeeded' "
    "ELSE 'stopped' END"
)


def runs_of(tx: Tx, event_id: str) -> list[dict[str, Any]]:
    runs = tx.execute(
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS.split(', '))} FROM runs r "
        "JOIN run_events l ON l.run_id = r.id WHERE l.event_id = ? ORDER BY r.created_at, r.id",
        (event_id,),
    ).fetchall()
    return [run_details(tx, run_record(row)) for row in runs]


def run_details(tx: Tx, run: RunRecord) -> dict[str, Any]:
    attempts = tx.execute(
        "SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run.id,)
    ).fetchall()
    events = tx.execute(
        "SELECT event_id, role FROM run_events WHERE run_id = ? ORDER BY event_id", (run.id,)
    ).fetchall()
    view = run_view(run, [attempt_from(a) for a in attempts])
    view["events"] = [row["event_id"] for row in events if row["role"] == "trigger"]
    view["awaited_event"] = run.awaited_event_id
    view["decisions"] = [d.as_dict() for d in decisions_of(tx, run.id)]
    return view


def recent_runs(tx: Tx, statuses: Sequence[str], limit: int) -> list[RunRecord]:
    rows = tx.execute(
        f"SELECT {RUN_COLUMNS} FROM runs WHERE status IN ({','.join('?' * len(statuses))}) "
        "ORDER BY updated_at DESC LIMIT ?",
        (*statuses, limit),
    ).fetchall()
    return [run_record(row) for row in rows]


def queue_depth(tx: Tx) -> int:
    row = tx.execute(
        "SELECT COUNT(*) AS n FROM runs WHERE status IN ('pending', 'retrying')"
    ).fetchone()
    return int(row["n"])


def next_due(tx: Tx) -> float | None:
    row = tx.execute(
        f"SELECT MIN(next_attempt_at) AS due FROM runs WHERE status IN ({_quoted(CLAIMABLE)}) "
        # Runs queued for a concurrency slot wait for a run to finish, which wakes the
        # worker anyway; counting them would make an idle worker poll without pause.
        "AND NOT (status = 'pending' AND concurrency_key IS NOT NULL)"
    ).fetchone()
    return row["due"]


# ----------------------------------------------------------------------------------------
# Rows to records


def load(cls: type[R], row: Row, *json_columns: str) -> R:
    """A record dataclass from a row: same names, JSON columns decoded."""
    names = {f.name for f in dataclasses.fields(cls)}  # type: ignore[arg-type]
    values = {key: row[key] for key in names.intersection(row.keys())}
    for column in json_columns:
        values[column] = json.loads(values[column]) if values[column] is not None else None
    return cls(**values)


def event_from(row: Row) -> Event:
    return load(Event, row, "data", "headers", "artifacts")


def run_record(row: Row) -> RunRecord:
    return load(RunRecord, row, "spec", "outputs", "flow")


def attempt_from(row: Row) -> AttemptRecord:
    return load(AttemptRecord, row, "output", "log")
