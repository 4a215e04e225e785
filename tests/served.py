"""hookwise served in the test's own process, through Starlette's TestClient.

The same ASGI app `hookwise serve` runs, with its lifespan (store, worker, rule
watcher), over a project folder like the one the process tests use. It answers the
same `Front` calls as a `hookwise serve` process, in milliseconds instead of a second
to start, which is what the unit tier needs; the e2e tier keeps the real process.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
from starlette.testclient import TestClient

from hookwise.app import create_app
from hookwise.service import build_service
from tests.conftest import CONFIG, SECRET, SQLITE, Front


class Served(Front):
    """The app over `root`, started on `start()` and stopped on `stop()`."""

    def __init__(self, root: Path, rules: str, *, extra: str = "", store: str = SQLITE) -> None:
        self.root = root
        (root / "rules").mkdir(parents=True, exist_ok=True)
        self.config = root / "hookwise.yaml"
        self.config.write_text(CONFIG.format(lease="30s", extra=extra, store=store))
        self.write_rules(rules)
        self.env: dict[str, str] = {"TEST_ARTIFACTORY_SECRET": SECRET}
        self.client: TestClient | None = None

    @property
    def url(self) -> str:
        return "http://127.0.0.1"

    def write_rules(self, text: str, name: str = "rules.yaml") -> None:
        (self.root / "rules" / name).write_text(text)

    def start(self) -> Served:
        self.stop()
        with pytest.MonkeyPatch.context() as patch:
            for key, value in self.env.items():
                patch.setenv(key, value)
            service = build_service(self.config)
        self.client = TestClient(create_app(service), base_url=self.url, client=("127.0.0.1", 5))
        self.client.__enter__()
        self.http = self.client
        return self

    def stop(self) -> None:
        if self.client is not None:
            self.client.__exit__(None, None, None)
            self.client = None


@pytest.fixture
def served_factory(tmp_path: Path) -> Iterator[Callable[..., Served]]:
    """`served_factory(rules, extra="")`: an in-process hookwise over a fresh folder."""
    made: list[Served] = []

    def make(rules: str, **kwargs: Any) -> Served:
        served = Served(tmp_path, rules, **kwargs)
        made.append(served)
        return served

    yield make
    for served in made:
        served.stop()


def served_module(root: Path, rules: str, **kwargs: Any) -> Iterator[Served]:
    """For module-scoped fixtures: `yield from served_module(...)`."""
    served = Served(root, rules, **kwargs).start()
    try:
        yield served
    finally:
        served.stop()
