"""Reading the history: events, runs, attempts and decisions, as records."""

from __future__ import annotations

from typing import Any

from hookwise.event import Event
from hookwise.status import ACTIVE, EventStatus
from hookwise.store.records import (
    Decision,
    EventQuery,
    EventSummary,
    RunDetail,
    RunQuery,
    RunRecord,
)
from hookwise.store.sql.common import (
    CLAIMABLE,
    RUN_COLUMNS,
    Tx,
    quoted,
)
from hookwise.store.sql.rows import attempt_from, event_from, load, run_record


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


def list_events(tx: Tx, query: EventQuery) -> list[EventSummary]:
    where, params = _where(
        [
            ("e.source = ?", query.source),
            ("e.domain = ?", query.domain),
            ("e.event_type = ?", query.event_type),
            ("LOWER(e.artifacts) LIKE ? ESCAPE '\\'", _containing(query.text)),
            ("e.received_at >= ?", query.since),
            ("e.received_at < ?", query.until),
            ("e.id < ?", query.before),
        ]
    )
    having = "HAVING " + _EVENT_STATUS + " = ?" if query.status else ""
    sql = (
        f"SELECT e.*, COUNT(r.id) AS run_count, {_EVENT_STATUS} AS event_status "
        "FROM events e LEFT JOIN run_events l ON l.event_id = e.id "
        f"LEFT JOIN runs r ON r.id = l.run_id WHERE {where} "
        f"GROUP BY e.id {having} ORDER BY e.id DESC LIMIT ?"
    )
    params += [*([str(query.status)] if query.status else []), query.limit]
    return [
        EventSummary(event_from(row), EventStatus(row["event_status"]), int(row["run_count"]))
        for row in tx.execute(sql, params).fetchall()
    ]


def list_runs(tx: Tx, query: RunQuery) -> list[RunRecord]:
    statuses = ",".join("?" * len(query.statuses))
    where, params = _where(
        [
            (f"r.status IN ({statuses})", list(map(str, query.statuses)) or None),
            ("r.rule = ?", query.rule),
            ("e.source = ?", query.source),
            ("? IN (r.concurrency_key, r.debounce_key, r.await_key)", query.key),
            ("r.created_at >= ?", query.since),
            ("r.created_at < ?", query.until),
            ("r.id < ?", query.before),
        ]
    )
    columns = ", ".join("r." + c for c in RUN_COLUMNS.split(", "))
    rows = tx.execute(
        f"SELECT {columns} FROM runs r JOIN events e ON e.id = r.event_id "
        f"WHERE {where} ORDER BY r.id DESC LIMIT ?",
        [*params, query.limit],
    ).fetchall()
    return [run_record(row) for row in rows]


def _where(conditions: list[tuple[str, Any]]) -> tuple[str, list[Any]]:
    """The conditions whose value is given, joined; a list value fills every `?` of its SQL."""
    kept = [(sql, value) for sql, value in conditions if value is not None]
    params = [v for _, value in kept for v in (value if isinstance(value, list) else [value])]
    return " AND ".join(sql for sql, _ in kept) or "1 = 1", params


def _containing(text: str | None) -> str | None:
    if not text:
        return None
    escaped = text.lower().replace("\\", "\\\\").replace("%", "\\%").replace("_", "\\_")
    return f"%{escaped}%"


def ids_starting(tx: Tx, prefix: str, limit: int = 2) -> list[tuple[str, str]]:
    """(`event` or `run`, id) for ids that begin with `prefix`: ULIDs, compared uppercased."""
    pattern = prefix.upper() + "%"
    found = []
    for kind, table in (("event", "events"), ("run", "runs")):
        rows = tx.execute(
            f"SELECT id FROM {table} WHERE id LIKE ? ORDER BY id LIMIT ?", (pattern, limit)
        ).fetchall()
        found += [(kind, str(row["id"])) for row in rows]
    return found


def _count(condition: str) -> str:
    return f"SUM(CASE WHEN {condition} THEN 1 ELSE 0 END)"


# An event is as far as its runs: any dead → dead; any still going → active;
# any succeeded → succeeded; all stopped by flow control (skipped, expired, …) → stopped.
_DEAD = _count("r.status = 'dead'")
_GOING = _count(f"r.status IN ({quoted(ACTIVE)})")
_SUCCEEDED = _count("r.status = 'succeeded'")
_EVENT_STATUS = (
    f"CASE WHEN COUNT(r.id) = 0 THEN 'unmatched' WHEN {_DEAD} > 0 THEN 'dead' "
    f"WHEN {_GOING} > 0 THEN 'active' WHEN {_SUCCEEDED} > 0 THEN 'succeeded' "
    "ELSE 'stopped' END"
)


def runs_of(tx: Tx, event_id: str) -> list[RunDetail]:
    runs = tx.execute(
        f"SELECT {', '.join('r.' + c for c in RUN_COLUMNS.split(', '))} FROM runs r "
        "JOIN run_events l ON l.run_id = r.id WHERE l.event_id = ? ORDER BY r.created_at, r.id",
        (event_id,),
    ).fetchall()
    return [run_detail(tx, run_record(row)) for row in runs]


def run_detail(tx: Tx, run: RunRecord) -> RunDetail:
    attempts = tx.execute(
        "SELECT * FROM attempts WHERE run_id = ? ORDER BY id", (run.id,)
    ).fetchall()
    events = tx.execute(
        "SELECT event_id FROM run_events WHERE run_id = ? AND role = 'trigger' ORDER BY event_id",
        (run.id,),
    ).fetchall()
    return RunDetail(
        run,
        [attempt_from(a) for a in attempts],
        [row["event_id"] for row in events],
        decisions_of(tx, run.id),
    )


def queue_depth(tx: Tx) -> int:
    row = tx.execute(
        "SELECT COUNT(*) AS n FROM runs WHERE status IN ('pending', 'retrying')"
    ).fetchone()
    return int(row["n"])


def next_due(tx: Tx) -> float | None:
    row = tx.execute(
        f"SELECT MIN(next_attempt_at) AS due FROM runs WHERE status IN ({quoted(CLAIMABLE)}) "
        # Runs queued for a concurrency slot wait for a run to finish, which wakes the
        # worker anyway; counting them would make an idle worker poll without pause.
        "AND NOT (status = 'pending' AND concurrency_key IS NOT NULL)"
    ).fetchone()
    return float(row["due"]) if row["due"] is not None else None
