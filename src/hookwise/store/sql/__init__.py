"""The store's logic as portable SQL, shared by the SQLite and PostgreSQL backends.

Each function runs inside one transaction the backend opened, on a `Tx`: anything with
`execute(sql, params)` returning a cursor whose rows read like mappings. Placeholders
are `?`, and no SQL text here contains a literal `?` or `%`, so a backend that spells
placeholders differently can translate blindly. `lock(name)` serializes writers that
touch the same flow key until their transaction ends (a no-op where one writer does
everything), so debounce, throttle, supersede and concurrency limits hold across
processes. Only standard SQL that SQLite and PostgreSQL both read the same way is used.
"""

from hookwise.store.sql.accept import accept, add_runs
from hookwise.store.sql.common import Tx
from hookwise.store.sql.execute import claim, record, renew
from hookwise.store.sql.intervene import cancel, decide, retry
from hookwise.store.sql.read import (
    decisions_of,
    events_of_run,
    get_event,
    get_run,
    ids_starting,
    list_events,
    list_runs,
    next_due,
    queue_depth,
    run_detail,
    runs_of,
)
from hookwise.store.sql.retention import prune
from hookwise.store.sql.stats import overview, rule_stats

__all__ = [
    "Tx",
    "accept",
    "add_runs",
    "cancel",
    "claim",
    "decide",
    "decisions_of",
    "events_of_run",
    "get_event",
    "get_run",
    "ids_starting",
    "list_events",
    "list_runs",
    "next_due",
    "overview",
    "prune",
    "queue_depth",
    "record",
    "renew",
    "retry",
    "rule_stats",
    "run_detail",
    "runs_of",
]
