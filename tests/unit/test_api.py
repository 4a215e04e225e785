"""`/api/*` through Starlette's TestClient: events listed and paged, one event, replay,
decisions and who is recorded for them, tokens and roles, and bodies that cannot be read.
Run listing, retries and bulk retry are in test_run_operations.py; the schema-driven
check of every operation is tests/e2e/test_openapi.py.
"""

from __future__ import annotations

import json
from collections.abc import Callable

import pytest

from tests.conftest import SECRET, Sink
from tests.served import Served
from tests.tokens import ACCESS, OPERATOR, VIEWER, bearer

RULES = """
rules:
  - name: deploy
    when: {source: artifactory, domain: docker}
    actions:
      - uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.tag }}"}}
  - name: gated
    when: {source: artifactory, domain: build}
    approval: {channel: C0DEPLOYS, approvers: [U0ALICE]}
    actions: [{uses: log, with: {message: go}}]
"""
# approvals need Slack configured; it is unreachable here, and runs wait all the same
SLACK = "integrations:\n  slack: {token: xoxb-1-api, base_url: 'http://127.0.0.1:9/api/'}\n"


def pushed(tag: str, name: str = "api") -> bytes:
    data = {"repo_key": "docker-local", "image_name": name, "tag": tag,
            "path": f"{name}/{tag}/manifest.json", "name": "manifest.json",
            "sha256": "a" * 64, "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()


def build(number: str) -> bytes:
    data = {"build_name": "web", "build_number": number, "build_started": "2026-12-05T08:00:00Z"}
    return json.dumps({"domain": "build", "event_type": "uploaded", "data": data}).encode()


@pytest.fixture
def api(served_factory: Callable[..., Served], sink: Sink) -> Served:
    served = served_factory(RULES.replace("SINK", sink.url), extra=ACCESS + SLACK).start()
    served.http.headers.update(bearer(VIEWER))
    return served


def test_events_are_listed_newest_first_filtered_and_paged(api: Served):
    ids = [api.post(pushed(f"1.{n}", name)).json()["event_id"] for n, name in
           enumerate(["api", "web", "api"])]  # fmt: skip
    first = api.get("/api/events", params={"limit": 2}).json()
    assert [e["id"] for e in first["events"]] == [ids[2], ids[1]]
    assert first["next"] == ids[1]
    rest = api.get("/api/events", params={"limit": 2, "before": first["next"]}).json()
    assert ([e["id"] for e in rest["events"]], rest["next"]) == ([ids[0]], None)
    found = api.get("/api/events", params={"text": "WEB"}).json()["events"]
    assert [e["id"] for e in found] == [ids[1]]
    assert found[0]["artifact"]["image"] == "web" and found[0]["runs"] == 1
    assert api.get("/api/events", params={"domain": "build"}).json()["events"] == []
    bad = api.get("/api/events", params={"status": "failed"})
    assert bad.status_code == 400
    assert bad.json()["error"].startswith("status: one of unmatched, active, succeeded, dead")


def test_one_event_and_an_unknown_one(api: Served):
    event_id = api.post(pushed("2.0")).json()["event_id"]
    [run] = api.wait_for_runs(event_id, {"succeeded"})
    shown = api.get(f"/api/events/{event_id}").json()
    assert shown["event"]["id"] == event_id and shown["runs"][0]["id"] == run["id"]
    assert shown["runs"][0]["history"][0]["status"] == "succeeded"
    missing = api.get("/api/events/01NOSUCHEVENT")
    assert missing.status_code == 404
    assert missing.json() == {"error": "no event 01NOSUCHEVENT", "reason": "not_found"}


def test_replay_needs_an_operator_and_adds_runs(api: Served, sink: Sink):
    event_id = api.post(pushed("3.0")).json()["event_id"]
    api.wait_for_runs(event_id, {"succeeded"})
    refused = api.http.post(f"/api/events/{event_id}/replay")
    assert (refused.status_code, refused.json()["reason"]) == (403, "forbidden")
    assert refused.json()["error"] == "victor is a viewer; this needs an operator's token"
    replayed = api.http.post(f"/api/events/{event_id}/replay", headers=bearer(OPERATOR))
    assert replayed.status_code == 202
    [new_run] = replayed.json()["runs"]
    runs = api.wait_for_runs(event_id, {"succeeded"})
    assert new_run in {run["id"] for run in runs} and len(runs) == 2
    assert [r.body for r in sink.received] == [{"tag": "3.0"}, {"tag": "3.0"}]


def test_a_named_token_is_who_decides_whatever_the_body_says(api: Served):
    event_id = api.post(build("7")).json()["event_id"]
    [run] = api.wait_for_runs(event_id, {"waiting_approval"})
    assert run["error"].startswith("approval: the request could not be posted to Slack")
    answer = api.http.post(
        f"/api/runs/{run['id']}/approve", json={"by": "mallory"}, headers=bearer(OPERATOR)
    )
    assert answer.status_code == 202
    assert answer.json()["message"] == f"approval of run {run['id']} by olivia recorded"
    [decided] = api.wait_for_runs(event_id, {"succeeded"})
    assert [(d["by"], d["via"]) for d in decided["decisions"]] == [("olivia", "api")]


@pytest.mark.parametrize(
    ("body", "error"),
    [
        (b"{not json", "the body is not JSON"),
        (b'{"reason": 5}', "reason: Input should be a valid string"),
        (b'{"colour": "red"}', "colour: Extra inputs are not permitted"),
        (b"[1, 2]", 'the body must be a JSON object, such as {"reason": "why"}'),
    ],
)
def test_a_body_that_cannot_be_read_is_refused_naming_the_field(
    api: Served, body: bytes, error: str
):
    event_id = api.post(build("8")).json()["event_id"]
    [run] = api.wait_for_runs(event_id, {"waiting_approval"})
    answer = api.http.post(f"/api/runs/{run['id']}/reject", content=body, headers=bearer(OPERATOR))
    assert answer.status_code == 400 and answer.json()["reason"] == "bad_request"
    assert answer.json()["error"].startswith(error), answer.json()
    assert api.get(f"/api/runs/{run['id']}").json()["run"]["status"] == "waiting_approval"


def test_tokens_shared_and_wrong(served_factory: Callable[..., Served], sink: Sink):
    shared = "shared-token-0123456789"
    api = served_factory(
        RULES.replace("SINK", sink.url), extra=f"api_token: {shared}\n" + SLACK
    ).start()
    assert api.http.get("/api/events").status_code == 401
    assert api.http.get("/api/events", headers=bearer("nope")).status_code == 401
    assert api.http.get("/api/events", headers={"Authorization": shared}).status_code == 401
    event_id = api.post(build("9")).json()["event_id"]
    api.http.headers.update(bearer(shared))
    [run] = api.wait_for_runs(event_id, {"waiting_approval"})
    nameless = api.http.post(f"/api/runs/{run['id']}/approve", json={})
    assert nameless.status_code == 400
    assert nameless.json()["error"].startswith('by: send JSON {"by": "your name"}')
    named = api.http.post(f"/api/runs/{run['id']}/approve", json={"by": "carol"})
    assert named.json()["message"] == f"approval of run {run['id']} by carol recorded"
    assert SECRET not in json.dumps(api.get(f"/api/events/{event_id}").json())
