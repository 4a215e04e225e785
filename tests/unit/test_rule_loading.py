"""Loading rule files as `serve` does: each rule is checked as it is read, placed by
`file:line`, and held compactly, so 10,000 rules cost a few MB and not a few hundred."""

from __future__ import annotations

import gc
import sys
import types
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from hookwise.errors import ConfigError
from hookwise.rules import Rule
from hookwise.rules.model import DEFAULT_RETRY
from hookwise.service import build_service
from tests.conftest import SECRET, project


def rule_file(count: int) -> str:
    return "rules:\n" + "".join(
        f"  - name: team-{n}\n"
        "    when: {source: artifactory, event_type: pushed,\n"
        f"           match: {{data.repo_key: team-{n}-*}}}}\n"
        f"    actions: [{{uses: log, with: {{message: 'team {n}: {{{{ data.tag }}}}'}}}}]\n"
        for n in range(count)
    )


@pytest.fixture
def load(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)  # rule files are named relative to the working directory

    def loaded(rules: str) -> list[Rule]:
        return build_service(project(tmp_path, rules) / "hookwise.yaml").engine.rules.rules

    return loaded


def test_each_rule_knows_the_line_it_starts_on(load):
    rules = load(rule_file(3))
    assert [rule.origin for rule in rules] == [
        "rules/main.yaml:2",
        "rules/main.yaml:6",
        "rules/main.yaml:10",
    ]


def test_actions_without_a_retry_block_share_one_policy_and_others_get_their_own(load):
    text = rule_file(2) + (
        "  - name: patient\n    when: {}\n"
        "    actions: [{uses: log, with: {message: x}, retry: {attempts: 7}}]\n"
    )
    first, second, patient = load(text)
    assert first.actions[0].retry is DEFAULT_RETRY is second.actions[0].retry
    assert (patient.actions[0].retry.attempts, patient.actions[0].retry.backoff) == (7, 2.0)


def test_rules_written_with_anchors_and_merge_keys_load_in_file_order(load):
    text = (
        "rules:\n"
        "  - &base\n    name: first\n    when: {source: artifactory}\n"
        "    actions: [{uses: log, with: {message: x}}]\n"
        "  - <<: *base\n    name: second\n"
        "  - name: third\n    when: *when\n"
        "    actions: [{uses: log, with: {message: y}}]\n"
    ).replace("when: {source: artifactory}", "when: &when {source: artifactory}")
    rules = load(text)
    assert [(rule.name, rule.origin, rule.when.source) for rule in rules] == [
        ("first", "rules/main.yaml:2", ["artifactory"]),
        ("second", "rules/main.yaml:6", ["artifactory"]),
        ("third", "rules/main.yaml:8", ["artifactory"]),
    ]


def test_rules_merged_into_the_root_mapping_are_loaded_too(load):
    text = "<<: {rules: [{name: merged, when: {}, actions: [{uses: log, with: {message: x}}]}]}\n"
    assert [rule.name for rule in load(text)] == ["merged"]


def test_a_mistake_in_an_anchored_rule_is_reported_once(load):
    text = "rules:\n  - &r {name: a, name: b, when: {}, actions: [{uses: log}]}\n"
    with pytest.raises(ConfigError) as raised:
        load(text)
    assert [str(problem) for problem in raised.value.problems] == [
        "rules/main.yaml:2:18: [error] rules[0].name: duplicate key 'name' (first defined on "
        "line 2); remove one of them"
    ]


def test_an_alias_used_as_a_whole_rule_is_a_name_used_twice(load):
    text = rule_file(1).replace("  - name: team-0", "  - &one\n    name: team-0") + "  - *one\n"
    with pytest.raises(ConfigError) as raised:
        load(text)
    # Positioned where the aliased text is; the breadcrumb names the alias's place.
    assert [str(problem) for problem in raised.value.problems] == [
        "rules/main.yaml:3:11: [error] rules[1].name: rule name 'team-0' is already used at "
        "rules/main.yaml:2; names must be unique across all files"
    ]


def test_a_rule_is_checked_in_the_same_pass_as_its_neighbours(load):
    """Streaming changed when rules are judged, not what is reported: every mistake in
    every rule, and a name used twice, in one run of `check`."""
    text = rule_file(2) + (
        "  - name: team-0\n    when: {}\n    actions: [{uses: log, with: {message: x}}]\n"
        "  - name: typo\n    wen: {}\n    actions: [{uses: lgo}]\n"
    )
    with pytest.raises(ConfigError) as raised:
        load(text)
    assert [str(problem) for problem in raised.value.problems] == [
        "rules/main.yaml:10:11: [error] rules[2].name: rule name 'team-0' is already used at "
        "rules/main.yaml:2; names must be unique across all files",
        "rules/main.yaml:13:5: [error] rules[3].when: required key is missing",
        "rules/main.yaml:14:5: [error] rules[3].wen: unknown key 'wen'; did you mean 'when'?",
        "rules/main.yaml:15:22: [error] rules[3].actions[0].uses: unknown action 'lgo'; "
        "did you mean 'log'?",
    ]


def held_by(roots: list[Any]) -> int:
    """Bytes of every object reachable from `roots`, each counted once; classes, modules
    and functions are shared by everything and not counted."""
    seen: set[int] = set()
    total, pending = 0, list(roots)
    while pending:
        item = pending.pop()
        if id(item) in seen or isinstance(item, type | types.ModuleType | Callable):
            continue
        seen.add(id(item))
        total += sys.getsizeof(item)
        pending.extend(gc.get_referents(item))
    return total


def test_loaded_rules_hold_little_memory_each(load):
    """Section (g) of the benchmark measures RSS; this keeps what the rules hold from
    creeping back. Each of these rules has a name, a glob and a template of its own:
    they hold about 1.8 KB each, where pydantic models and a compiled regex per glob
    held 4.4 KB. (Counted object by object: tracemalloc would also count what other
    threads of the test process allocate meanwhile.)"""
    rules = load(rule_file(500))
    assert len(rules) == 500
    assert held_by(rules) / len(rules) < 2_200


def test_a_file_whose_yaml_is_broken_leaves_no_warnings_behind(load, tmp_path: Path):
    """Its rules are not judged, so nothing they said stands."""
    loader = build_service(project(tmp_path, rule_file(1)) / "hookwise.yaml", lenient=True).loader
    broken = tmp_path / "broken.yaml"
    broken.write_text(
        "rules:\n  - name: a\n    when: {}\n"
        "    actions: [{uses: log, with: {message: '${UNSET_XYZ_4711}'}}]\n"
        "  - name: [b\n"
    )
    with pytest.raises(ConfigError) as raised:
        loader.load(broken)
    assert ["YAML syntax error" in problem.message for problem in raised.value.problems] == [True]
    assert loader.warnings == []


def test_a_parameter_mistake_is_placed_at_its_own_key(load):
    text = (
        "rules:\n  - name: a\n    when: {}\n    actions:\n      - uses: http.post\n"
        "        with: {url: 'http://example.com/', headers: {int: 5}}\n"
    )
    with pytest.raises(ConfigError) as raised:
        load(text)
    [problem] = raised.value.problems
    assert problem.message.startswith("rules[0].actions[0].with.headers.int: ")
    assert (problem.line, problem.col) == (6, 59)  # at the value, 5
