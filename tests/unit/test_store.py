"""The store, on SQLite and on PostgreSQL alike: atomic accept with dedupe, leases and
takeover, schema versions and `hookwise db upgrade`; and what only several processes on
one PostgreSQL database need: SKIP LOCKED claims, flow-key locks, LISTEN/NOTIFY.
"""

from __future__ import annotations

import asyncio
import contextlib
import sqlite3
import time
from collections.abc import AsyncIterator, Iterator
from pathlib import Path
from typing import Any

import psycopg
import pytest

from hookwise import retention
from hookwise.config import Config
from hookwise.errors import StoreError
from hookwise.event import Event, new_id
from hookwise.status import EventStatus, RunStatus
from hookwise.store import (
    AttemptRecord,
    Decision,
    EventQuery,
    FlowKeys,
    NewRun,
    Progress,
    Pruned,
    RuleStats,
    RunQuery,
    Schema,
    Store,
    display_url,
    open_store,
)
from hookwise.store import postgres as pg_schema
from hookwise.store import sql as portable
from hookwise.store import sqlite as sqlite_schema
from hookwise.views import run_view
from tests.cli import invoke
from tests.conftest import project
from tests.history import DAY, T0, Clock, deliver, finished, settle
from tests.postgres import fresh_database

SPEC = {"name": "r", "description": "", "actions": [{"uses": "log", "with": {"message": "x"}}]}
# PostgreSQL needs its server running: the fast tier (`make test-fast`) leaves it out.
BACKENDS = ["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)]


async def viewed(store: Store, event_id: str) -> list[dict]:
    """The event's runs as the API shows them."""
    return [run_view(run) for run in await store.runs_of(event_id)]


@pytest.fixture(params=BACKENDS)
def store_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """An empty store of each backend; PostgreSQL gets a database of its own per test."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path}/db/hookwise.db"
    else:
        with fresh_database() as url:
            yield url


@pytest.fixture
def pg_url() -> Iterator[str]:
    """For PostgreSQL-only tests, which `tests/conftest.py` marks slow."""
    with fresh_database() as url:
        yield url


@pytest.fixture
async def store(store_url: str) -> AsyncIterator[Store]:
    instance = open_store(store_url)
    await instance.open()
    yield instance
    await instance.close()


def event(at: float | None = None) -> Event:
    return Event(
        new_id(),
        "artifactory",
        "artifactory",
        "docker",
        "pushed",
        None,
        at or time.time(),
        {"tag": "1"},
        {},
    )


@pytest.mark.anyio
async def test_accept_is_atomic_and_deduplicates_within_the_window(store: Store):
    first = event()
    result = await store.accept(first, "k1", 60, [NewRun(new_id(), "r", SPEC)])
    assert (result.event_id, result.duplicate) == (first.id, False)
    again = await store.accept(event(), "k1", 60, [NewRun(new_id(), "r", SPEC)])
    assert (again.event_id, again.duplicate) == (first.id, True)
    assert len(await store.runs_of(first.id)) == 1
    assert len(await store.list_events(EventQuery(limit=100))) == 1
    # Outside the window the same key is a new event.
    later = event(at=first.received_at + 61)
    fresh = await store.accept(later, "k1", 60, [])
    assert (fresh.event_id, fresh.duplicate) == (later.id, False)


@pytest.mark.anyio
async def test_concurrent_accepts_all_land(store: Store):
    events = [event() for _ in range(300)]
    results = await asyncio.gather(
        *(
            store.accept(e, f"key-{i}", 60, [NewRun(new_id(), "r", SPEC)])
            for i, e in enumerate(events)
        )
    )
    assert [r.event_id for r in results] == [e.id for e in events]
    assert await store.queue_depth() == 300
    listed = await store.list_events(
        EventQuery(domain="docker", status=EventStatus.ACTIVE, limit=1000)
    )
    assert len(listed) == 300


@pytest.mark.anyio
async def test_an_accept_run_again_after_a_lost_commit_adds_nothing(store: Store):
    """PostgreSQL runs a write again when its connection died during COMMIT: if the
    first did commit, the second must find the delivery already there."""
    again, runs = event(), [NewRun(new_id(), "r", SPEC), NewRun(new_id(), "r", SPEC)]
    first = await store.accept(again, "lost-commit", 60, runs)
    second = await store.accept(again, "lost-commit", 60, runs)
    assert (first.duplicate, first.new_work) == (False, True)
    assert (second.event_id, second.duplicate, second.new_work) == (again.id, True, False)
    assert sorted(d.run.id for d in await store.runs_of(again.id)) == sorted(r.id for r in runs)
    assert [e.id for e in await store.events_of_run(runs[0].id)] == [again.id]


@pytest.mark.anyio
async def test_failed_write_does_not_undo_its_batch_neighbours(store: Store):
    good = event()
    duplicate_run_id = new_id()
    first = await store.accept(event(), "a", 60, [NewRun(duplicate_run_id, "r", SPEC)])
    outcomes = await asyncio.gather(
        store.add_runs(first.event_id, [NewRun(duplicate_run_id, "r", SPEC)]),  # PK clash
        store.accept(good, "c", 60, []),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], Exception)
    assert outcomes[1].event_id == good.id
    assert await store.get_event(good.id) == good


@pytest.mark.anyio
async def test_lease_expiry_hands_the_run_to_another_worker(store: Store):
    accepted = event()
    run_id = new_id()
    await store.accept(accepted, "k", 60, [NewRun(run_id, "r", SPEC)])
    [mine] = await store.claim("worker-a", 10, lease=0.3)
    assert (mine.id, mine.attempt) == (run_id, 0)
    assert mine.lease.startswith("worker-a/")
    assert await store.claim("worker-b", 10, lease=0.3) == []
    await asyncio.sleep(0.4)
    # The same process may take its own expired run back, under a new lease token.
    [theirs] = await store.claim("worker-a", 10, lease=30)
    assert (theirs.id, theirs.attempt, theirs.attempts_total) == (run_id, 1, 1)
    assert theirs.lease != mine.lease
    # The first execution comes back too late: its result is refused.
    attempt = AttemptRecord(run_id, 0, "log#1", 1, time.time(), time.time(), "succeeded")
    assert not await store.record(mine.lease, run_id, attempt, Progress("succeeded", 1, 0, {}))
    attempt = AttemptRecord(run_id, 0, "log#1", 2, time.time(), time.time(), "succeeded")
    assert await store.record(theirs.lease, run_id, attempt, Progress("succeeded", 1, 0, {"a": 1}))
    [run] = await viewed(store, accepted.id)
    assert run["status"] == "succeeded"
    assert [(h["attempt"], h["status"]) for h in run["history"]] == [(1, "lost"), (2, "succeeded")]
    assert run["output"] == {"a": 1}


@pytest.mark.anyio
async def test_renewed_lease_is_not_taken_over(store: Store):
    await store.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    [mine] = await store.claim("a", 10, lease=0.3)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await store.renew([mine.lease], 0.3)
    assert await store.claim("b", 10, lease=0.3) == []


@pytest.mark.anyio
async def test_claim_skips_runs_the_caller_is_executing(store: Store):
    await store.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    [mine] = await store.claim("a", 10, lease=0.1)
    await asyncio.sleep(0.2)
    assert await store.claim("a", 10, lease=30, exclude=[mine.id]) == []
    assert [r.id for r in await store.claim("a", 10, lease=30)] == [mine.id]


@pytest.mark.anyio
async def test_retrying_run_waits_until_due(store: Store):
    await store.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    [run] = await store.claim("a", 10, lease=30)
    attempt = AttemptRecord(run.id, 0, "log#1", 1, time.time(), time.time(), "retry", error="503")
    due = time.time() + 0.3
    assert await store.record(
        run.lease, run.id, attempt, Progress("retrying", 0, 1, {}, "503", due)
    )
    assert await store.next_due() == pytest.approx(due)
    assert await store.claim("a", 10, lease=30) == []
    await asyncio.sleep(0.35)
    [again] = await store.claim("a", 10, lease=30)
    assert (again.id, again.attempt) == (run.id, 1)


@pytest.mark.anyio
async def test_claims_take_the_longest_due_first_whatever_their_status(store: Store):
    now = time.time()
    await store.accept(event(now - 30), "old", 60, [NewRun("old-pending", "r", SPEC)])
    await store.accept(event(now - 10), "new", 60, [NewRun("new-pending", "r", SPEC)])
    [retried] = await store.claim("a", 1, lease=30)
    assert retried.id == "old-pending"
    attempt = AttemptRecord(retried.id, 0, "log#1", 1, now, now, "retry", error="503")
    assert await store.record(
        retried.lease, retried.id, attempt, Progress("retrying", 0, 1, {}, "503", now - 20)
    )
    # retrying, due 20 s ago, before the pending run due 10 s ago; then nothing more
    assert [run.id for run in await store.claim("a", 1, lease=30)] == ["old-pending"]
    assert [run.id for run in await store.claim("a", 5, lease=30)] == ["new-pending"]
    assert await store.claim("a", 5, lease=30) == []


def test_a_claim_walks_the_due_index_and_never_sorts_the_backlog(tmp_path: Path):
    """The claim's cost must not grow with the number of due runs (docs/performance.md)."""
    from hookwise.store.sql.execute import _due

    conn = sqlite3.connect(tmp_path / "plan.db")
    for statement in filter(str.strip, ";".join(sqlite_schema.MIGRATIONS).split(";")):
        conn.execute(statement)

    class Explaining:
        def __init__(self) -> None:
            self.plan: list[str] = []

        def execute(self, sql: str, params: tuple) -> sqlite3.Cursor:
            self.plan = [row[3] for row in conn.execute(f"EXPLAIN QUERY PLAN {sql}", params)]
            return conn.execute(sql, params)

    explaining = Explaining()
    _due(explaining, ["x"], 8, time.time(), "")  # type: ignore[arg-type]
    searches = [step for step in explaining.plan if "runs" in step.split()]
    assert searches
    assert all(step.startswith("SEARCH runs USING INDEX runs_due") for step in searches)


@pytest.mark.anyio
async def test_a_nul_character_in_a_field_does_not_make_an_event_unstorable(store: Store):
    odd = Event(new_id(), "ce", "cloudevents", "a\x00b", "t\x00", "id\x00", time.time(), {}, {})
    result = await store.accept(odd, "ce:id\x00", 60, [NewRun(new_id(), "r", SPEC)])
    stored = await store.get_event(result.event_id)
    # SQLite keeps it; PostgreSQL text cannot hold NUL, so U+FFFD stands in for it.
    assert stored is not None and stored.event_type in ("t\x00", "t\ufffd")
    again = await store.accept(odd, "ce:id\x00", 60, [NewRun(new_id(), "r", SPEC)])
    assert (again.event_id, again.duplicate) == (result.event_id, True)


def test_unknown_store_scheme_is_explained():
    with pytest.raises(ValueError, match="unsupported store 'mysql'"):
        open_store("mysql://x")


def test_passwords_stay_out_of_logged_urls():
    assert (
        display_url("postgresql://hw:s3cret@db:5432/hookwise")
        == "postgresql://hw:***@db:5432/hookwise"
    )
    assert display_url("postgresql://db/hw?sslmode=require&password=s3cret") == (
        "postgresql://db/hw?sslmode=require&password=***"
    )
    assert display_url("postgresql://hw@db/hookwise") == "postgresql://hw@db/hookwise"
    assert display_url("sqlite:///./hookwise.db") == "sqlite:///./hookwise.db"


# ----------------------------------------------------------------------------------------
# Schema versions: created when empty, an older one only upgraded on request, a newer one
# refused; the same policy and the same schema on both backends.

OLD_EVENT = (
    "INSERT INTO events (id, source, kind, domain, event_type, delivery_id, received_at, "
    "data, headers) VALUES ('01OLD', 'artifactory', 'artifactory', 'docker', 'pushed', "
    "NULL, 1700000000.5, '{\"tag\": \"1\"}', '{}')"
)


def set_up_schema(url: str, version: int, *statements: str) -> None:
    """A database at `version`, as an older hookwise left it, then `statements` run on it."""
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        path.parent.mkdir(parents=True, exist_ok=True)
        with contextlib.closing(sqlite3.connect(path)) as conn:
            for script in sqlite_schema.MIGRATIONS[:version]:
                conn.executescript(script)
            for statement in statements:
                conn.execute(statement)
            conn.execute(f"PRAGMA user_version = {version}")
            conn.commit()
        return
    with psycopg.connect(url, autocommit=True) as conn:
        for script in pg_schema.MIGRATIONS[:version]:
            conn.execute(script)
        for statement in statements:
            conn.execute(statement)
        conn.execute("CREATE TABLE schema_version (version INTEGER NOT NULL)")
        conn.execute(f"INSERT INTO schema_version (version) VALUES ({version})")


LATEST = len(sqlite_schema.MIGRATIONS)


def test_both_backends_have_the_same_migrations():
    assert len(pg_schema.MIGRATIONS) == len(sqlite_schema.MIGRATIONS)


@pytest.mark.anyio
async def test_an_empty_database_gets_the_whole_schema(store_url: str):
    first = open_store(store_url)
    assert await first.open() == Schema(0, LATEST)
    await first.close()
    again = open_store(store_url)
    assert await again.open() == Schema(LATEST, LATEST)
    await again.close()


@pytest.mark.anyio
async def test_an_older_schema_is_upgraded_only_on_request(store_url: str):
    set_up_schema(store_url, 1, OLD_EVENT)
    refused = open_store(store_url)
    with pytest.raises(
        StoreError,
        match=f"is version 1, this hookwise needs {LATEST}: back it up, then run `hookwise db",
    ):
        await refused.open()
    await refused.close()
    upgraded = open_store(store_url)
    assert await upgraded.open(upgrade=True) == Schema(1, LATEST)
    old = await upgraded.get_event("01OLD")
    assert old is not None and (old.data, old.artifacts) == ({"tag": "1"}, [])
    await upgraded.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    assert await upgraded.queue_depth() == 1
    await upgraded.close()


@pytest.mark.anyio
async def test_a_schema_newer_than_the_code_is_refused(store_url: str):
    set_up_schema(store_url, LATEST)
    if store_url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(store_url.removeprefix("sqlite:///"))) as conn:
            conn.execute("PRAGMA user_version = 99")
    else:
        with psycopg.connect(store_url, autocommit=True) as conn:
            conn.execute("UPDATE schema_version SET version = 99")
    for upgrade in (False, True):
        instance = open_store(store_url)
        with pytest.raises(StoreError, match="version 99, newer than this hookwise knows"):
            await instance.open(upgrade=upgrade)
        await instance.close()


def sqlite_shape(path: str) -> dict[str, Any]:
    """Tables, columns, keys and indexes as comparable values."""
    types = {"TEXT": "text", "REAL": "real", "INTEGER": "integer"}
    shape: dict[str, Any] = {"columns": {}, "keys": {}, "indexes": {}}
    with contextlib.closing(sqlite3.connect(path)) as conn:
        tables = [
            name
            for (name,) in conn.execute("SELECT name FROM sqlite_master WHERE type = 'table'")
            if not name.startswith("sqlite_")
        ]
        for table in tables:
            for _, name, kind, notnull, default, pk in conn.execute(f"PRAGMA table_info({table})"):
                default = None if name == "id" and table == "attempts" else default
                shape["columns"][table, name] = (types[kind], bool(notnull or pk), default)
                if pk:
                    shape["keys"].setdefault(table, []).append(name)
            for row in conn.execute(f"PRAGMA foreign_key_list({table})"):
                shape["keys"][table, row[3]] = (row[2], row[4])
            for _, index, _, origin, partial in conn.execute(f"PRAGMA index_list({table})"):
                if origin == "c":
                    columns = [r[2] for r in conn.execute(f"PRAGMA index_info({index})")]
                    shape["indexes"][index] = (table, columns, bool(partial))
    return shape


def postgres_shape(url: str) -> dict[str, Any]:
    types = {"text": "text", "double precision": "real", "integer": "integer", "bigint": "integer"}
    shape: dict[str, Any] = {"columns": {}, "keys": {}, "indexes": {}}
    with psycopg.connect(url) as conn:
        for table, name, kind, nullable, default in conn.execute(
            "SELECT table_name, column_name, data_type, is_nullable, column_default "
            "FROM information_schema.columns WHERE table_schema = 'public' "
            "AND table_name <> 'schema_version' ORDER BY table_name, ordinal_position"
        ):
            default = default.removesuffix("::text") if default else None
            shape["columns"][table, name] = (types[kind], nullable == "NO", default)
        for table, columns in conn.execute(
            "SELECT t.relname, array_agg(a.attname ORDER BY k.n) FROM pg_index ix "
            "JOIN pg_class t ON t.oid = ix.indrelid "
            "JOIN pg_namespace ns ON ns.oid = t.relnamespace AND ns.nspname = 'public' "
            "JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE ix.indisprimary GROUP BY t.relname"
        ):
            shape["keys"][table] = list(columns)
        for table, column, target, target_column in conn.execute(
            "SELECT t.relname, a.attname, r.relname, ra.attname FROM pg_constraint c "
            "JOIN pg_class t ON t.oid = c.conrelid JOIN pg_class r ON r.oid = c.confrelid "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = c.conkey[1] "
            "JOIN pg_attribute ra ON ra.attrelid = r.oid AND ra.attnum = c.confkey[1] "
            "WHERE c.contype = 'f'"
        ):
            shape["keys"][table, column] = (target, target_column)
        for index, table, columns, partial in conn.execute(
            "SELECT i.relname, t.relname, array_agg(a.attname ORDER BY k.n), "
            "ix.indpred IS NOT NULL FROM pg_index ix "
            "JOIN pg_class i ON i.oid = ix.indexrelid JOIN pg_class t ON t.oid = ix.indrelid "
            "JOIN pg_namespace ns ON ns.oid = t.relnamespace AND ns.nspname = 'public' "
            "JOIN LATERAL unnest(ix.indkey) WITH ORDINALITY AS k(attnum, n) ON true "
            "JOIN pg_attribute a ON a.attrelid = t.oid AND a.attnum = k.attnum "
            "WHERE NOT ix.indisprimary GROUP BY i.relname, t.relname, ix.indpred IS NOT NULL"
        ):
            shape["indexes"][index] = (table, list(columns), partial)
    return shape


@pytest.mark.anyio
async def test_postgres_schema_is_the_sqlite_schema(tmp_path: Path, pg_url: str):
    for url in (f"sqlite:///{tmp_path}/shape.db", pg_url):
        instance = open_store(url)
        await instance.open()
        await instance.close()
    expected = sqlite_shape(f"{tmp_path}/shape.db")
    assert len(expected["columns"]) > 40
    assert postgres_shape(pg_url) == expected


def test_commands_refuse_an_older_schema_and_db_upgrade_fixes_it(tmp_path: Path, store_url: str):
    set_up_schema(store_url, 1, OLD_EVENT)
    root = project(tmp_path, store=store_url)
    for command in ("serve", "worker", "events"):
        refused = invoke(command, cwd=root)
        assert refused.returncode != 0, command
        assert (
            f"is version 1, this hookwise needs {LATEST}: back it up, then run "
            "`hookwise db upgrade`" in refused.stderr
        ), command
    upgraded = invoke("db", "upgrade", cwd=root)
    assert upgraded.returncode == 0, upgraded.stderr
    assert upgraded.stdout == (
        f"{display_url(store_url)}: schema upgraded from version 1 to {LATEST}\n"
    )
    listed = invoke("events", cwd=root)
    assert listed.returncode == 0, listed.stderr
    assert listed.stdout.startswith("01OLD ")


def test_db_upgrade_creates_an_empty_database_and_explains_an_unreachable_one(tmp_path: Path):
    root = project(tmp_path, store="sqlite:///./fresh/hookwise.db")
    where = f"sqlite:///{root}/fresh/hookwise.db"
    created = invoke("db", "upgrade", cwd=root)
    assert created.stdout == f"{where}: schema upgraded from version 0 to {LATEST}\n"
    again = invoke("db", "upgrade", "--config", str(root / "hookwise.yaml"), cwd=tmp_path.parent)
    assert again.stdout == f"{where}: schema version {LATEST}, up to date\n"
    unreachable = "postgresql://hw:s3cret@127.0.0.1:1/hookwise"
    project(tmp_path, store=unreachable)
    failed = invoke("db", "upgrade", cwd=root)
    assert failed.returncode == 1
    assert failed.stderr.startswith(
        "error: cannot open the PostgreSQL store postgresql://hw:***@127.0.0.1:1/hookwise: "
    )
    assert "s3cret" not in failed.stderr


# ----------------------------------------------------------------------------------------
# Retention: finished runs go, with their history and the events only they needed; work
# not finished, the dedupe window and throttle turns still in force stay.


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


def rows(url: str, table: str) -> int:
    """Rows in a table, read past the store, so nothing left behind goes unseen."""
    query = f"SELECT COUNT(*) FROM {table}"
    if url.startswith("sqlite:///"):
        with contextlib.closing(sqlite3.connect(url.removeprefix("sqlite:///"))) as conn:
            return int(conn.execute(query).fetchone()[0])
    with psycopg.connect(url) as conn:
        row = conn.execute(query).fetchone()
        assert row is not None
        return int(row[0])


TABLES = ("events", "runs", "attempts", "run_events", "decisions", "dedupe", "throttles")


@pytest.mark.anyio
async def test_prune_removes_old_finished_runs_with_their_history(
    store: Store, store_url: str, at: Clock
):
    retried = await deliver(store, at, T0, NewRun(new_id(), "r", SPEC))
    assert len(await settle(store, "succeeded", tries=2)) == 1
    dead = await finished(store, at, T0 + 60, "dead")
    unmatched = await deliver(store, at, T0 + 120)
    rejected_run = NewRun(new_id(), "r", SPEC)
    rejected = await deliver(store, at, T0 + 180, rejected_run)
    await settle(store, "waiting_approval", due=T0 + 30 * DAY)
    decision = Decision(rejected_run.id, "alice", "reject", "not now", "cli")
    assert await store.decide(decision) == "recorded"
    assert await settle(store, "rejected") == [rejected_run.id]
    recent = await finished(store, at, T0 + 5 * DAY)
    at.now = T0 + 5 * DAY + 3600

    pruned = await store.prune(T0 + DAY)

    assert pruned == Pruned(events=4, runs=3, attempts=5, dedupe_keys=4)
    for gone in (retried, dead, unmatched, rejected):
        assert await store.get_event(gone) is None
    assert await store.get_run(rejected_run.id) is None
    [kept] = await viewed(store, recent)
    assert (kept["status"], len(kept["history"])) == ("succeeded", 1)
    counts = {table: rows(store_url, table) for table in TABLES}
    assert counts == {
        "events": 1,
        "runs": 1,
        "attempts": 1,
        "run_events": 1,
        "decisions": 0,
        "dedupe": 1,
        "throttles": 0,
    }
    assert await store.prune(T0 + DAY) == Pruned()


@pytest.mark.anyio
async def test_prune_keeps_old_events_whose_work_is_not_finished(store: Store, at: Clock):
    retrying = await deliver(store, at, T0, NewRun(new_id(), "r", SPEC))
    await settle(store, "retrying", due=T0 + 30 * DAY)
    approval = await deliver(store, at, T0, NewRun(new_id(), "r", SPEC))
    await settle(store, "waiting_approval", due=T0 + 30 * DAY)
    # One run of the event ended at once (its flow key did not render), one retries.
    stopped = NewRun(new_id(), "r", SPEC, status="dead", error="key did not render")
    mixed = await deliver(store, at, T0, stopped, NewRun(new_id(), "r", SPEC))
    await settle(store, "retrying", due=T0 + 30 * DAY)
    # A run waiting for a second event, which arrived but has not been acted on yet.
    wait_spec = {**SPEC, "wait_for": {"timeout": 30 * DAY}}
    waiting = NewRun(new_id(), "r", wait_spec, FlowKeys(wait="build-7"))
    waiter = await deliver(store, at, T0, waiting)
    at.now = T0 + 60
    awaited = (await store.accept(event(at.now), "awaited", 60, [], [("r", "build-7")])).event_id
    at.now = T0 + 10 * DAY

    # Their dedupe keys are long past the window: only those, and the stopped run, go.
    assert await store.prune(T0 + 9 * DAY) == Pruned(runs=1, dedupe_keys=5)

    for kept in (retrying, approval, mixed, waiter, awaited):
        assert await store.get_event(kept) is not None, kept
    assert [run["status"] for run in await viewed(store, mixed)] == ["retrying"]
    detail = await store.run_detail(waiting.id)
    assert detail is not None and run_view(detail)["awaited_event"] == awaited
    # Once the waiting run has finished and aged, both of its events go with it.
    assert await settle(store, "succeeded") == [waiting.id]
    assert await store.prune(T0 + 10 * DAY + 1) == Pruned(events=2, runs=1, attempts=1)
    assert await store.get_event(awaited) is None
    assert await store.get_event(retrying) is not None


@pytest.mark.anyio
async def test_events_in_the_dedupe_window_survive_so_repeats_stay_duplicates(
    store: Store, at: Clock
):
    config = Config.model_validate({"dedupe_window": "1h", "retention": {"max_age": "1m"}})
    assert config.keep_for == 3600
    original = await deliver(store, at, T0, NewRun(new_id(), "r", SPEC), key="delivery-1")
    await settle(store, "succeeded")
    at.now = T0 + 1800
    before, pruned = await retention.prune(store, config.keep_for)
    assert (before, pruned) == (T0 - 1800, Pruned())
    repeat = await store.accept(event(at.now), "delivery-1", 3600, [NewRun(new_id(), "r", SPEC)])
    assert (repeat.event_id, repeat.duplicate) == (original, True)
    assert await store.get_event(original) is not None
    # Past the window the event and its key go; the same delivery is then new.
    at.now = T0 + 7200
    _, pruned = await retention.prune(store, config.keep_for)
    assert pruned == Pruned(events=1, runs=1, attempts=1, dedupe_keys=1)
    later = await store.accept(event(at.now), "delivery-1", 3600, [])
    assert later.duplicate is False and later.event_id != original


@pytest.mark.anyio
async def test_prune_works_in_bounded_batches_until_nothing_is_left(
    store: Store, at: Clock, monkeypatch: pytest.MonkeyPatch
):
    for n in range(25):
        await finished(store, at, T0 + n)
    batches: list[Pruned | None] = []
    real = portable.prune

    def counted(tx: portable.Tx, **kwargs: Any) -> Pruned | None:
        batches.append(real(tx, **kwargs))
        return batches[-1]

    monkeypatch.setattr(portable, "prune", counted)
    at.now = T0 + DAY
    pruned = await store.prune(T0 + 3600, batch=10)
    assert pruned == Pruned(events=25, runs=25, attempts=25, dedupe_keys=25)
    assert [(b.events, b.runs) for b in batches if b] == [(10, 10), (10, 10), (5, 5)]
    assert await store.list_events(EventQuery(limit=100)) == []


@pytest.mark.anyio
async def test_a_claim_hands_the_worker_each_runs_trigger_events(store: Store, at: Clock):
    spec = {**SPEC, "debounce": {"window": 30}}
    batch = [NewRun(new_id(), "r", spec, FlowKeys(debounce="team/api")) for _ in range(3)]
    events = [await deliver(store, at, T0 + 10 * n, run) for n, run in enumerate(batch)]
    single = NewRun(new_id(), "r", SPEC, FlowKeys())
    alone = await deliver(store, at, T0 + 50, single)
    at.now = T0 + 60
    claimed = {run.id: run.events for run in await store.claim("w", 10, lease=30)}
    as_ids = {run: [e.id for e in found or []] for run, found in claimed.items()}
    assert as_ids == {batch[0].id: events, single.id: [alone]}  # a batch oldest first


@pytest.mark.anyio
async def test_a_debounced_run_keeps_every_event_of_its_batch(store: Store, at: Clock):
    spec = {**SPEC, "debounce": {"window": 30}}
    batch = [NewRun(new_id(), "r", spec, FlowKeys(debounce="team/api")) for _ in range(3)]
    events = [await deliver(store, at, T0 + 10 * n, run) for n, run in enumerate(batch)]
    at.now = T0 + 60
    assert await settle(store, "succeeded") == [batch[0].id]
    assert [e.id for e in await store.events_of_run(batch[0].id)] == events
    # The events (and their dedupe keys) are older than the cutoff, but their run is not.
    assert await store.prune(T0 + 30) == Pruned(dedupe_keys=3)
    assert [await store.get_event(e) is not None for e in events] == [True] * 3
    assert await store.prune(T0 + 61) == Pruned(events=3, runs=1, attempts=1)
    assert [await store.get_event(e) for e in events] == [None] * 3


@pytest.mark.anyio
async def test_a_throttle_turn_is_dropped_only_once_it_is_over(
    store: Store, store_url: str, at: Clock
):
    spec = {**SPEC, "throttle": {"once_per": 7 * DAY}}

    def throttled() -> NewRun:
        return NewRun(new_id(), "r", spec, FlowKeys(throttle="app"))

    await deliver(store, at, T0, throttled())
    await settle(store, "succeeded")
    at.now = T0 + 3 * DAY
    # Its run and event are old enough, the turn is still in force.
    assert await store.prune(T0 + 2 * DAY) == Pruned(1, 1, 1, 1, throttles=0)
    second = await deliver(store, at, T0 + 3 * DAY, throttled())
    assert [run["status"] for run in await viewed(store, second)] == ["skipped"]
    at.now = T0 + 8 * DAY
    assert await store.prune(T0 + 4 * DAY) == Pruned(1, 1, 0, 1, throttles=1)
    assert rows(store_url, "throttles") == 0


@pytest.mark.anyio
async def test_throttle_turns_from_before_the_upgrade_are_kept(store_url: str, at: Clock):
    set_up_schema(
        store_url,
        3,
        "INSERT INTO throttles (rule, key, last_at, run_id) VALUES ('r', 'app', 1, 'x')",
    )
    upgraded = open_store(store_url)
    assert await upgraded.open(upgrade=True) == Schema(3, LATEST)
    assert await upgraded.prune(T0) == Pruned()
    await upgraded.close()
    assert rows(store_url, "throttles") == 1


# ----------------------------------------------------------------------------------------
# Several processes on one PostgreSQL database: each store instance stands for a process.


@pytest.fixture
async def two_stores(pg_url: str) -> AsyncIterator[tuple[Store, Store]]:
    first, second = open_store(pg_url), open_store(pg_url)
    await first.open()
    await second.open()
    yield first, second
    await first.close()
    await second.close()


async def drain(store: Store, owner: str, keep: bool = False) -> list[str]:
    """Claim until nothing is left, finishing each run unless `keep`; the ids claimed."""
    claimed: list[str] = []
    while runs := await store.claim(owner, 5, lease=30):
        for run in runs:
            claimed.append(run.id)
            if not keep:
                await store.record(run.lease, run.id, None, Progress("succeeded", 1, 0, {}))
    return claimed


@pytest.mark.anyio
async def test_two_processes_never_claim_the_same_run(two_stores: tuple[Store, Store]):
    first, second = two_stores
    runs = [NewRun(new_id(), "r", SPEC) for _ in range(150)]
    for n, run in enumerate(runs):
        await first.accept(event(), f"k{n}", 60, [run])
    mine, theirs = await asyncio.gather(drain(first, "a"), drain(second, "b"))
    assert mine and theirs, "both processes should have found work"
    assert sorted(mine + theirs) == sorted(run.id for run in runs)


@pytest.mark.anyio
async def test_a_concurrency_limit_holds_across_processes(two_stores: tuple[Store, Store]):
    first, second = two_stores
    spec = {**SPEC, "concurrency": {"limit": 1}}
    for n in range(20):
        run = NewRun(new_id(), "r", spec, FlowKeys(concurrency="app"))
        await first.accept(event(), f"k{n}", 60, [run])
    # Neither finishes what it claimed: one run of the key at a time, whoever claims it.
    held = await asyncio.gather(*(drain(store, "x", keep=True) for store in two_stores * 3))
    assert sum(len(ids) for ids in held) == 1
    assert await second.queue_depth() == 19


@pytest.mark.anyio
async def test_concurrent_deliveries_of_one_key_store_one_event(two_stores: tuple[Store, Store]):
    first = two_stores[0]
    results = await asyncio.gather(
        *(
            store.accept(event(), "same", 60, [NewRun(new_id(), "r", SPEC)])
            for store in two_stores * 10
        )
    )
    assert sum(not result.duplicate for result in results) == 1
    assert len({result.event_id for result in results}) == 1
    assert await first.queue_depth() == 1


async def woken(store: Store) -> asyncio.Event:
    """An event set whenever the store hears of new work, once it listens."""
    heard = asyncio.Event()
    await store.subscribe(heard.set)
    await asyncio.wait_for(heard.wait(), 10)  # the first wake comes once it listens
    heard.clear()
    return heard


@pytest.mark.anyio
async def test_new_work_in_one_process_wakes_the_others(two_stores: tuple[Store, Store]):
    first, second = two_stores
    heard = await woken(second)
    await first.accept(event(), "dup", 60, [NewRun(new_id(), "r", SPEC)])
    await asyncio.wait_for(heard.wait(), 5)
    heard.clear()
    await first.accept(event(), "dup", 60, [NewRun(new_id(), "r", SPEC)])  # a duplicate: no work
    await asyncio.sleep(0.3)
    assert not heard.is_set()


def terminate(url: str, application: str = "hookwise") -> int:
    """Cut the server side of every connection hookwise holds to the database at `url`."""
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND application_name = %s",
            (application,),
        ).fetchone()
    assert row is not None
    return int(row[0])


@pytest.mark.anyio
async def test_cut_connections_are_replaced_without_losing_a_call(pg_url: str):
    store = open_store(pg_url)
    await store.open()
    heard = await woken(store)
    await store.accept(event(), "a", 60, [NewRun(new_id(), "r", SPEC)])
    await asyncio.wait_for(heard.wait(), 5)
    heard.clear()
    assert terminate(pg_url) >= 2  # the pool's connection and the listener's
    assert await store.queue_depth() == 1
    await store.accept(event(), "b", 60, [NewRun(new_id(), "r", SPEC)])
    await asyncio.wait_for(heard.wait(), 10)  # the listener is back: on reconnect, then NOTIFY
    assert await store.queue_depth() == 2
    await store.close()


@pytest.mark.anyio
async def test_one_process_prunes_at_a_time(pg_url: str, at: Clock):
    store = open_store(pg_url)
    await store.open()
    await finished(store, at, T0)
    at.now = T0 + DAY
    with psycopg.connect(pg_url) as other:
        other.execute("SELECT pg_advisory_xact_lock(hashtextextended('hookwise:prune', 0))")
        assert await store.prune(T0 + 1) == Pruned(busy=True)
    assert await store.prune(T0 + 1) == Pruned(1, 1, 1, 1)
    await store.close()


# -- listing, finding and counting, for the console and the API ------------------------


def pushed_at(at: float, name: str, tag: str) -> Event:
    artifact = {"name": name, "tag": tag, "digest": "sha256:" + "c" * 8}
    return Event(new_id(), "artifactory", "artifactory", "docker", "pushed", None, at,
                 {"tag": tag}, {}, [artifact])  # fmt: skip


@pytest.mark.anyio
async def test_lists_filter_and_page_alike_on_every_backend(store: Store, at: Clock):
    runs = []
    for n, (name, key) in enumerate([("api", "api"), ("web", "web"), ("API-gw", "api")]):
        at.now = T0 + n * 3600
        spec = {**SPEC, "concurrency": {"key": "{{ artifact.name }}", "limit": 5}}
        run = NewRun(new_id(), f"rule-{n % 2}", spec, FlowKeys(concurrency=key))
        await store.accept(pushed_at(at.now, name, f"1.{n}"), new_id(), 60, [run])
        runs.append(run.id)
        time.sleep(0.002)  # ids sort by the millisecond they were made in
    by_key = await store.list_runs(RunQuery(key="api"))
    assert [r.id for r in by_key] == [runs[2], runs[0]]
    page = await store.list_runs(RunQuery(limit=2))
    assert [r.id for r in page] == [runs[2], runs[1]]
    rest = await store.list_runs(RunQuery(before=page[-1].id, limit=2))
    assert [r.id for r in rest] == [runs[0]]
    assert [r.id for r in await store.list_runs(RunQuery(rule="rule-1"))] == [runs[1]]
    since = await store.list_runs(RunQuery(since=T0 + 3600, until=T0 + 7200))
    assert [r.id for r in since] == [runs[1]]
    pending = await store.list_runs(RunQuery(statuses=(RunStatus.PENDING, RunStatus.DEAD)))
    assert len(pending) == 3
    assert await store.list_runs(RunQuery(source="harbor")) == []
    # artifact text: any case, and % or _ typed are literal characters
    found = await store.list_events(EventQuery(text="api"))
    assert sorted(s.event.artifacts[0]["name"] for s in found) == ["API-gw", "api"]
    assert await store.list_events(EventQuery(text="a%")) == []
    assert len(await store.list_events(EventQuery(text="1._"))) == 0
    assert len(await store.list_events(EventQuery(text="1.1"))) == 1


@pytest.mark.anyio
async def test_ids_are_found_by_their_start(store: Store, at: Clock):
    run = NewRun(new_id(), "r", SPEC)
    event_id = await deliver(store, at, T0, run)
    assert await store.ids_starting(event_id) == [("event", event_id)]
    assert await store.ids_starting(run.id[:20].lower()) == [("run", run.id)]
    assert await store.ids_starting("ZZZZ") == []


@pytest.mark.anyio
async def test_rule_stats_and_overview_count_what_the_history_holds(store: Store, at: Clock):
    ok, bad = NewRun(new_id(), "deploy", SPEC), NewRun(new_id(), "deploy", SPEC)
    await deliver(store, at, T0, ok, bad)
    waiting = NewRun(new_id(), "gated", SPEC)
    await deliver(store, at, T0 + 60, waiting)
    at.now = T0 + 120
    [claimed_ok, claimed_bad, claimed_waiting] = sorted(
        await store.claim("w", 10, 30), key=lambda r: [ok.id, bad.id, waiting.id].index(r.id)
    )
    assert await store.record(
        claimed_ok.lease, ok.id, None, Progress(RunStatus.SUCCEEDED, 1, 0, {})
    )
    assert await store.record(
        claimed_bad.lease, bad.id, None, Progress(RunStatus.DEAD, 0, 1, {}, "log#1: boom")
    )
    assert await store.record(
        claimed_waiting.lease, waiting.id, None, Progress(RunStatus.WAITING_APPROVAL, 0, 0, {})
    )
    stats = await store.rule_stats()
    assert stats["deploy"] == RuleStats(1, 2, 1, T0, "log#1: boom")
    assert (stats["gated"].runs, stats["gated"].failures) == (1, 0)
    overview = await store.overview(T0 + 3600 + 30)
    assert overview.dead == 1
    assert overview.last_day == {"succeeded": 1, "dead": 1, "waiting_approval": 1}
    assert overview.last_hour == {"waiting_approval": 1}  # the others are over an hour old
    assert (overview.events_last_day, overview.events_last_hour) == (2, 1)
    assert overview.oldest_active == (waiting.id, T0 + 60)
    assert overview.active == {"waiting_approval": 1}  # now, however old


@pytest.mark.anyio
async def test_an_sqlite_write_waits_for_another_process_then_gives_up_saying_why(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """Another process (a worker) holding the write lock delays a write; past
    LOCK_TIMEOUT the write fails as a StoreError, so the sender is asked to retry."""
    url = f"sqlite:///{tmp_path}/hookwise.db"
    store = open_store(url)
    await store.open()
    other = sqlite3.connect(tmp_path / "hookwise.db", isolation_level=None)
    try:
        other.execute("BEGIN IMMEDIATE")
        write = asyncio.create_task(store.accept(event(), "waits", 60, []))
        await asyncio.sleep(0.3)
        assert not write.done()
        other.execute("COMMIT")
        assert not (await write).duplicate

        monkeypatch.setattr(sqlite_schema, "LOCK_TIMEOUT", 0.2)
        other.execute("BEGIN IMMEDIATE")
        with pytest.raises(StoreError, match="locked"):
            await store.accept(event(), "gives-up", 60, [])
        other.execute("COMMIT")
        assert not (await store.accept(event(), "gives-up", 60, [])).duplicate
    finally:
        other.close()
        await store.close()
