"""`hookwise.engine`: the pipeline's order (verify, normalize, match, persist), dedupe keys,
the plan of runs with their flow keys, replay, a rule-set swap, and the dry run's report.
In-process through the engine of a built service, over a real SQLite store.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from hookwise.engine import dedupe_key
from hookwise.errors import PayloadError, UnknownSource, VerificationError
from hookwise.event import Incoming
from hookwise.matcher import RuleIndex
from hookwise.sources import Delivery
from hookwise.store import EventQuery
from tests.conftest import SECRET
from tests.inprocess import Harness

pytestmark = pytest.mark.anyio
Make = Callable[..., Awaitable[Harness]]
RULES = """
rules:
  - name: deploy
    when: {source: artifactory, domain: docker, event_type: pushed, match: {data.tag: "1.*"}}
    concurrency: {key: "{{ data.image_name }}", limit: 1}
    actions:
      - id: call
        uses: http.post
        with: {url: "http://127.0.0.1:9/deploy", json: {tag: "{{ data.tag }}"}}
      - uses: log
        with: {message: "answered {{ steps.call.output.status }}"}
  - name: builds
    when: {domain: build}
    actions: [{uses: log, with: {message: build}}]
"""
AUTH = {"x-jfrog-event-auth": SECRET}


def pushed(tag: str) -> bytes:
    data = {"repo_key": "docker-local", "image_name": "api", "tag": tag,
            "path": f"api/{tag}/manifest.json", "name": "manifest.json", "sha256": "a" * 64,
            "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()


async def test_a_delivery_is_stored_with_its_planned_runs_and_flow_keys(harness_for: Make):
    harness = await harness_for(RULES)
    [result] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.2")))
    assert not result.duplicate
    event = await harness.store.get_event(result.event_id)
    assert event is not None
    assert (event.source, event.domain, event.event_type) == ("artifactory", "docker", "pushed")
    assert event.artifacts[0]["tag"] == "1.2"
    assert "x-jfrog-event-auth" not in event.headers  # credentials are never stored
    [run] = await harness.store.runs_of(result.event_id)
    assert run.run.rule == "deploy" and run.run.status == "pending"
    assert run.run.concurrency_key == "api"
    assert [a["uses"] for a in run.run.spec["actions"]] == ["http.post", "log"]


async def test_a_rule_that_does_not_match_plans_nothing(harness_for: Make):
    harness = await harness_for(RULES)
    [result] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("2.0")))
    assert await harness.store.runs_of(result.event_id) == []


async def test_verification_comes_before_parsing(harness_for: Make):
    harness = await harness_for(RULES)
    with pytest.raises(VerificationError):
        await harness.engine.receive("artifactory", Delivery({}, b"not json at all"))
    with pytest.raises(PayloadError):
        await harness.engine.receive("artifactory", Delivery(AUTH, b"not json at all"))
    with pytest.raises(UnknownSource):
        await harness.engine.receive("nexus", Delivery(AUTH, pushed("1.0")))


def test_dedupe_keys_prefer_the_senders_ids_over_the_body():
    body = b'{"a": 1}'
    keyed = Incoming("d", "t", {}, delivery_id="id-1", dedupe_key="k-1")
    assert dedupe_key("s", keyed, body, 0) == ("s:key:k-1", False)
    by_id = Incoming("d", "t", {}, delivery_id="id-1")
    assert dedupe_key("s", by_id, body, 0) == ("s:id:id-1", False)
    anonymous = Incoming("d", "t", {})
    key, by_body = dedupe_key("s", anonymous, body, 2)
    assert by_body and key.startswith("s:sha256:") and key.endswith(":2")
    assert key != dedupe_key("s", anonymous, body, 3)[0]  # each item of a batch


async def test_replay_plans_runs_under_the_current_rules(harness_for: Make):
    harness = await harness_for(RULES)
    [result] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("2.0")))
    assert await harness.store.runs_of(result.event_id) == []
    event = await harness.store.get_event(result.event_id)
    assert event is not None
    widened = harness.service.loader.load(harness.service.config.rules_path)
    widened[0].when.match.clear()  # the rule as it reads after an edit: any tag
    harness.engine.use(RuleIndex(widened))
    new_runs = await harness.engine.replay(event)
    [run] = await harness.store.runs_of(result.event_id)
    assert [run.run.id] == new_runs and run.run.rule == "deploy"


async def test_the_dry_run_explains_every_rule_without_storing(harness_for: Make):
    harness = await harness_for(RULES)
    report = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("1.5")))
    [item] = report["events"]
    verdicts = {v["rule"]: v for v in item["rules"]}
    assert verdicts["deploy"]["matched"] and verdicts["deploy"]["origin"].endswith(":3")
    call, log = verdicts["deploy"]["actions"]
    assert call["params"]["json"] == {"tag": "1.5"}
    assert log["params"]["message"] == "answered <output of step call.status>"
    assert verdicts["builds"] == {
        "rule": "builds",
        "origin": verdicts["builds"]["origin"],
        "matched": False,
        "reason": "domain 'docker' does not match 'build'",
    }
    assert await harness.store.list_events(EventQuery()) == []


async def test_an_earlier_steps_output_shows_as_a_placeholder_sliced_or_not(harness_for: Make):
    rules = RULES.replace(
        '"answered {{ steps.call.output.status }}"',
        '"{{ steps.call.output }} {{ steps.call.output.body.sha[7:19] }}"',
    )
    harness = await harness_for(rules)
    report = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("1.5")))
    log = report["events"][0]["rules"][0]["actions"][1]
    assert log["params"]["message"] == "<output of step call> <output of step call.body.sha[7:19]>"
