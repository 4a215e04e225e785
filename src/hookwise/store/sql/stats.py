"""Counts for the console and `/api/rules`: what each rule did, and the state of things."""

from __future__ import annotations

from hookwise.status import ACTIVE
from hookwise.store.records import Overview, RuleStats
from hookwise.store.sql.common import Tx, quoted


def rule_stats(tx: Tx) -> dict[str, RuleStats]:
    rows = tx.execute(
        "SELECT rule, COUNT(DISTINCT event_id) AS matches, COUNT(*) AS runs, "
        "SUM(CASE WHEN status = 'dead' THEN 1 ELSE 0 END) AS failures, "
        "MAX(created_at) AS last_fired FROM runs GROUP BY rule"
    ).fetchall()
    errors = tx.execute(
        "SELECT r.rule, r.error FROM runs r WHERE r.status = 'dead' AND r.updated_at = "
        "(SELECT MAX(d.updated_at) FROM runs d WHERE d.rule = r.rule AND d.status = 'dead')"
    ).fetchall()
    last_error = {row["rule"]: row["error"] for row in errors}
    return {
        row["rule"]: RuleStats(
            int(row["matches"]),
            int(row["runs"]),
            int(row["failures"] or 0),
            float(row["last_fired"]),
            last_error.get(row["rule"]),
        )
        for row in rows
    }


def overview(tx: Tx, now: float) -> Overview:
    """Runs by status created in the last hour and day; the oldest still to be done."""
    rows = tx.execute(
        "SELECT status, SUM(CASE WHEN created_at >= ? THEN 1 ELSE 0 END) AS hour, "
        "COUNT(*) AS day FROM runs WHERE created_at >= ? GROUP BY status",
        (now - 3600, now - 86400),
    ).fetchall()
    oldest = tx.execute(
        f"SELECT id, created_at FROM runs WHERE status IN ({quoted(ACTIVE)}) "
        "ORDER BY created_at, id LIMIT 1"
    ).fetchone()
    dead = tx.execute("SELECT COUNT(*) AS n FROM runs WHERE status = 'dead'").fetchone()
    active = tx.execute(
        f"SELECT status, COUNT(*) AS n FROM runs WHERE status IN ({quoted(ACTIVE)}) GROUP BY status"
    ).fetchall()
    events = tx.execute(
        "SELECT SUM(CASE WHEN received_at >= ? THEN 1 ELSE 0 END) AS hour, COUNT(*) AS day "
        "FROM events WHERE received_at >= ?",
        (now - 3600, now - 86400),
    ).fetchone()
    return Overview(
        last_hour={row["status"]: int(row["hour"] or 0) for row in rows if row["hour"]},
        last_day={row["status"]: int(row["day"]) for row in rows},
        events_last_hour=int(events["hour"] or 0),
        events_last_day=int(events["day"] or 0),
        oldest_active=(oldest["id"], float(oldest["created_at"])) if oldest else None,
        dead=int(dead["n"]),
        active={row["status"]: int(row["n"]) for row in active},
    )
