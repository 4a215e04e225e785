"""The docs keep up with the code: every hook's exact signature appears in docs/plugins.md."""

from __future__ import annotations

import inspect
from pathlib import Path

import pytest

from hookwise import hookspecs

DOCS = Path(__file__).parents[2] / "docs"
HOOKS = [
    function
    for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
    if name.startswith("hookwise_")
]


@pytest.mark.parametrize("hook", HOOKS, ids=lambda hook: hook.__name__)
def test_hook_signature_is_documented(hook):
    signature = inspect.signature(hook)
    parameters = ", ".join(f"{p.name}: {p.annotation}" for p in signature.parameters.values())
    line = f"def {hook.__name__}({parameters}) -> {signature.return_annotation}:"
    assert line in (DOCS / "plugins.md").read_text()


@pytest.mark.parametrize(
    "page",
    [
        "rules.md",
        "configuration.md",
        "sources.md",
        "integrations.md",
        "plugins.md",
        "api.md",
        "gitops.md",
        "kubernetes.md",
        "performance.md",
    ],
)
def test_readme_links_every_doc_page(page):
    assert f"(docs/{page})" in (DOCS.parent / "README.md").read_text()


@pytest.mark.parametrize("example", ["plugins/audit_file.py", "test_audit_file.py"])
def test_the_worked_example_in_the_docs_is_the_tested_one(example):
    """docs/plugins.md shows examples/ verbatim, and examples/ is part of the test run."""
    code = (DOCS.parent / "examples" / example).read_text()
    assert f"```python\n{code}```" in (DOCS / "plugins.md").read_text()
