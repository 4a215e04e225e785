"""The HTTP surface of a real `hookwise serve` process, over loopback."""

from __future__ import annotations

import json
import socket
from pathlib import Path

import httpx
import pytest

from tests.conftest import FIXTURES, SECRET, Hookwise, fixture_bytes, wait_until

LOG_RULES = """\
rules:
  - name: log-promotions
    when: {source: artifactory, domain: docker, event_type: promoted}
    actions:
      - uses: log
        with: {message: "{{ data.image_name }}:{{ data.tag }} promoted"}
  - name: log-release-bundles
    when: {source: artifactory, domain: release_bundle}
    actions:
      - uses: log
        with: {message: "bundle {{ data.release_bundle_name }} {{ event.event_type }}"}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    instance = Hookwise(
        tmp_path_factory.mktemp("server"), LOG_RULES, extra="max_body_bytes: 4096\n"
    )
    instance.start()
    yield instance
    instance.stop()


def test_accepts_promotion_and_runs_the_matching_rule(server: Hookwise):
    response = server.post(fixture_bytes("artifactory/docker.promoted.walkthrough.json"))
    assert response.status_code == 202
    answer = response.json()
    assert answer["duplicate"] is False
    runs = server.wait_for_runs(answer["event_id"], {"succeeded", "dead"})
    assert [(r["rule"], r["status"]) for r in runs] == [("log-promotions", "succeeded")]
    assert runs[0]["log"][0]["message"] == "helloworld:latest promoted"
    event = server.event(answer["event_id"])["event"]
    assert (event["source"], event["kind"], event["domain"], event["event_type"]) == (
        "artifactory",
        "artifactory",
        "docker",
        "promoted",
    )
    assert event["data"]["repo_key"] == "docker-local-staging"
    assert "x-jfrog-event-auth" not in event["headers"]
    assert event["headers"]["content-type"] == "application/json"


def test_release_bundle_destination_envelope_is_accepted(server: Hookwise):
    response = server.post(fixture_bytes("artifactory/release_bundle.signed.json"))
    assert response.status_code == 202
    event_id = response.json()["event_id"]
    runs = server.wait_for_runs(event_id, {"succeeded"})
    assert runs[0]["rule"] == "log-release-bundles"
    assert runs[0]["log"][0]["message"] == "bundle sample_name signed"
    assert server.event(event_id)["event"]["domain"] == "release_bundle"


@pytest.mark.parametrize("name", sorted(p.name for p in (FIXTURES / "artifactory").glob("*.json")))
def test_every_reference_payload_is_accepted_and_normalized(server: Hookwise, name: str):
    payload = json.loads((FIXTURES / "artifactory" / name).read_bytes())
    response = server.post(json.dumps({**payload, "fixture": name}).encode())
    assert response.status_code == 202, response.text
    event = server.event(response.json()["event_id"])["event"]
    assert event["domain"] == payload.get("domain", payload.get("destination"))
    assert event["event_type"] == payload["event_type"]
    assert event["data"] == payload["data"]


def test_redelivery_is_a_duplicate_and_runs_nothing_again(server: Hookwise):
    body = json.dumps(
        {"domain": "docker", "event_type": "promoted", "data": {"image_name": "dup", "tag": "1"}}
    ).encode()
    first = server.post(body).json()
    second = server.post(body)
    assert second.status_code == 202
    assert second.json() == {"event_id": first["event_id"], "duplicate": True}
    runs = server.wait_for_runs(first["event_id"], {"succeeded"})
    assert len(runs) == 1
    listed = server.get("/api/events", params={"domain": "docker", "limit": 1000}).json()
    assert [e["id"] for e in listed["events"]].count(first["event_id"]) == 1
    assert sum(1 for e in listed["events"] if e["data"].get("image_name") == "dup") == 1


def test_a_different_body_is_a_different_event(server: Hookwise):
    one = {"domain": "docker", "event_type": "promoted", "data": {"image_name": "a", "tag": "1"}}
    two = {**one, "data": {"image_name": "a", "tag": "2"}}
    first = server.post(json.dumps(one).encode()).json()
    second = server.post(json.dumps(two).encode()).json()
    assert second["duplicate"] is False
    assert second["event_id"] != first["event_id"]


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"X-JFrog-Event-Auth": "wrong"}, "does not match"),
        ({"X-JFrog-Event-Auth": SECRET + "x"}, "does not match"),
    ],
)
def test_bad_token_is_401(server: Hookwise, headers: dict[str, str], message: str):
    response = server.post(fixture_bytes("artifactory/artifact.deployed.json"), headers=headers)
    assert response.status_code == 401
    assert response.json()["reason"] == "unauthorized"
    assert message in response.json()["error"]


def test_missing_token_is_401_and_nothing_is_stored(server: Hookwise):
    body = json.dumps(
        {"domain": "docker", "event_type": "promoted", "data": {"image_name": "unauth"}}
    ).encode()
    response = httpx.post(f"{server.url}/hooks/artifactory", content=body)
    assert response.status_code == 401
    assert "missing X-JFrog-Event-Auth" in response.json()["error"]
    events = server.get("/api/events", params={"limit": 1000}).json()["events"]
    assert not [e for e in events if e["data"].get("image_name") == "unauth"]


def test_unparseable_body_is_400(server: Hookwise):
    response = server.post(b"{not json")
    assert response.status_code == 400
    assert response.json()["reason"] == "bad_payload"
    assert "not valid JSON" in response.json()["error"]


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        ({"event_type": "deployed", "data": {}}, "'domain' or 'destination'"),
        ({"domain": "artifact", "data": {}}, "'event_type'"),
        ({"domain": "artifact", "event_type": "deployed"}, "'data'"),
        ([1, 2], "JSON object"),
    ],
)
def test_unrecognisable_event_is_400_naming_what_is_missing(server: Hookwise, payload, missing):
    response = server.post(json.dumps(payload).encode())
    assert response.status_code == 400
    assert missing in response.json()["error"]


def test_unknown_source_is_404(server: Hookwise):
    response = server.post(b"{}", source="nexus")
    assert response.status_code == 404
    assert response.json() == {
        "error": "no source named 'nexus'; configured: artifactory",
        "reason": "unknown_source",
    }


def test_wrong_method_is_405_json(server: Hookwise):
    response = server.get("/hooks/artifactory")
    assert response.status_code == 405
    assert response.json()["reason"] == "method_not_allowed"


def test_unknown_path_is_404_json(server: Hookwise):
    response = server.get("/nothing-here")
    assert response.status_code == 404
    assert response.json()["reason"] == "not_found"


def test_declared_oversized_body_is_413_before_reading(server: Hookwise):
    # Declare 10 MB but send only the headers: a refusal that waited for the body would hang.
    host, port = server.url.removeprefix("http://").split(":")
    with socket.create_connection((host, int(port)), timeout=5) as conn:
        conn.sendall(
            b"POST /hooks/artifactory HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
            + f"X-JFrog-Event-Auth: {SECRET}\r\nContent-Length: 10485760\r\n\r\n".encode()
        )
        reply = ""
        while '"reason"' not in reply:
            chunk = conn.recv(65536)
            if not chunk:
                break
            reply += chunk.decode()
    assert reply.startswith("HTTP/1.1 413")
    assert '"reason":"too_large"' in reply


def test_streamed_oversized_body_is_413(server: Hookwise):
    def chunks():
        for _ in range(100):
            yield b"x" * 1024

    response = httpx.post(
        f"{server.url}/hooks/artifactory",
        content=chunks(),
        headers={"X-JFrog-Event-Auth": SECRET},
        timeout=10,
    )
    assert response.status_code == 413
    assert "4096 bytes" in response.json()["error"]


def test_api_lists_filters_and_shows(server: Hookwise):
    body = json.dumps(
        {"domain": "build", "event_type": "uploaded", "data": {"build_name": "listing"}}
    ).encode()
    event_id = server.post(body).json()["event_id"]
    builds = server.get("/api/events", params={"domain": "build", "limit": 1000}).json()["events"]
    assert event_id in [e["id"] for e in builds]
    assert all(e["domain"] == "build" for e in builds)
    mine = next(e for e in builds if e["id"] == event_id)
    assert mine["status"] == "unmatched"
    assert mine["runs"] == 0
    unmatched = server.get("/api/events", params={"status": "unmatched", "limit": 1000}).json()
    assert event_id in [e["id"] for e in unmatched["events"]]
    succeeded = server.get("/api/events", params={"status": "succeeded", "limit": 1000}).json()
    assert event_id not in [e["id"] for e in succeeded["events"]]
    assert len(server.get("/api/events", params={"limit": 2}).json()["events"]) == 2
    bad = server.get("/api/events", params={"status": "nope"})
    assert bad.status_code == 400
    assert server.get("/api/events/0000").status_code == 404


def test_replay_creates_new_runs_for_the_same_event(server: Hookwise):
    body = json.dumps(
        {"domain": "docker", "event_type": "promoted", "data": {"image_name": "re", "tag": "9"}}
    ).encode()
    event_id = server.post(body).json()["event_id"]
    server.wait_for_runs(event_id, {"succeeded"})
    replayed = httpx.post(f"{server.url}/api/events/{event_id}/replay", timeout=10)
    assert replayed.status_code == 202
    assert len(replayed.json()["runs"]) == 1
    runs = server.wait_for_runs(event_id, {"succeeded"})
    assert len(runs) == 2
    assert {r["rule"] for r in runs} == {"log-promotions"}
    assert httpx.post(f"{server.url}/api/events/nope/replay", timeout=10).status_code == 404


def test_healthz_and_metrics(server: Hookwise):
    health = server.get("/healthz").json()
    assert health == {"status": "ok", "rules": 2, "sources": ["artifactory"]}
    server.post(b"{not json")
    metrics = server.get("/metrics").text
    rejected = [
        line
        for line in metrics.splitlines()
        if line.startswith('hookwise_events_rejected_total{reason="bad_payload"')
    ]
    assert rejected and float(rejected[0].split()[-1]) >= 1
    assert "hookwise_queue_depth " in metrics
    assert 'hookwise_action_attempts_total{action="log",status="succeeded"}' in metrics
    assert "hookwise_action_duration_seconds_bucket" in metrics


def test_api_token_is_required_when_configured(hookwise_factory, tmp_path: Path):
    instance = hookwise_factory(LOG_RULES, extra="api_token: ${TEST_API_TOKEN}\n")
    instance.env["TEST_API_TOKEN"] = "let-me-in"
    instance.start()
    assert instance.get("/api/events").status_code == 401
    wrong = instance.get("/api/events", headers={"Authorization": "Bearer nope"})
    assert wrong.status_code == 401
    right = instance.get("/api/events", headers={"Authorization": "Bearer let-me-in"})
    assert right.status_code == 200
    assert right.json() == {"events": [], "next": None}
    # Webhooks use their source's own secret, not the API token.
    assert instance.post(fixture_bytes("artifactory/artifact.deployed.json")).status_code == 202


def test_events_wait_for_runs_helper_sees_pending(server: Hookwise):
    body = json.dumps({"domain": "docker", "event_type": "promoted", "data": {}}).encode()
    event_id = server.post(body).json()["event_id"]
    runs = wait_until(lambda: server.event(event_id)["runs"])
    assert runs[0]["rule"] == "log-promotions"
