"""The unit tier runs in the test's own process: a test here that starts one fails."""

from __future__ import annotations

import subprocess
from typing import Any

import pytest


@pytest.fixture(autouse=True)
def no_processes(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(self: subprocess.Popen[Any], args: Any, *rest: Any, **options: Any) -> None:
        raise AssertionError(
            f"a unit test started {args!r}: drive hookwise in-process (tests/served.py, "
            "tests/cli.py, tests/inprocess.py) or move the test to tests/e2e"
        )

    monkeypatch.setattr(subprocess.Popen, "__init__", refuse)
