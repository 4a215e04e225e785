"""Defaults that are safe without anyone thinking about them."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import venv
from pathlib import Path

import pytest

from tests.conftest import SECRET, project

ROOT = Path(__file__).resolve().parents[2]


def serve(cwd: Path, *args: str, timeout: float = 20) -> tuple[int | None, str]:
    """Start `hookwise serve`; its exit code (None if it came up) and what it printed."""
    with subprocess.Popen(
        [sys.executable, "-m", "hookwise", "serve", *args],
        cwd=cwd,
        env={**os.environ, "TEST_ARTIFACTORY_SECRET": SECRET},
        stderr=subprocess.PIPE,
        stdout=subprocess.DEVNULL,
        text=True,
    ) as process:
        assert process.stderr is not None
        lines = []
        for line in process.stderr:
            lines.append(line)
            if "listening on" in line:
                process.terminate()
                process.wait(timeout=timeout)
                return None, "".join(lines)
        return process.wait(timeout=timeout), "".join(lines)


def test_serving_beyond_loopback_without_an_api_token_is_refused(tmp_path: Path):
    code, printed = serve(project(tmp_path), "--listen", "0.0.0.0:0")
    assert code == 1
    assert "refusing to listen on 0.0.0.0:0 without api_token" in printed
    assert "allow_unauthenticated_api: true" in printed


@pytest.mark.parametrize(
    "extra", ["api_token: a-token-for-the-api\n", "allow_unauthenticated_api: true\n"]
)
def test_a_token_or_an_explicit_opt_in_allows_it(tmp_path: Path, extra: str):
    code, printed = serve(project(tmp_path, extra=extra), "--listen", "0.0.0.0:0")
    assert code is None, printed
    assert "listening on http://0.0.0.0:" in printed


def test_loopback_needs_no_token(tmp_path: Path):
    code, printed = serve(project(tmp_path), "--listen", "[::1]:0")
    assert code is None, printed


@pytest.mark.slow
def test_the_core_package_alone_installs_and_runs(tmp_path: Path):
    """`pip install hookwise` in a clean environment gives a working `hookwise`."""
    source = tmp_path / "source"
    source.mkdir()
    shutil.copy(ROOT / "pyproject.toml", source)
    shutil.copy(ROOT / "README.md", source)
    shutil.copytree(ROOT / "src", source / "src", ignore=shutil.ignore_patterns("*.egg-info"))
    env_dir = tmp_path / "venv"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    install = subprocess.run(
        [python, "-m", "pip", "install", "--quiet", str(source)],
        capture_output=True,
        text=True,
        timeout=600,
    )
    assert install.returncode == 0, install.stderr
    listed = subprocess.run([python, "-m", "pip", "list"], capture_output=True, text=True)
    assert "hookwise-jira" not in listed.stdout and "slack_sdk" in listed.stdout.replace("-", "_")
    hookwise = env_dir / "bin" / "hookwise"
    shown = subprocess.run([hookwise, "--help"], capture_output=True, text=True, timeout=60)
    assert shown.returncode == 0, shown.stderr
    assert "Usage: hookwise" in shown.stdout
    (tmp_path / "project").mkdir()
    folder = project(tmp_path / "project")
    checked = subprocess.run(
        [hookwise, "check"],
        cwd=folder,
        env={**os.environ, "TEST_ARTIFACTORY_SECRET": SECRET},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert checked.returncode == 0, checked.stderr
    assert checked.stdout.startswith("ok: 0 rules, 1 sources")
