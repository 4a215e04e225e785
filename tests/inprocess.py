"""hookwise without HTTP or a second process: the engine, a real SQLite store and the runner.

Tests emit events, move the clock (`clock.now` is the harness's) and execute what is
due as a worker would, so flow control and run outcomes are tested in milliseconds.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hookwise import clock
from hookwise.event import Event, new_id
from hookwise.metrics import Metrics
from hookwise.runner import Runner
from hookwise.service import build_service
from hookwise.views import run_view
from tests.conftest import SECRET, project

START = 1_800_000_000.0
HARBOR = "  harbor:\n    kind: harbor\n    allow_unauthenticated: true\n"


class Harness:
    """hookwise without HTTP: emit events, move the clock, let the worker catch up."""

    def __init__(self, root: Path, rules: str, extra: str = "") -> None:
        self.now = START
        project(root, rules, extra=extra)
        # Events from Harbor too: rules may only name configured sources.
        config = root / "hookwise.yaml"
        config.write_text(config.read_text().replace("sources:\n", "sources:\n" + HARBOR, 1))
        self.service = build_service(root / "hookwise.yaml")
        self.engine = self.service.engine

    async def open(self) -> None:
        await self.service.open()
        self.store = self.service.store
        service = self.service
        self.runner = Runner(
            self.store, service.registry, self.engine.templates, service.config, Metrics(),
            service.chat,
        )  # fmt: skip

    def advance(self, seconds: float) -> None:
        self.now += seconds

    async def emit(
        self,
        domain: str,
        event_type: str,
        data: dict[str, Any],
        artifact: dict[str, Any] | None = None,
        source: str = "artifactory",
    ) -> str:
        artifacts = [artifact] if artifact else []
        event = Event(
            new_id(), source, source, domain, event_type, None, self.now, data, {}, artifacts
        )
        result = await self.store.accept(
            event, f"test:{event.id}", 0, self.engine.plan(event), self.engine.awaited(event)
        )
        return result.event_id

    async def drain(self) -> list[str]:
        """Execute everything due now, as a worker would; the ids of the runs executed."""
        executed = []
        while claimed := await self.store.claim("test", 50, 60):
            for run in claimed:
                executed.append(run.id)
                await self.runner.execute(run)
        return executed

    async def runs(self, event_id: str) -> list[dict[str, Any]]:
        """The event's runs as the API shows them."""
        return [run_view(run) for run in await self.store.runs_of(event_id)]


@pytest.fixture
async def harness_for(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> AsyncIterator[Callable[..., Awaitable[Harness]]]:
    """`await harness_for(rules, extra="")`: a Harness over a fresh project, clock included."""
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    made: list[Harness] = []

    async def make(rules: str, extra: str = "") -> Harness:
        harness = Harness(tmp_path, rules, extra)
        monkeypatch.setattr(clock, "now", lambda: harness.now)
        await harness.open()
        made.append(harness)
        return harness

    yield make
    for harness in made:
        await harness.service.close()
