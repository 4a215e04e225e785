"""Accepting an event: dedupe, its runs, and flow control applied in the same transaction."""

from __future__ import annotations

import json
from typing import Any

from hookwise.event import Event
from hookwise.status import RunStatus
from hookwise.store.records import (
    AcceptResult,
    NewRun,
)
from hookwise.store.sql.common import (
    NOT_STARTED,
    Later,
    Row,
    Tx,
    insert,
    quoted,
)

# (dedupe key, event id): a row goes in only if the key is that event's.
Guard = tuple[str, str] | None


def accept(
    tx: Tx,
    event: Event,
    dedupe_key: str,
    window: float,
    runs: list[NewRun],
    awaited: list[tuple[str, str]],
) -> Later[AcceptResult]:
    # One statement claims the key, atomically on both backends: a concurrent copy of
    # the delivery waits for this transaction, then finds the key taken. A key older
    # than the window is taken over.
    claim = tx.execute(
        "INSERT INTO dedupe (key, event_id, seen_at) VALUES (?, ?, ?) "
        "ON CONFLICT (key) DO UPDATE SET event_id = excluded.event_id, seen_at = excluded.seen_at "
        "WHERE dedupe.seen_at <= ? RETURNING event_id",
        (dedupe_key, event.id, event.received_at, event.received_at - window),
    )
    seen = tx.execute("SELECT event_id FROM dedupe WHERE key = ?", (dedupe_key,))
    new_work = bool(runs or awaited)
    if awaited or any(_has_flow(run) for run in runs):
        # Flow control reads what earlier events left (batches, throttles, waiting
        # runs), so the claim's answer is needed before anything else is written.
        answer = claim.fetchone()
        if answer is not None:
            _insert_event(tx, event, None)
            # Release earlier waiting runs first, so a run is never released by its own event.
            for rule, key in awaited:
                _resolve_waiting(tx, rule, key, event.id, event.received_at)
            add_runs(tx, event.id, runs, event.received_at)
        return Later(lambda: _result(answer, seen.fetchone(), new_work))
    # Nothing here depends on the claim's answer: every insert is conditional on the key
    # being this event's, so the answer is read along with the rest of the batch's.
    guard = (dedupe_key, event.id)
    _insert_event(tx, event, guard)
    for run in runs:
        _insert_run(tx, run, event.id, run.status, run.error, event.received_at, guard)
    return Later(lambda: _result(claim.fetchone(), seen.fetchone(), new_work))


def _has_flow(run: NewRun) -> bool:
    keys = run.keys
    return keys.debounce is not None or keys.throttle is not None or keys.concurrency is not None


def _result(claimed: Any, owner: Row, new_work: bool) -> AcceptResult:
    """A duplicate names the event that holds the key, the first copy of the delivery."""
    if claimed is None:
        return AcceptResult(owner["event_id"], duplicate=True)
    return AcceptResult(owner["event_id"], duplicate=False, new_work=new_work)


def _insert_event(tx: Tx, event: Event, guard: Guard) -> None:
    _insert(
        tx,
        "events (id, source, kind, domain, event_type, delivery_id, received_at, data, "
        "headers, artifacts, meta)",
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
            json.dumps(event.meta),
        ),
        guard,
    )


def _insert(
    tx: Tx, into: str, values: tuple[Any, ...], guard: Guard, ignore: str | None = None
) -> None:
    """With a guard (dedupe key, event id), only if the key is that event's, and only
    once: the row follows the event in or stays out with it, and the same write run
    again (after a commit whose outcome was lost) adds nothing."""
    if guard is None:
        insert(tx, into, values, ignore=ignore)
    else:
        owned = ("EXISTS (SELECT 1 FROM dedupe WHERE key = ? AND event_id = ?)", guard)
        insert(tx, into, values, only_if=owned, ignore=ignore or "(id)")


def add_runs(tx: Tx, event_id: str, runs: list[NewRun], now: float) -> None:
    for run in runs:
        if run.keys.debounce is not None and _join_batch(tx, run, event_id, now):
            continue
        status, error = run.status, run.error
        if status == "pending" and run.keys.throttle is not None:
            error = _throttled(tx, run, now)
            status = RunStatus.SKIPPED if error else status
        if status == "pending" and run.keys.concurrency is not None:
            _supersede(tx, run, now)
        _insert_run(tx, run, event_id, status, error, now)


def _insert_run(
    tx: Tx,
    run: NewRun,
    event_id: str,
    status: str,
    error: str | None,
    now: float,
    guard: Guard = None,
) -> None:
    flow: dict[str, Any] = {}
    due = now
    if status == "pending" and run.keys.debounce is not None:
        status, due = "debouncing", now + run.spec["debounce"]["window"]
    elif status == "pending" and run.keys.wait is not None:
        deadline = now + run.spec["wait_for"]["timeout"]
        status, due, flow = "waiting_event", deadline, {"wait_deadline": deadline}
    _insert(
        tx,
        "runs (id, event_id, rule, status, spec, error, created_at, updated_at, "
        "next_attempt_at, flow, debounce_key, concurrency_key, await_key)",
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
        guard,
    )
    _link(tx, run.id, event_id, "trigger", guard)


def _link(tx: Tx, run_id: str, event_id: str, role: str, guard: Guard = None) -> None:
    columns = "run_events (run_id, event_id, role)"
    _insert(tx, columns, (run_id, event_id, role), guard, "(run_id, event_id)")


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
        f"WHERE rule = ? AND concurrency_key = ? AND status IN ({quoted(NOT_STARTED)}) "
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
