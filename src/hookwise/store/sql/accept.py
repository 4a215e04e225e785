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
    Tx,
    quoted,
)


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
        "received_at, data, headers, artifacts, meta) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
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
    )
    # Release earlier waiting runs first, so a run is never released by its own event.
    for rule, key in awaited:
        _resolve_waiting(tx, rule, key, event.id, event.received_at)
    add_runs(tx, event.id, runs, event.received_at)
    return AcceptResult(event.id, duplicate=False, new_work=bool(runs or awaited))


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
