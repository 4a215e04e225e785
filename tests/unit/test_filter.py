"""One rule against one event: `explain`, `check_dimensions`, `check_criteria`, `lookup`."""

from __future__ import annotations

from typing import Any

import pytest

from hookwise.event import Event
from hookwise.filter import MATCHED, Verdict, check_criteria, check_dimensions, explain
from hookwise.paths import lookup
from hookwise.rules import Rule
from hookwise.templates import make_environment, template_context

TEMPLATES = make_environment()

DATA: dict[str, Any] = {
    "repo_key": "docker-local-staging",
    "tag": "1.4.0",
    "size": 250,
    "status": 203,
    "ratio": 1.5,
    "public": True,
    "archived": False,
    "owner": None,
    "tags": ["stable", "latest"],
    "mixed": [{"k": "v"}, ["nested"], "plain"],
    "only_dicts": [{"k": "v"}],
    "empty": [],
    "meta": {"k": "v"},
    "platforms": [{"os": "linux", "arch": "amd64"}, {"os": "windows", "arch": "arm64"}],
}


def make_event(data: Any = None, **overrides: Any) -> dict[str, Any]:
    fields: dict[str, Any] = {
        "id": "01J00000000000000000000000",
        "source": "artifactory",
        "kind": "webhook",
        "domain": "docker",
        "event_type": "promoted",
        "delivery_id": None,
        "received_at": 1_700_000_000.0,
        "data": DATA if data is None else data,
        "headers": {"x-jfrog-event": "promoted"},
    }
    fields.update(overrides)
    return Event(**fields).as_dict()


def make_rule(when: dict[str, Any], enabled: bool = True, name: str = "r") -> Rule:
    return Rule.model_validate(
        {
            "name": name,
            "enabled": enabled,
            "when": when,
            "actions": [{"uses": "log", "with": {"message": "x"}}],
        }
    )


def verdict_for(when: dict[str, Any], event: dict[str, Any] | None = None, **kw: Any) -> Verdict:
    event = make_event() if event is None else event
    rule = make_rule(when, **kw)
    return explain(rule, event, TEMPLATES, context_for(event))


def context_for(event: dict[str, Any]) -> dict[str, Any]:
    raw = Event(
        id=event["id"],
        source=event["source"],
        kind=event["kind"],
        domain=event["domain"],
        event_type=event["event_type"],
        delivery_id=event["delivery_id"],
        received_at=1_700_000_000.0,
        data=event["data"],
        headers=event["headers"],
    )
    return template_context(raw, {"name": "r", "description": ""})


# --- the example rule from the brief ---------------------------------------------------


FULL_WHEN = {
    "source": "artifactory",
    "domain": "docker",
    "event_type": "promoted",
    "match": {"data.repo_key": ["docker-local-staging", "qa-*"]},
    "exclude": {"data.tag": "*-SNAPSHOT"},
    "if": "data.size > 100",
}


def test_full_rule_matches():
    assert verdict_for(FULL_WHEN) == Verdict(True, "matched")
    assert verdict_for(FULL_WHEN) == MATCHED


def test_full_rule_second_match_glob():
    event = make_event({**DATA, "repo_key": "qa-42"})
    assert verdict_for(FULL_WHEN, event).matched is True


def test_full_rule_excluded_by_snapshot_tag():
    event = make_event({**DATA, "tag": "1.5.0-SNAPSHOT"})
    assert verdict_for(FULL_WHEN, event) == Verdict(
        False, "exclude data.tag: '1.5.0-SNAPSHOT' matches '*-SNAPSHOT'"
    )


def test_full_rule_if_false():
    event = make_event({**DATA, "size": 100})
    assert verdict_for(FULL_WHEN, event) == Verdict(False, "if 'data.size > 100' is false")


def test_full_rule_repo_key_mismatch_reason():
    event = make_event({**DATA, "repo_key": "prod-local"})
    assert verdict_for(FULL_WHEN, event) == Verdict(
        False,
        "match data.repo_key: 'prod-local' does not match any of ['docker-local-staging', 'qa-*']",
    )


# --- source / domain / event_type --------------------------------------------------------


def test_defaults_match_everything():
    assert verdict_for({}) == MATCHED


@pytest.mark.parametrize(
    "when",
    [
        {"source": "artifactory"},
        {"source": "arti*"},
        {"source": "?rtifactory"},
        {"source": ["github", "artifactory"]},
        {"source": ["github", "art*"]},
        {"domain": "dock[a-z]r"},
        {"domain": ["npm", "docker"]},
        {"event_type": "pro*"},
        {"event_type": ["deleted", "promoted"]},
        {"source": "art*", "domain": ["docker"], "event_type": "*"},
    ],
)
def test_dimensions_match_as_glob_or_list(when):
    assert verdict_for(when) == MATCHED


def test_source_mismatch_reason_single_glob():
    assert verdict_for({"source": "github"}) == Verdict(
        False, "source 'artifactory' does not match 'github'"
    )


def test_domain_mismatch_reason_list():
    assert verdict_for({"domain": ["npm", "helm*"]}) == Verdict(
        False, "domain 'docker' does not match any of ['npm', 'helm*']"
    )


def test_event_type_mismatch_reason():
    assert verdict_for({"event_type": "deleted"}) == Verdict(
        False, "event_type 'promoted' does not match 'deleted'"
    )


def test_dimensions_checked_in_order_source_first():
    verdict = verdict_for({"source": "github", "domain": "npm", "event_type": "deleted"})
    assert verdict.reason.startswith("source ")


def test_dimensions_are_case_sensitive_and_anchored():
    assert verdict_for({"source": "Artifactory"}).matched is False
    assert verdict_for({"source": "artifact"}).matched is False
    assert verdict_for({"domain": "dock"}).matched is False


def test_check_dimensions_ignores_criteria():
    rule = make_rule({"source": "artifactory", "match": {"data.nope": "x"}})
    assert check_dimensions(rule.when, make_event()) == MATCHED


# --- match -------------------------------------------------------------------------------


def test_match_list_of_globs_any():
    assert verdict_for({"match": {"data.tag": ["0.*", "1.*"]}}) == MATCHED
    assert verdict_for({"match": {"data.tag": ["0.*", "2.*"]}}).matched is False


def test_match_every_key_must_match():
    when = {"match": {"data.repo_key": "docker-*", "data.tag": "2.*"}}
    assert verdict_for(when) == Verdict(False, "match data.tag: '1.4.0' does not match '2.*'")


def test_match_into_list_by_index():
    assert verdict_for({"match": {"data.platforms.0.os": "linux"}}) == MATCHED
    assert verdict_for({"match": {"data.platforms.1.os": "win*"}}) == MATCHED
    assert verdict_for({"match": {"data.platforms.1.os": "linux"}}) == Verdict(
        False, "match data.platforms.1.os: 'windows' does not match 'linux'"
    )


def test_match_list_field_any_element():
    assert verdict_for({"match": {"data.tags": "latest"}}) == MATCHED
    assert verdict_for({"match": {"data.tags": "sta*"}}) == MATCHED
    assert verdict_for({"match": {"data.tags": ["nope", "lat?st"]}}) == MATCHED
    assert verdict_for({"match": {"data.tags": "beta"}}) == Verdict(
        False, "match data.tags: ['stable', 'latest'] does not match 'beta'"
    )


def test_match_list_field_skips_nested_containers():
    assert verdict_for({"match": {"data.mixed": "plain"}}) == MATCHED
    assert verdict_for({"match": {"data.mixed": "nested"}}).matched is False
    assert verdict_for({"match": {"data.only_dicts": "**"}}).matched is False


def test_match_empty_list_never_matches():
    assert verdict_for({"match": {"data.empty": "**"}}) == Verdict(
        False, "match data.empty: [] does not match '**'"
    )


@pytest.mark.parametrize(
    ("path", "glob"),
    [
        ("data.status", "203"),
        ("data.status", 203),
        ("data.status", "2??"),
        ("data.status", "20[0-9]"),
        ("data.size", "250"),
        ("data.ratio", "1.5"),
        ("data.public", "true"),
        ("data.public", True),
        ("data.archived", "false"),
        ("data.archived", False),
        ("data.owner", "null"),
        ("data.owner", None),
    ],
)
def test_scalars_match_by_string_form(path, glob):
    assert verdict_for({"match": {path: glob}}) == MATCHED


@pytest.mark.parametrize(
    ("path", "glob"),
    [
        ("data.status", "204"),
        ("data.public", "True"),
        ("data.public", "1"),
        ("data.archived", "False"),
        ("data.owner", "None"),
        ("data.owner", ""),
    ],
)
def test_scalars_do_not_match_other_spellings(path, glob):
    assert verdict_for({"match": {path: glob}}).matched is False


def test_status_reason_shows_the_int():
    assert verdict_for({"match": {"data.status": "4*"}}) == Verdict(
        False, "match data.status: 203 does not match '4*'"
    )


@pytest.mark.parametrize(
    "path",
    [
        "data.nope",
        "data.platforms.5.os",
        "data.platforms.x",
        "data.platforms.0.nope",
        "data.repo_key.0",
        "data.size.x",
        "data.owner.x",
        "nothing.at.all",
        "data.tags.-1",
    ],
)
def test_missing_field_never_matches_and_names_path(path):
    assert verdict_for({"match": {path: "**"}}) == Verdict(
        False, f"match {path}: the event has no {path}"
    )


@pytest.mark.parametrize("data", [None, "text", 7, [1, 2], {}])
def test_missing_field_with_odd_data_shapes(data):
    event = make_event(data)
    event["data"] = data  # make_event treats None as "use the default"
    rule = make_rule({"match": {"data.repo_key": "*"}})
    assert explain(rule, event, TEMPLATES, {"data": data}) == Verdict(
        False, "match data.repo_key: the event has no data.repo_key"
    )


def test_match_on_top_level_event_fields():
    assert verdict_for({"match": {"headers.x-jfrog-event": "promoted"}}) == MATCHED
    assert verdict_for({"match": {"kind": "webhook"}}) == MATCHED
    assert verdict_for({"match": {"received_at": "2023-11-14T*"}}) == MATCHED


def test_dict_value_does_not_match():
    for glob in ["*", "**", "{'k': 'v'}", '{"k": "v"}']:
        verdict = verdict_for({"match": {"data.meta": glob}})
        assert verdict == Verdict(False, f"match data.meta: {{'k': 'v'}} does not match {glob!r}")


def test_long_values_are_abbreviated_in_reason():
    event = make_event({**DATA, "repo_key": "x" * 300})
    verdict = verdict_for({"match": {"data.repo_key": "y"}}, event)
    assert not verdict.matched
    shown = verdict.reason.removeprefix("match data.repo_key: ").removesuffix(" does not match 'y'")
    assert len(shown) == 120
    assert shown.endswith("...")
    assert shown.startswith("'xxx")


# --- exclude -----------------------------------------------------------------------------


def test_exclude_any_match_excludes():
    assert verdict_for({"exclude": {"data.tags": ["beta", "latest"]}}) == Verdict(
        False, "exclude data.tags: ['stable', 'latest'] matches 'latest'"
    )


def test_exclude_any_key_excludes():
    when = {"exclude": {"data.tag": "9.*", "data.repo_key": "*-staging"}}
    assert verdict_for(when) == Verdict(
        False, "exclude data.repo_key: 'docker-local-staging' matches '*-staging'"
    )


def test_exclude_reason_names_first_matching_glob():
    verdict = verdict_for({"exclude": {"data.tag": ["2.*", "1.*", "*"]}})
    assert verdict == Verdict(False, "exclude data.tag: '1.4.0' matches '1.*'")


def test_exclude_non_matching_keeps_rule():
    assert verdict_for({"exclude": {"data.tag": ["*-SNAPSHOT", "0.*"]}}) == MATCHED


def test_exclude_missing_field_does_not_exclude():
    assert verdict_for({"exclude": {"data.nope": "**", "data.platforms.9.os": "*"}}) == MATCHED


def test_exclude_scalar_by_string_form():
    assert verdict_for({"exclude": {"data.public": "true"}}) == Verdict(
        False, "exclude data.public: True matches 'true'"
    )


def test_exclude_dict_value_never_excludes():
    assert verdict_for({"exclude": {"data.meta": "**"}}) == MATCHED


def test_match_is_checked_before_exclude():
    when = {"match": {"data.tag": "2.*"}, "exclude": {"data.tag": "*"}}
    assert verdict_for(when).reason == "match data.tag: '1.4.0' does not match '2.*'"


# --- if ----------------------------------------------------------------------------------


def test_if_true_and_false():
    assert verdict_for({"if": "data.size > 100"}) == MATCHED
    assert verdict_for({"if": "data.size > 1000"}) == Verdict(
        False, "if 'data.size > 1000' is false"
    )


def test_if_sees_event_and_rule():
    assert verdict_for({"if": "event.source == 'artifactory' and rule.name == 'r'"}) == MATCHED
    assert verdict_for({"if": "'latest' in data.tags"}) == MATCHED
    assert verdict_for({"if": "data.platforms | length == 2"}) == MATCHED


def test_if_falsy_values_are_false():
    for expression in ["data.empty", "data.owner", "0", "''"]:
        assert verdict_for({"if": expression}) == Verdict(False, f"if {expression!r} is false")


def test_if_undefined_field_in_comparison_is_not_matched_with_reason():
    verdict = verdict_for({"if": "data.nope > 1"})
    assert verdict.matched is False
    assert verdict.reason.startswith("if 'data.nope > 1' could not be evaluated: ")
    assert "has no attribute 'nope'" in verdict.reason


def test_if_undefined_variable_is_not_matched_with_reason():
    verdict = verdict_for({"if": "nothing == 1"})
    assert verdict.matched is False
    assert verdict.reason.startswith("if 'nothing == 1' could not be evaluated: ")
    assert "'nothing' is undefined" in verdict.reason


def test_if_bare_undefined_field_is_not_matched_with_reason():
    verdict = verdict_for({"if": "data.nope"})
    assert verdict.matched is False
    assert verdict.reason.startswith("if 'data.nope' could not be evaluated: ")


def test_if_runtime_error_is_not_matched_with_reason():
    verdict = verdict_for({"if": "data.size / 0"})
    assert verdict.matched is False
    assert verdict.reason.startswith("if 'data.size / 0' could not be evaluated: ")
    assert "ZeroDivisionError" in verdict.reason


def test_if_sandbox_violation_is_not_matched():
    verdict = verdict_for({"if": "''.__class__.__mro__ | length > 0"})
    assert verdict.matched is False
    assert "could not be evaluated" in verdict.reason


def test_if_not_evaluated_when_exclude_already_failed():
    # The `if` would fail to evaluate, but exclude comes first.
    when = {"exclude": {"data.tag": "1.*"}, "if": "data.nope > 1"}
    assert verdict_for(when) == Verdict(False, "exclude data.tag: '1.4.0' matches '1.*'")


def test_check_criteria_ignores_dimensions():
    event = make_event()
    rule = make_rule({"source": "github", "match": {"data.tag": "1.*"}})
    assert check_criteria(rule.when, event, TEMPLATES, context_for(event)) == MATCHED
    assert explain(rule, event, TEMPLATES, context_for(event)).matched is False


# --- enabled -----------------------------------------------------------------------------


def test_a_disabled_rule_says_it_would_match():
    assert verdict_for(FULL_WHEN, enabled=False) == Verdict(
        False, "rule is disabled (enabled: false); enabled, it would match"
    )


def test_a_disabled_rule_says_why_it_would_not_match_either():
    verdict = verdict_for({"source": "github"}, enabled=False)
    assert verdict.reason.startswith(
        "rule is disabled (enabled: false); enabled, it would not: source "
    )


# --- lookup ------------------------------------------------------------------------------


def test_lookup_values():
    event = make_event()
    assert lookup(event, "data.platforms.1.arch") == "arm64"
    assert lookup(event, "data.tags.0") == "stable"
    assert lookup(event, "data.meta") == {"k": "v"}
    assert lookup(event, "data.owner") is None
    assert lookup(event, "source") == "artifactory"


def test_lookup_missing_is_a_sentinel_not_none():
    event = make_event()
    assert lookup(event, "data.nope") is not None
    assert lookup(event, "data.nope") is lookup(event, "data.tags.9")


def test_if_sees_the_rule_being_checked():
    event = make_event()
    rule = make_rule({"if": "rule.name == 'deploy-prod'"}, name="deploy-prod")
    assert explain(rule, event, TEMPLATES, context_for(event)) == MATCHED
    other = make_rule({"if": "rule.name == 'deploy-prod'"}, name="deploy-dev")
    assert not explain(other, event, TEMPLATES, context_for(event)).matched
