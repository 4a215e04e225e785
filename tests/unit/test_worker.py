"""`hookwise.worker`: claiming due runs and executing them, with bounded concurrency, leases
kept alive, wake-ups on new work, store outages ridden out, and a clean stop. In-process,
over a real SQLite store, with a runner whose actions the test controls.
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import AsyncIterator
from itertools import count, pairwise
from pathlib import Path
from typing import Any

import pytest

from hookwise.config import WorkerConfig
from hookwise.errors import StoreError
from hookwise.event import Event, new_id
from hookwise.status import RunStatus
from hookwise.store import NewRun, Progress, RunRecord, Store, open_store
from hookwise.worker import CLAIM_COOLDOWN, Worker

pytestmark = pytest.mark.anyio
SPEC = {"name": "r", "description": "", "actions": [{"uses": "log", "with": {"message": "x"}}]}


class Runner:
    """Records what it executes; each run waits for its gate when the test sets one."""

    def __init__(self, store: Store) -> None:
        self.store = store
        self.started: list[str] = []
        self.gate: asyncio.Event | None = None
        self.running = 0
        self.most = 0
        self.fail_with: BaseException | None = None
        self.cancelled: list[str] = []

    async def execute(self, run: RunRecord) -> None:
        self.started.append(run.id)
        self.running += 1
        self.most = max(self.most, self.running)
        try:
            if self.gate is not None:
                await self.gate.wait()
            if self.fail_with is not None:
                raise self.fail_with
            done = Progress(RunStatus.SUCCEEDED, 1, 0, {})
            await self.store.record(run.lease, run.id, None, done)
        except asyncio.CancelledError:
            self.cancelled.append(run.id)
            raise
        finally:
            self.running -= 1


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    instance = open_store(f"sqlite:///{tmp_path}/hookwise.db")
    await instance.open()
    yield instance
    await instance.close()


async def add_runs(store: Store, count: int) -> list[str]:
    runs = [NewRun(new_id(), "r", SPEC) for _ in range(count)]
    event = Event(new_id(), "a", "artifactory", "docker", "pushed", None, 0.0, {}, {})
    await store.accept(event, new_id(), 60, runs)
    return [run.id for run in runs]


async def settled(store: Store, run_ids: list[str], status: RunStatus) -> None:
    async def all_there() -> None:
        while True:
            runs = [await store.get_run(run_id) for run_id in run_ids]
            if all(run is not None and run.status == status for run in runs):
                return
            await asyncio.sleep(0.01)

    await asyncio.wait_for(all_there(), 5)


def worker(store: Store, runner: Runner, **settings: Any) -> Worker:
    config = WorkerConfig(**{"poll_interval": 30, "lease": 30, **settings})
    return Worker(store, runner, config, "test-worker")  # type: ignore[arg-type]


async def test_due_runs_are_executed_once_each(store: Store):
    runner = Runner(store)
    run_ids = await add_runs(store, 5)
    instance = worker(store, runner)
    await instance.start()
    await settled(store, run_ids, RunStatus.SUCCEEDED)
    await instance.stop()
    assert sorted(runner.started) == sorted(run_ids)


async def test_new_work_wakes_the_worker_without_waiting_for_the_poll(store: Store):
    runner = Runner(store)
    instance = worker(store, runner, poll_interval=30)
    await instance.start()
    await asyncio.sleep(0.05)  # idle, asleep on its 30 s poll
    run_ids = await add_runs(store, 1)
    instance.notify()
    await settled(store, run_ids, RunStatus.SUCCEEDED)  # within 5 s, not 30
    await instance.stop()


async def test_no_more_runs_at_once_than_the_concurrency(store: Store):
    runner = Runner(store)
    runner.gate = asyncio.Event()
    run_ids = await add_runs(store, 7)
    instance = worker(store, runner, concurrency=3)
    await instance.start()
    while len(runner.started) < 3:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.1)
    assert len(runner.started) == 3 and runner.running == 3
    runner.gate.set()
    await settled(store, run_ids, RunStatus.SUCCEEDED)
    await instance.stop()
    assert runner.most == 3 and len(runner.started) == 7


async def test_while_runs_execute_claims_wait_for_the_cooldown_to_take_several(
    store: Store, monkeypatch: pytest.MonkeyPatch
):
    """Runs finishing one after another are claimed for together, not one claim each."""
    runner = Runner(store)
    instance = worker(store, runner, concurrency=4)
    claims: list[tuple[float, int, int]] = []  # when, runs executing, runs claimed
    real = store.claim

    async def claim(*args: Any, **kwargs: Any) -> list[RunRecord]:
        busy, at = len(instance.active), time.monotonic()
        claimed = await real(*args, **kwargs)
        claims.append((at, busy, len(claimed)))
        return claimed

    monkeypatch.setattr(store, "claim", claim)
    real_execute = runner.execute
    numbers = count()

    async def staggered(run: RunRecord) -> None:
        await asyncio.sleep(0.001 * (1 + next(numbers) % 4))  # 1 to 4 ms
        await real_execute(run)

    monkeypatch.setattr(runner, "execute", staggered)
    run_ids = await add_runs(store, 40)
    await instance.start()
    await settled(store, run_ids, RunStatus.SUCCEEDED)
    await instance.stop()
    gaps = [later - earlier for (earlier, _, _), (later, busy, _) in pairwise(claims) if busy]
    assert gaps and min(gaps) >= CLAIM_COOLDOWN * 0.99
    taking = [taken for _, _, taken in claims if taken]
    assert sum(taking) == 40 and len(taking) <= 40 / 2  # two runs or more per claim


async def test_leases_are_renewed_while_a_run_takes_longer_than_its_lease(store: Store):
    runner = Runner(store)
    runner.gate = asyncio.Event()
    [run_id] = await add_runs(store, 1)
    instance = worker(store, runner, lease=0.3)
    await instance.start()
    while not runner.started:
        await asyncio.sleep(0.01)
    await asyncio.sleep(0.9)  # three leases long
    assert await store.claim("someone-else", 10, 0.3) == []  # still ours
    runner.gate.set()
    await settled(store, [run_id], RunStatus.SUCCEEDED)
    await instance.stop()
    assert runner.started == [run_id]


async def test_a_run_failing_inside_hookwise_does_not_stop_the_worker(store: Store):
    runner = Runner(store)
    runner.fail_with = RuntimeError("a bug")
    [broken] = await add_runs(store, 1)
    instance = worker(store, runner, lease=0.2, poll_interval=0.05)
    await instance.start()
    while not runner.started:
        await asyncio.sleep(0.01)
    runner.fail_with = None
    # the broken run's lease expires and it is claimed again (counted as a lost attempt)
    await settled(store, [broken], RunStatus.SUCCEEDED)
    later = await add_runs(store, 1)
    instance.notify()
    await settled(store, later, RunStatus.SUCCEEDED)
    await instance.stop()
    assert runner.started.count(broken) == 2


async def test_stop_cancels_what_outlives_the_grace_and_the_run_is_due_again(store: Store):
    runner = Runner(store)
    runner.gate = asyncio.Event()  # never set: the action hangs
    [run_id] = await add_runs(store, 1)
    instance = worker(store, runner, lease=0.3)
    await instance.start()
    while not runner.started:
        await asyncio.sleep(0.01)
    await instance.stop(grace=0.1)
    assert runner.cancelled == [run_id]
    assert await store.claim("next-process", 10, 30) == []  # its lease still holds
    await asyncio.sleep(0.4)  # nobody renews it any more
    again = await store.claim("next-process", 10, 30)
    assert [run.id for run in again] == [run_id]


async def test_a_store_outage_is_ridden_out_with_one_warning(
    store: Store, caplog: pytest.LogCaptureFixture, monkeypatch: pytest.MonkeyPatch
):
    runner = Runner(store)
    real_claim = store.claim
    outage = {"calls": 0}

    async def failing(*args: Any, **kwargs: Any) -> list[RunRecord]:
        outage["calls"] += 1
        if outage["calls"] <= 5:
            raise StoreError("database is locked")
        return await real_claim(*args, **kwargs)

    monkeypatch.setattr(store, "claim", failing)
    run_ids = await add_runs(store, 2)
    instance = worker(store, runner, poll_interval=0.02)
    await instance.start()
    await settled(store, run_ids, RunStatus.SUCCEEDED)
    await instance.stop()
    warnings = [r.getMessage() for r in caplog.records if r.name == "hookwise.worker"]
    assert warnings == [
        "claiming runs failed: database is locked; retrying until the store answers",
        "the store answers again; claiming runs",
    ]
