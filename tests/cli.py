"""The `hookwise` command line in the test's own process, through click's CliRunner.

`invoke` answers like `tests.conftest.run_cli` (returncode, stdout, stderr), so a test
reads the same either way; the e2e tier keeps the real subprocess for `serve` itself.
"""

from __future__ import annotations

import contextlib
import logging
from dataclasses import dataclass
from pathlib import Path

from click.testing import CliRunner

from hookwise.cli import main
from tests.conftest import SECRET


@dataclass(frozen=True)
class Ran:
    returncode: int
    stdout: str
    stderr: str


def invoke(
    *args: str, cwd: Path, env: dict[str, str] | None = None, input: str | None = None
) -> Ran:
    """Run `hookwise ARGS` in `cwd` with `env` added, as a user's shell would; `input`
    is what they type."""
    root = logging.getLogger()
    handlers, level = list(root.handlers), root.level
    runner = CliRunner(env={"TEST_ARTIFACTORY_SECRET": SECRET, **(env or {})})
    try:
        with contextlib.chdir(cwd):
            result = runner.invoke(main, list(args), input=input, catch_exceptions=False)
    finally:
        # `hookwise` sets up logging for the process; give pytest its own back.
        root.handlers[:], root.level = handlers, level
    return Ran(result.exit_code, result.stdout, result.stderr)
