"""`hookwise.plugin` is the whole public plugin API, and this repository's plugins keep to it."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

import hookwise.plugin

ROOT = Path(__file__).resolve().parents[2]
PLUGINS = ROOT / "plugins"
# The repository's plugins, and the third-party example docs/plugins.md shows, with its test.
FILES = sorted(
    p
    for p in [*PLUGINS.rglob("*.py"), *(ROOT / "examples").rglob("*.py")]
    if ".egg-info" not in str(p)
)


def hookwise_imports(path: Path) -> list[str]:
    """Every hookwise module a file imports, at any depth (functions included)."""
    found = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.ImportFrom) and node.module:
            found.append(node.module)
        elif isinstance(node, ast.Import):
            found.extend(alias.name for alias in node.names)
    return [name for name in found if name == "hookwise" or name.startswith("hookwise.")]


def test_there_are_plugins_to_check():
    assert len(FILES) >= 8
    assert {p.parent.name for p in FILES} >= {"hookwise_docker", "jira", "jenkins", "plugins"}


@pytest.mark.parametrize("path", FILES, ids=lambda p: str(p.relative_to(ROOT)))
def test_plugins_import_only_the_public_api(path: Path):
    assert set(hookwise_imports(path)) <= {"hookwise.plugin"}


def test_the_api_exports_what_it_lists():
    for name in hookwise.plugin.__all__:
        assert getattr(hookwise.plugin, name) is not None
    # Enough to write an action, a source and an integration without reaching elsewhere.
    needed = {"hookimpl", "ActionSpec", "ActionContext", "SourceKind", "IntegrationSpec",
              "Delivery", "Incoming", "Event", "RetryLater", "PermanentFailure",
              "guarded_client", "shared_session", "read_bounded", "guard_session",
              "retry_after", "Duration", "mask"}  # fmt: skip
    assert needed <= set(hookwise.plugin.__all__)


def test_the_checker_would_catch_a_private_import(tmp_path: Path):
    sneaky = tmp_path / "sneaky.py"
    sneaky.write_text("def f():\n    from hookwise.runner import Runner\n    return Runner\n")
    assert hookwise_imports(sneaky) == ["hookwise.runner"]
