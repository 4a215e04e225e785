"""`hookwise.engine`: the pipeline's order (verify, normalize, match, persist), dedupe keys,
the plan of runs with their flow keys, the runs a later event releases, replay, a rule-set
swap, and the dry run's report. In-process through the engine of a built service, over a
real SQLite store, with the harness's clock.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hookwise.engine import dedupe_key
from hookwise.errors import PayloadError, UnknownSource, VerificationError
from hookwise.event import Event, Incoming, new_id
from hookwise.matcher import RuleIndex
from hookwise.sources import Delivery
from hookwise.status import RunStatus
from hookwise.store import EventQuery, FlowKeys
from tests.conftest import SECRET
from tests.inprocess import START, Harness

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
CLOUDEVENTS = "  ce:\n    kind: cloudevents\n    allow_unauthenticated: true\n"
BATCH = {"content-type": "application/cloudevents-batch+json"}


def pushed(tag: str, image: str = "api") -> bytes:
    data = {"repo_key": "docker-local", "image_name": image, "tag": tag,
            "path": f"{image}/{tag}/manifest.json", "name": "manifest.json",
            "sha256": "a" * 64, "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()


def cloudevent(event_id: str, kind: str = "com.example.docker.pushed") -> dict[str, Any]:
    return {"specversion": "1.0", "id": event_id, "source": "/registry", "type": kind,
            "data": {"tag": event_id}}  # fmt: skip


def harbor_event(domain: str, event_type: str, data: dict[str, Any], digest: str) -> Event:
    """An event as a source would hand it over, for `plan` and `awaited` directly."""
    artifact = {"image": "library/app", "tag": "1.0", "digest": digest}
    return Event(
        new_id(), "harbor", "harbor", domain, event_type, None, START, data, {}, [artifact]
    )


def swap(harness: Harness, rules: str) -> RuleIndex:
    """What a reload does: load the edited rules and hand the new index to the engine."""
    path = harness.service.config.rules_path
    (path / "main.yaml").write_text(rules)
    index = RuleIndex(harness.service.loader.load(path))
    harness.engine.use(index)
    return index


async def stored_count(harness: Harness) -> int:
    return len(await harness.store.list_events(EventQuery(limit=1000)))


# -- receive: verify, normalize, match, persist ----------------------------------------------


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
    assert await stored_count(harness) == 0


async def test_an_unknown_source_is_named_with_the_configured_ones(harness_for: Make):
    """A typo in a webhook URL should say what the URL could have been."""
    harness = await harness_for(RULES)
    assert harness.engine.source("harbor").kind.kind == "harbor"
    with pytest.raises(UnknownSource) as raised:
        harness.engine.source("nexus")
    assert str(raised.value) == "no source named 'nexus'; configured: artifactory, harbor"


async def test_without_verify_an_unsigned_delivery_is_parsed(harness_for: Make):
    """`hookwise test` without the secret set: the dry run and rule cases skip the check."""
    harness = await harness_for(RULES)
    unsigned = Delivery({}, pushed("1.4"))
    with pytest.raises(VerificationError, match="missing X-JFrog-Event-Auth header"):
        harness.engine.dry_run("artifactory", unsigned)
    report = harness.engine.dry_run("artifactory", unsigned, verify=False)
    assert [v["matched"] for v in report["events"][0]["rules"]] == [True, False]
    [result] = await harness.engine.receive("artifactory", unsigned, verify=False)
    assert [r.run.rule for r in await harness.store.runs_of(result.event_id)] == ["deploy"]


async def test_normalize_stamps_the_clock_and_keeps_only_harmless_headers(harness_for: Make):
    harness = await harness_for(RULES)
    harness.advance(42)
    body = json.loads(pushed("1.0"))
    body["jpd_origin"] = "https://jfrog.example.com"
    headers = {**AUTH, "authorization": "Bearer t", "x-api-key": "k", "x-request-id": "r-1",
               "user-agent": "JFrog Event/7"}  # fmt: skip
    [(item, event)] = harness.engine.normalize(
        "artifactory", Delivery(headers, json.dumps(body).encode())
    )
    assert (event.source, event.kind, event.received_at) == (
        "artifactory",
        "artifactory",
        START + 42,
    )
    assert event.headers == {"x-request-id": "r-1", "user-agent": "JFrog Event/7"}
    assert event.meta["origin"] == "https://jfrog.example.com"
    assert event.data is item.data and event.artifacts == item.artifacts
    assert event.artifacts[0]["url"] == (
        "https://jfrog.example.com/docker-local/api/1.0/manifest.json"
    )


async def test_a_repeated_body_is_a_duplicate_of_the_first_and_plans_no_more_runs(
    harness_for: Make,
):
    harness = await harness_for(RULES)
    [first] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.1")))
    [again] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.1")))
    assert (again.event_id, again.duplicate) == (first.event_id, True)
    assert len(await harness.store.runs_of(first.event_id)) == 1
    assert await stored_count(harness) == 1


async def test_each_event_of_a_batch_is_matched_and_deduplicated_on_its_own(harness_for: Make):
    rules = """
rules:
  - name: on-push
    when: {source: ce, domain: docker, event_type: pushed}
    actions: [{uses: log, with: {message: "{{ data.tag }}"}}]
"""
    harness = await harness_for(rules, CLOUDEVENTS)
    batch = [cloudevent("e1"), cloudevent("e2", "com.example.docker.deleted"), cloudevent("e1")]
    results = await harness.engine.receive("ce", Delivery(BATCH, json.dumps(batch).encode()))
    first, second, repeat = results
    assert [r.duplicate for r in results] == [False, False, True]
    assert first.event_id != second.event_id and repeat.event_id == first.event_id
    [run] = await harness.store.runs_of(first.event_id)
    assert run.run.rule == "on-push"
    assert await harness.store.runs_of(second.event_id) == []  # deleted: no rule
    assert await stored_count(harness) == 2


async def test_a_nul_in_an_events_id_refuses_the_whole_batch_naming_the_field(
    harness_for: Make,
):
    """PostgreSQL cannot store a NUL in text: the sender's mistake, refused before storing."""
    harness = await harness_for("rules: []\n", CLOUDEVENTS)
    batch = [cloudevent("fine"), cloudevent("bad\x00id")]
    with pytest.raises(PayloadError) as raised:
        await harness.engine.receive("ce", Delivery(BATCH, json.dumps(batch).encode()))
    assert str(raised.value) == "the event's delivery_id contains a NUL character"
    assert await stored_count(harness) == 0


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
    assert key != dedupe_key("s", anonymous, b'{"a": 2}', 2)[0]
    assert key != dedupe_key("other", anonymous, body, 2)[0]  # keys are per source


async def test_a_source_body_window_of_zero_makes_no_body_a_repeat(harness_for: Make):
    harness = await harness_for(RULES, "    body_dedupe_window: 0\n")  # under artifactory
    [first] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.1")))
    [again] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.1")))
    assert again.duplicate is False and again.event_id != first.event_id


# -- plan and awaited: the runs an event starts, and the waiting runs it releases -------------

FLOW = """
rules:
  - name: batched
    when: {source: harbor, domain: artifact, if: "rule.name == 'batched'"}
    debounce: {key: "{{ rule.name }}/{{ artifact.image }}", window: 30s}
    throttle: {key: "{{ artifact.tag }}", once_per: 10m}
    concurrency: {key: "{{ data.team }}", limit: 2}
    actions: [{uses: log, with: {message: batched}}]
  - name: gated
    when: {source: harbor, domain: artifact, event_type: pushed}
    wait_for:
      when: {source: harbor, domain: scan}
      correlate: "{{ artifact.digest }}"
      timeout: 10m
    actions: [{uses: log, with: {message: "{{ awaited.data.scanner }}"}}]
  - name: paused-wait
    enabled: false
    when: {source: harbor}
    wait_for: {when: {source: harbor}, correlate: "{{ artifact.digest }}", timeout: 1m}
    actions: [{uses: log, with: {message: never}}]
"""


async def test_the_plan_renders_every_flow_key_with_the_rules_name_in_file_order(
    harness_for: Make,
):
    harness = await harness_for(FLOW)
    push = harbor_event("artifact", "pushed", {"team": "core"}, "sha256:aaa")
    batched, gated = harness.engine.plan(push)
    assert (batched.rule, gated.rule) == ("batched", "gated")  # `paused-wait` is disabled
    assert batched.keys == FlowKeys(
        debounce="batched/library/app", throttle="1.0", concurrency="core"
    )
    assert gated.keys == FlowKeys(wait="sha256:aaa")
    assert batched.status == gated.status == RunStatus.PENDING
    assert batched.spec["debounce"] == {"key": "{{ rule.name }}/{{ artifact.image }}",
                                        "window": 30.0}  # fmt: skip
    assert batched.id != gated.id


async def test_a_flow_key_that_cannot_render_plans_a_dead_run_saying_where(harness_for: Make):
    """The event is kept and the author learns why, instead of the event being lost."""
    harness = await harness_for(FLOW)
    push = harbor_event("artifact", "pushed", {}, "sha256:aaa")  # no data.team
    dead, gated = harness.engine.plan(push)
    assert (dead.rule, dead.status, dead.keys) == ("batched", RunStatus.DEAD, FlowKeys())
    assert dead.error is not None
    assert dead.error.startswith("rule batched, concurrency.key: template '{{ data.team }}'")
    assert "team" in dead.error.split("failed:", 1)[1]
    assert (gated.status, gated.keys.wait) == (RunStatus.PENDING, "sha256:aaa")


async def test_an_event_releases_the_waiting_runs_of_enabled_rules_it_matches(harness_for: Make):
    harness = await harness_for(FLOW)
    scan = harbor_event("scan", "completed", {"scanner": "Trivy"}, "sha256:aaa")
    assert harness.engine.awaited(scan) == [("gated", "sha256:aaa")]  # not `paused-wait`
    push = harbor_event("artifact", "pushed", {}, "sha256:aaa")
    assert harness.engine.awaited(push) == []


async def test_a_received_event_releases_the_run_waiting_for_its_key(harness_for: Make):
    harness = await harness_for(FLOW)
    push = await harness.emit("artifact", "pushed", {"team": "core"},
                              {"digest": "sha256:bbb"}, "harbor")  # fmt: skip
    harness.advance(5)
    await harness.emit("scan", "completed", {}, {"digest": "sha256:ccc"}, "harbor")
    scan = await harness.emit("scan", "completed", {}, {"digest": "sha256:bbb"}, "harbor")
    waiting = [r for r in await harness.store.runs_of(push) if r.run.rule == "gated"]
    assert [r.run.awaited_event_id for r in waiting] == [scan]  # not `other`, another digest


async def test_a_correlate_naming_the_rule_renders_the_same_on_both_sides(harness_for: Make):
    digest = 'correlate: "{{ artifact.digest }}"\n      timeout: 10m'
    rules = FLOW.replace(digest, digest.replace("{{ artifact", "{{ rule.name }}:{{ artifact"))
    harness = await harness_for(rules)
    push = harbor_event("artifact", "pushed", {"team": "core"}, "sha256:aaa")
    waiting = harness.engine.plan(push)[1]
    scan = harbor_event("scan", "completed", {}, "sha256:aaa")
    assert waiting.keys.wait == "gated:sha256:aaa"
    assert harness.engine.awaited(scan) == [("gated", waiting.keys.wait)]


# -- use (reload) and replay --------------------------------------------------------------


async def test_a_swapped_rule_set_applies_to_later_deliveries_only(harness_for: Make):
    """Runs keep the snapshot of the rule they matched; the next delivery sees the edit."""
    harness = await harness_for(RULES)
    before = harness.engine.rules
    [old] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.0")))
    edited = RULES.replace('"1.*"', '"2.*"').replace("message: build", "message: rebuilt")
    index = swap(harness, edited)
    assert harness.engine.rules is index and index is not before
    [old_match] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.1")))
    [new_match] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("2.0")))
    assert await harness.store.runs_of(old_match.event_id) == []
    [kept] = await harness.store.runs_of(old.event_id)
    [fresh] = await harness.store.runs_of(new_match.event_id)
    assert kept.run.rule == fresh.run.rule == "deploy"
    assert index.by_name["builds"].actions[0].with_ == {"message": "rebuilt"}


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


async def test_replay_adds_runs_beside_the_earlier_ones_and_nothing_when_none_match(
    harness_for: Make,
):
    """Replaying is deliberate, so it is not deduplicated against the event's runs."""
    harness = await harness_for(RULES)
    [result] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("1.3")))
    event = await harness.store.get_event(result.event_id)
    assert event is not None
    [original] = await harness.store.runs_of(result.event_id)
    again = await harness.engine.replay(event)
    runs = await harness.store.runs_of(result.event_id)
    assert sorted(r.run.id for r in runs) == sorted([original.run.id, *again])
    assert len(again) == 1 and again[0] != original.run.id
    swap(harness, "rules: []\n")
    assert await harness.engine.replay(event) == []
    assert len(await harness.store.runs_of(result.event_id)) == 2


# -- dry run and explain ---------------------------------------------------------------------


async def test_the_dry_run_explains_every_rule_without_storing(harness_for: Make):
    harness = await harness_for(RULES)
    report = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("1.5")))
    [item] = report["events"]
    assert item["event"]["artifact"]["tag"] == "1.5" and item["event"]["source"] == "artifactory"
    verdicts = {v["rule"]: v for v in item["rules"]}
    assert verdicts["deploy"]["matched"] and verdicts["deploy"]["origin"].endswith(":3")
    call, log = verdicts["deploy"]["actions"]
    assert (call["action"], call["uses"], log["action"], log["uses"]) == (
        "call", "http.post", "log#2", "log"
    )  # fmt: skip
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


EXPLAINED = """
rules:
  - name: by-tag
    when: {domain: docker, match: {data.tag: "1.*"}}
    actions: [{uses: log, with: {message: a}}]
  - name: by-missing
    when: {domain: docker, match: {data.team: core}}
    actions: [{uses: log, with: {message: b}}]
  - name: not-api
    when: {domain: docker, exclude: {data.image_name: api}}
    actions: [{uses: log, with: {message: c}}]
  - name: condition
    when: {domain: docker, if: "data.size > 10"}
    actions: [{uses: log, with: {message: d}}]
  - name: paused
    enabled: false
    when: {domain: docker}
    actions: [{uses: log, with: {message: e}}]
  - name: paused-miss
    enabled: false
    when: {domain: build}
    actions: [{uses: log, with: {message: f}}]
"""


async def test_each_miss_says_which_check_failed_and_disabled_rules_say_what_they_would_do(
    harness_for: Make,
):
    harness = await harness_for(EXPLAINED)
    [item] = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("2.0")))["events"]
    assert [(v["rule"], v["matched"], v["reason"]) for v in item["rules"]] == [
        ("by-tag", False, "match data.tag: '2.0' does not match '1.*'"),
        ("by-missing", False, "match data.team: the event has no data.team"),
        ("not-api", False, "exclude data.image_name: 'api' matches 'api'"),
        ("condition", False, "if 'data.size > 10' is false"),
        ("paused", False, "rule is disabled (enabled: false); enabled, it would match"),
        ("paused-miss", False, "rule is disabled (enabled: false); enabled, it would not: "
                               "domain 'docker' does not match 'build'"),
    ]  # fmt: skip
    assert [v["origin"].rsplit(":", 1)[1] for v in item["rules"]] == ["3", "6", "9", "12", "15",
                                                                      "19"]  # fmt: skip
    assert all("actions" not in v for v in item["rules"])  # only matches are previewed


async def test_the_preview_shows_secrets_as_references_never_their_values(
    harness_for: Make, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEPLOY_TOKEN", "s3cr3t-value")
    rules = RULES.replace(
        'json: {tag: "{{ data.tag }}"}',
        'json: {tag: "{{ data.tag }}"}, headers: {Authorization: "Bearer ${DEPLOY_TOKEN}"}',
    )
    harness = await harness_for(rules)
    report = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("1.5")))
    call = report["events"][0]["rules"][0]["actions"][0]
    assert call["params"]["headers"] == {"Authorization": "Bearer ${DEPLOY_TOKEN}"}
    assert "error" not in call
    assert "s3cr3t-value" not in json.dumps(report, default=str)


PREVIEW = """
rules:
  - name: noisy
    when: {domain: docker}
    actions:
      - {id: first, uses: log, with: {message: "{{ data.nope }}"}}
      - {id: second, uses: log, with: {message: ok, level: "{{ data.image_name }}"}}
      - {uses: log, with: {message: later, level: "{{ steps.first.output.level }}"}}
"""


async def test_a_failing_action_preview_names_rule_and_action_and_the_rest_still_show(
    harness_for: Make,
):
    harness = await harness_for(PREVIEW)
    report = harness.engine.dry_run("artifactory", Delivery(AUTH, pushed("1.5")))
    [rule] = report["events"][0]["rules"]
    first, second, third = rule["actions"]
    assert set(first) == {"action", "uses", "error"}
    assert first["error"].startswith(
        "rule noisy, first.message: template '{{ data.nope }}' failed: "
    )
    assert "nope" in first["error"]
    # Rendered but refused by the action's parameters: both are shown.
    assert second["params"] == {"message": "ok", "level": "api"}
    assert second["error"].startswith("parameters invalid after rendering: level: ")
    # A value only an earlier action's output decides is not an error before it runs.
    assert "error" not in third
    assert str(third["params"]["level"]) == "<output of step first.level>"


async def test_explain_of_a_stored_event_uses_the_current_rules(harness_for: Make):
    """What `hookwise events explain` shows: the verdicts an edit would give a past event."""
    harness = await harness_for(RULES)
    [result] = await harness.engine.receive("artifactory", Delivery(AUTH, pushed("2.0")))
    event = await harness.store.get_event(result.event_id)
    assert event is not None
    assert [v["matched"] for v in harness.engine.explain(event)] == [False, False]
    swap(harness, RULES.replace('"1.*"', '"2.*"'))
    deploy, _ = harness.engine.explain(event)
    assert (deploy["rule"], deploy["matched"], deploy["reason"]) == ("deploy", True, "matched")
    assert deploy["actions"][0]["params"]["json"] == {"tag": "2.0"}
