"""The pruner in the service: a pass shortly after start, then every interval; what it
logs and counts, and a store that fails. What a pass removes is tested in test_store."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from pathlib import Path

import pytest

from hookwise.metrics import Metrics
from hookwise.retention import Pruner
from hookwise.service import Hookwise, build_service
from hookwise.store import Pruned, Store, open_store
from tests.conftest import SECRET, project
from tests.history import DAY, T0, Clock, finished

pytestmark = pytest.mark.anyio


@pytest.fixture
def at(monkeypatch: pytest.MonkeyPatch) -> Clock:
    return Clock(monkeypatch)


@pytest.fixture
async def store(tmp_path: Path) -> AsyncIterator[Store]:
    instance = open_store(f"sqlite:///{tmp_path}/hookwise.db")
    await instance.open()
    yield instance
    await instance.close()


def pruned_total(metrics: Metrics, what: str) -> float | None:
    return metrics.registry.get_sample_value("hookwise_pruned_total", {"what": what})


async def test_a_pass_logs_what_it_removed_and_counts_it(
    store: Store, at: Clock, caplog: pytest.LogCaptureFixture
):
    await finished(store, at, T0 - 40 * DAY)
    await finished(store, at, T0 - 40 * DAY, "dead")
    at.now = T0
    metrics = Metrics()
    pruner = Pruner(store, 30 * DAY, 3600, metrics, first=0)
    assert (pruned_total(metrics, "events"), pruned_total(metrics, "runs")) == (0, 0)
    with caplog.at_level(logging.INFO, logger="hookwise.retention"):
        assert await pruner.run_once() == Pruned(2, 2, 2, 2)
        assert await pruner.run_once() == Pruned()
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("INFO", "pruned 2 events and 2 runs (2 attempts) older than 2026-12-16T08:00:00.000+00:00")
    ]
    assert (pruned_total(metrics, "events"), pruned_total(metrics, "runs")) == (2, 2)


async def test_a_failing_store_is_a_warning_and_the_next_pass_still_comes(
    store: Store, caplog: pytest.LogCaptureFixture
):
    await store.close()
    pruner = Pruner(store, DAY, 3600, Metrics(), first=0)
    with caplog.at_level(logging.INFO, logger="hookwise.retention"):
        assert await pruner.run_once() is None
    assert [(r.levelname, r.getMessage()) for r in caplog.records] == [
        ("WARNING", "pruning the store failed: the store is not open; trying again in 3600s")
    ]


def service_in(root: Path, monkeypatch: pytest.MonkeyPatch, retention: str) -> Hookwise:
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    project(root, extra=f"retention:\n{retention}")
    return build_service(root / "hookwise.yaml")


async def test_the_service_prunes_after_start_and_stops_cleanly(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, at: Clock
):
    service = service_in(tmp_path, monkeypatch, "  max_age: 30d\n  interval: 1h\n")
    store = open_store(service.config.store_url)
    await store.open()
    old = await finished(store, at, T0 - 40 * DAY)
    await store.close()
    at.now = T0
    await service.start(watch=False, first_prune=0)
    try:
        for _ in range(500):
            if pruned_total(service.metrics, "events"):
                break
            await asyncio.sleep(0.01)
        assert pruned_total(service.metrics, "events") == 1
        assert await service.event(old) is None
    finally:
        await service.stop()
    assert service.pruner is not None and service.pruner._task is not None
    assert service.pruner._task.done()


async def test_retention_off_starts_no_pruner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    service = service_in(tmp_path, monkeypatch, "  max_age: null\n")
    assert service.config.keep_for is None
    await service.start(watch=False, with_worker=False, first_prune=0)
    await service.stop()
    assert service.pruner is None
