"""RuleIndex must select exactly what brute-force `explain` selects, in file order."""

from __future__ import annotations

import random
from typing import Any

from hookwise.event import Event
from hookwise.filter import check_dimensions, explain
from hookwise.matcher import RuleIndex, verdicts
from hookwise.rules import Rule
from hookwise.templates import make_environment, template_context

TEMPLATES = make_environment()

SOURCES = ["artifactory", "github", "gitlab", "jira", "xray"]
DOMAINS = ["docker", "npm", "helm", "pypi", "build"]
EVENT_TYPES = ["promoted", "deleted", "pushed", "created", "uploaded"]
IMAGES = ["team-a/api", "team-a/web", "team-b/api", "tools/ci", "api"]


def make_rule(name: str, when: dict[str, Any], enabled: bool = True) -> Rule:
    return Rule.model_validate(
        {"name": name, "enabled": enabled, "when": when, "actions": [{"uses": "log"}]}
    )


def make_event(source: str, domain: str, event_type: str, data: Any = None) -> Event:
    return Event(
        id="01J00000000000000000000000",
        source=source,
        kind="webhook",
        domain=domain,
        event_type=event_type,
        delivery_id=None,
        received_at=0.0,
        data={} if data is None else data,
    )


def context(event: Event) -> dict[str, Any]:
    return template_context(event, {"name": "r", "description": ""})


def brute_force(rules: list[Rule], event: Event) -> list[Rule]:
    ev, ctx = event.as_dict(), context(event)
    return [rule for rule in rules if explain(rule, ev, TEMPLATES, ctx).matched]


def random_pattern(rng: random.Random, values: list[str]) -> str:
    value = rng.choice(values)
    kind = rng.randrange(9)
    if kind <= 3:
        return value  # literal, the common case
    if kind == 4:
        return "*"
    if kind == 5:
        return value[: rng.randrange(1, 4)] + "*"
    if kind == 6:
        return "?" + value[1:]
    if kind == 7:
        return f"[{value[0]}{rng.choice(values)[0]}]*"
    return "**"


def random_globs(rng: random.Random, values: list[str]) -> Any:
    roll = rng.random()
    if roll < 0.15:
        return None  # omitted: defaults to "*"
    if roll < 0.7:
        return random_pattern(rng, values)
    return [random_pattern(rng, values) for _ in range(rng.randrange(1, 4))]


def random_rules(rng: random.Random, count: int) -> list[Rule]:
    rules = []
    for position in range(count):
        when: dict[str, Any] = {}
        for key, values in (
            ("source", SOURCES),
            ("domain", DOMAINS),
            ("event_type", EVENT_TYPES),
        ):
            globs = random_globs(rng, values)
            if globs is not None:
                when[key] = globs
        if rng.random() < 0.3:
            when["match"] = {"data.level": rng.choice(["[0-4]", "[5-9]", "*"])}
        if rng.random() < 0.4:
            when.setdefault("match", {})["data.image"] = random_globs(rng, IMAGES) or "*"
        if rng.random() < 0.2:
            when["exclude"] = {"data.tags": rng.choice(["beta", "rc*"])}
        if rng.random() < 0.2:
            when["if"] = rng.choice(["data.level > 3", "data.level % 2 == 0"])
        rules.append(make_rule(f"rule-{position}", when, enabled=rng.random() > 0.1))
    return rules


def random_event(rng: random.Random) -> Event:
    def pick(values: list[str]) -> str:
        return rng.choice(values) if rng.random() < 0.9 else rng.choice(["other", "g/x", ""])

    data: dict[str, Any] = {
        "level": rng.randrange(10),
        "tags": rng.sample(["beta", "rc1", "stable"], 2),
    }
    roll = rng.random()
    if roll < 0.6:
        data["image"] = rng.choice([*IMAGES, "team-a/", "other/x", ""])
    elif roll < 0.8:  # a list matches when any of its scalars does
        data["image"] = [*rng.sample(IMAGES, 2), {"nested": "team-a/api"}, 7]
    return make_event(pick(SOURCES), pick(DOMAINS), pick(EVENT_TYPES), data)


def test_index_agrees_with_brute_force_on_random_rules_and_events():
    rng = random.Random(20240611)
    rules = random_rules(rng, 200)
    index = RuleIndex(rules)
    assert sum(not r.enabled for r in rules) > 0
    total_matches = nonempty_candidate_sets = narrowed = 0
    for _ in range(400):
        event = random_event(rng)
        ev, ctx = event.as_dict(), context(event)
        expected = brute_force(rules, event)
        got = index.match(ev, TEMPLATES, ctx)
        assert [r.name for r in got] == [r.name for r in expected], ev
        # Candidates: every match, nothing the dimensions rule out, in file order.
        reachable = [r.name for r in rules if r.enabled and check_dimensions(r.when, ev).matched]
        candidates = [r.name for r in index.candidates(ev)]
        assert set(r.name for r in got) <= set(candidates) <= set(reachable), ev
        assert candidates == [name for name in reachable if name in candidates]
        total_matches += len(got)
        nonempty_candidate_sets += bool(candidates)
        narrowed += len(reachable) - len(candidates)
    # Guard against a vacuous test: the generator must actually produce matches, and
    # the match index must actually leave rules out.
    assert total_matches > 400
    assert nonempty_candidate_sets > 300
    assert narrowed > 1000


def test_index_agrees_on_every_combination_of_known_values():
    rng = random.Random(7)
    rules = random_rules(rng, 200)
    index = RuleIndex(rules)
    for source in [*SOURCES, "none"]:
        for domain in DOMAINS:
            for event_type in EVENT_TYPES:
                event = make_event(source, domain, event_type, {"level": 4, "tags": []})
                ev = event.as_dict()
                got = index.match(ev, TEMPLATES, context(event))
                assert [r.name for r in got] == [r.name for r in brute_force(rules, event)]


def test_candidates_preserve_file_order_across_literal_and_wildcard_rules():
    rules = [
        make_rule("wild-all", {}),
        make_rule("literal", {"source": "github", "domain": "npm", "event_type": "pushed"}),
        make_rule("wild-source", {"source": "git*", "event_type": "pushed"}),
        make_rule("other", {"source": "jira"}),
        make_rule("literal-again", {"source": ["github"], "domain": ["npm", "n*"]}),
        make_rule("class", {"source": "[gx]ithub", "domain": "?pm"}),
        make_rule("double", {"source": "**", "domain": "**", "event_type": "**"}),
    ]
    index = RuleIndex(rules)
    event = make_event("github", "npm", "pushed").as_dict()
    names = [r.name for r in index.candidates(event)]
    assert names == ["wild-all", "literal", "wild-source", "literal-again", "class", "double"]


def test_rule_reached_by_several_patterns_appears_once():
    rule = make_rule(
        "multi",
        {"source": ["github", "git*", "*"], "domain": ["npm", "**"], "event_type": ["*", "pushed"]},
    )
    index = RuleIndex([rule])
    assert index.candidates(make_event("github", "npm", "pushed").as_dict()) == [rule]


def test_disabled_rules_are_never_candidates():
    rules = [
        make_rule("off-wild", {}, enabled=False),
        make_rule("on", {"source": "github"}),
        make_rule("off-literal", {"source": "github"}, enabled=False),
    ]
    index = RuleIndex(rules)
    event = make_event("github", "npm", "pushed")
    assert [r.name for r in index.candidates(event.as_dict())] == ["on"]
    assert [r.name for r in index.match(event.as_dict(), TEMPLATES, context(event))] == ["on"]
    # ...but they stay in the index for the dry run.
    assert [r.name for r in index.rules] == ["off-wild", "on", "off-literal"]


def test_all_disabled_gives_no_candidates():
    index = RuleIndex([make_rule(f"r{i}", {}, enabled=False) for i in range(5)])
    assert index.candidates(make_event("a", "b", "c").as_dict()) == []


def test_empty_index():
    index = RuleIndex([])
    event = make_event("github", "npm", "pushed")
    assert index.candidates(event.as_dict()) == []
    assert index.match(event.as_dict(), TEMPLATES, context(event)) == []
    assert verdicts(index, event.as_dict(), TEMPLATES, context(event)) == []


def test_star_in_index_does_not_cross_slash():
    index = RuleIndex([make_rule("star", {"domain": "*"}), make_rule("dstar", {"domain": "**"})])
    event = make_event("s", "a/b", "t").as_dict()
    assert [r.name for r in index.candidates(event)] == ["dstar"]


def test_non_string_dimension_gives_no_candidates():
    index = RuleIndex([make_rule("any", {})])
    event = make_event("github", "npm", "pushed").as_dict()
    del event["domain"]
    assert index.candidates(event) == []
    event["domain"] = None
    assert index.candidates(event) == []


def test_match_applies_criteria_after_candidates():
    rules = [
        make_rule("small", {"source": "github", "if": "data.size < 10"}),
        make_rule("big", {"source": "github", "if": "data.size >= 10"}),
        make_rule("tagged", {"source": "git*", "match": {"data.tag": "v*"}}),
        make_rule("excluded", {"source": "*", "exclude": {"data.tag": "v1*"}}),
    ]
    index = RuleIndex(rules)
    event = make_event("github", "npm", "pushed", {"size": 42, "tag": "v1.2"})
    names = [r.name for r in index.match(event.as_dict(), TEMPLATES, context(event))]
    assert names == ["big", "tagged"]


def test_verdicts_one_per_rule_in_file_order():
    rules = [
        make_rule("off", {}, enabled=False),
        make_rule("wrong-source", {"source": "jira"}),
        make_rule("hit", {"source": "github"}),
        make_rule("if-false", {"if": "data.size > 100"}),
    ]
    index = RuleIndex(rules)
    event = make_event("github", "npm", "pushed", {"size": 42})
    ev, ctx = event.as_dict(), context(event)
    result = verdicts(index, ev, TEMPLATES, ctx)
    assert [rule for rule, _ in result] == rules
    assert [(rule.name, v.matched, v.reason) for rule, v in result] == [
        ("off", False, "rule is disabled (enabled: false); enabled, it would match"),
        ("wrong-source", False, "source 'github' does not match 'jira'"),
        ("hit", True, "matched"),
        ("if-false", False, "if 'data.size > 100' is false"),
    ]


def test_verdicts_agree_with_match_on_random_rules():
    rng = random.Random(99)
    rules = random_rules(rng, 200)
    index = RuleIndex(rules)
    for _ in range(100):
        event = random_event(rng)
        ev, ctx = event.as_dict(), context(event)
        result = verdicts(index, ev, TEMPLATES, ctx)
        assert len(result) == len(rules)
        assert [r for r, _ in result] == rules
        matched = [r.name for r, v in result if v.matched]
        assert matched == [r.name for r in index.match(ev, TEMPLATES, ctx)]


def test_rules_told_apart_by_match_reach_only_their_own_events():
    rules = [
        make_rule(f"image-{n}", {"source": "artifactory", "match": {"data.image": f"team/img-{n}"}})
        for n in range(1000)
    ]
    rules += [
        make_rule("team-b", {"match": {"data.image": ["team-b/*", "legacy/b-*"]}}),
        make_rule("any-api", {"match": {"data.image": "*/api"}}),  # starts with a wildcard
        make_rule("two-fields", {"match": {"data.image": "team/img-7", "data.tag": "v*"}}),
    ]
    index = RuleIndex(rules)

    def names(data: dict[str, Any]) -> tuple[list[str], list[str]]:
        event = make_event("artifactory", "docker", "pushed", data)
        ev = event.as_dict()
        matched = [r.name for r in index.match(ev, TEMPLATES, context(event))]
        return [r.name for r in index.candidates(ev)], matched

    assert names({"image": "team/img-7", "tag": "v1"}) == (
        ["image-7", "any-api", "two-fields"],
        ["image-7", "two-fields"],
    )
    assert names({"image": "team-b/api"}) == (["team-b", "any-api"], ["team-b", "any-api"])
    assert names({"image": "legacy/b-x"}) == (["team-b", "any-api"], ["team-b"])
    assert names({"image": ["team/img-3", "team-b/x"]})[1] == ["image-3", "team-b"]
    assert names({"other": 1}) == (["any-api"], [])
