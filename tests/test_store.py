"""The SQLite store: atomic accept with dedupe, group commit, leases and takeover."""

from __future__ import annotations

import asyncio
import time
from pathlib import Path

import pytest

from hookwise.event import Event, new_id
from hookwise.store import AttemptRecord, NewRun, open_store
from hookwise.store.base import Progress
from hookwise.store.sqlite import SQLiteStore

SPEC = {"name": "r", "description": "", "actions": [{"uses": "log", "with": {"message": "x"}}]}


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def store(tmp_path: Path):
    instance = open_store(f"sqlite:///{tmp_path}/db/hookwise.db")
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
async def test_accept_is_atomic_and_deduplicates_within_the_window(store: SQLiteStore):
    first = event()
    result = await store.accept(first, "k1", 60, [NewRun(new_id(), "r", SPEC)])
    assert (result.event_id, result.duplicate) == (first.id, False)
    again = await store.accept(event(), "k1", 60, [NewRun(new_id(), "r", SPEC)])
    assert (again.event_id, again.duplicate) == (first.id, True)
    assert len(await store.runs_of(first.id)) == 1
    assert len(await store.list_events({}, None, 100)) == 1
    # Outside the window the same key is a new event.
    later = event(at=first.received_at + 61)
    fresh = await store.accept(later, "k1", 60, [])
    assert (fresh.event_id, fresh.duplicate) == (later.id, False)


@pytest.mark.anyio
async def test_concurrent_accepts_all_land(store: SQLiteStore):
    events = [event() for _ in range(300)]
    results = await asyncio.gather(
        *(
            store.accept(e, f"key-{i}", 60, [NewRun(new_id(), "r", SPEC)])
            for i, e in enumerate(events)
        )
    )
    assert [r.event_id for r in results] == [e.id for e in events]
    assert await store.queue_depth() == 300
    listed = await store.list_events({"domain": "docker"}, "active", 1000)
    assert len(listed) == 300


@pytest.mark.anyio
async def test_failed_write_does_not_undo_its_batch_neighbours(store: SQLiteStore):
    good = event()
    duplicate_run_id = new_id()
    await store.accept(event(), "a", 60, [NewRun(duplicate_run_id, "r", SPEC)])
    outcomes = await asyncio.gather(
        store.accept(event(), "b", 60, [NewRun(duplicate_run_id, "r", SPEC)]),  # PK clash
        store.accept(good, "c", 60, []),
        return_exceptions=True,
    )
    assert isinstance(outcomes[0], Exception)
    assert outcomes[1].event_id == good.id
    assert await store.get_event(good.id) == good


@pytest.mark.anyio
async def test_lease_expiry_hands_the_run_to_another_worker(store: SQLiteStore):
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
    [run] = await store.runs_of(accepted.id)
    assert run["status"] == "succeeded"
    assert [(h["attempt"], h["status"]) for h in run["history"]] == [(1, "lost"), (2, "succeeded")]
    assert run["output"] == {"a": 1}


@pytest.mark.anyio
async def test_renewed_lease_is_not_taken_over(store: SQLiteStore):
    await store.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    [mine] = await store.claim("a", 10, lease=0.3)
    for _ in range(4):
        await asyncio.sleep(0.15)
        await store.renew([mine.lease], 0.3)
    assert await store.claim("b", 10, lease=0.3) == []


@pytest.mark.anyio
async def test_claim_skips_runs_the_caller_is_executing(store: SQLiteStore):
    await store.accept(event(), "k", 60, [NewRun(new_id(), "r", SPEC)])
    [mine] = await store.claim("a", 10, lease=0.1)
    await asyncio.sleep(0.2)
    assert await store.claim("a", 10, lease=30, exclude=[mine.id]) == []
    assert [r.id for r in await store.claim("a", 10, lease=30)] == [mine.id]


@pytest.mark.anyio
async def test_retrying_run_waits_until_due(store: SQLiteStore):
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
async def test_schema_newer_than_the_code_is_refused(tmp_path: Path):
    import sqlite3

    path = tmp_path / "future.db"
    sqlite3.connect(path).execute("PRAGMA user_version = 99").connection.close()
    instance = SQLiteStore(str(path))
    with pytest.raises(Exception, match="newer than this hookwise knows"):
        await instance.open()
    await instance.close()


def test_unknown_store_scheme_is_explained():
    with pytest.raises(ValueError, match="unsupported store 'mysql'"):
        open_store("mysql://x")
