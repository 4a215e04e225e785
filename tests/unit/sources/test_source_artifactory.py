"""The Artifactory source: token and signed modes, every reference payload, the artifact view."""

from __future__ import annotations

import hashlib
import hmac
import json

import pytest

from hookwise.builtin.artifactory import ArtifactoryOptions, normalize, verify
from hookwise.errors import VerificationError
from hookwise.sources import Delivery
from tests.conftest import FIXTURES
from tests.served import Served

PAYLOADS = sorted((FIXTURES / "artifactory").glob("*.json"))
SIGNED = "  signed-af:\n    kind: artifactory\n    secret: sign-me\n    signed: true\n"
RULES = """\
rules:
  - name: team-images
    when:
      match: {artifact.image: "team/*", artifact.tag: "v*"}
    actions:
      - uses: log
        with: {message: "{{ artifact.image }}:{{ artifact.tag }} at {{ artifact.digest }}"}
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    instance = Served(tmp_path_factory.mktemp("artifactory"), RULES, extra=SIGNED).start()
    yield instance
    instance.stop()


def normalized(path) -> dict:
    [item] = normalize(Delivery({}, path.read_bytes()), ArtifactoryOptions(secret="x"))
    return {"domain": item.domain, "event_type": item.event_type, "artifacts": item.artifacts}


@pytest.mark.parametrize("path", PAYLOADS, ids=lambda p: p.name)
def test_every_payload_keeps_its_domain_and_type(path):
    payload = json.loads(path.read_bytes())
    result = normalized(path)
    assert result["domain"] == payload.get("domain", payload.get("destination"))
    assert result["event_type"] == payload["event_type"]


def test_docker_push_artifact_view():
    [artifact] = normalized(FIXTURES / "artifactory" / "docker.pushed.json")["artifacts"]
    assert artifact == {
        "registry": None,
        "repository": "docker-remote-cache",
        "path": "library/ubuntu/latest/list.manifest.json",
        "name": "list.manifest.json",
        "image": "library/ubuntu",
        "tag": "latest",
        "digest": "sha256:35c4a2c15539c6c1e4e5fa4e554dac323ad0107d8eb5c582d6ff386b383b7dce",
        "size": 1206,
        "url": None,
    }


def test_deployed_artifact_with_origin_has_a_url_and_registry():
    [artifact] = normalized(FIXTURES / "artifactory" / "test-button.artifact.deployed.json")[
        "artifacts"
    ]
    assert artifact["registry"] == "<your_origin>"
    assert artifact["url"] == "https://<your_origin>/sample_repo/sample_dir/sample.txt"
    assert artifact["image"] is None
    assert artifact["digest"] == "sha256:sample_checksum"


@pytest.mark.parametrize(
    "name", ["build.promoted.json", "release_bundle.created.json", "user.created.json"]
)
def test_events_without_a_file_have_no_artifact(name):
    assert normalized(FIXTURES / "artifactory" / name)["artifacts"] == []


def test_test_button_payload_is_accepted_and_in_history(server: Served):
    body = (FIXTURES / "artifactory" / "test-button.artifact.deployed.json").read_bytes()
    event_id = server.post(body).json()["event_id"]
    event = server.event(event_id)["event"]
    assert (event["domain"], event["event_type"]) == ("artifact", "deployed")
    assert event["artifact"]["repository"] == "sample_repo"
    listed = server.get("/api/events", params={"domain": "artifact"}).json()["events"]
    assert event_id in [e["id"] for e in listed]


def test_one_rule_matches_on_the_artifact_view(server: Served):
    push = {
        "domain": "docker",
        "event_type": "pushed",
        "data": {
            "repo_key": "docker-local",
            "path": "team/api/v2.1/manifest.json",
            "name": "manifest.json",
            "image_name": "team/api",
            "tag": "v2.1",
            "sha256": "abc123",
            "size": 10,
        },
    }
    event_id = server.post(json.dumps(push).encode()).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded"})
    assert run["log"][0]["message"] == "team/api:v2.1 at sha256:abc123"
    other = {**push, "data": {**push["data"], "image_name": "ops/api"}}
    other_id = server.post(json.dumps(other).encode()).json()["event_id"]
    assert server.event(other_id)["runs"] == []


def sign(body: bytes, secret: str = "sign-me") -> str:
    return hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()


def test_signed_mode_accepts_the_body_signature(server: Served):
    body = (FIXTURES / "artifactory" / "artifact.deployed.json").read_bytes()
    response = server.post(body, source="signed-af", headers={"X-JFrog-Event-Auth": sign(body)})
    assert response.status_code == 202
    assert server.event(response.json()["event_id"])["event"]["source"] == "signed-af"


@pytest.mark.parametrize(
    ("header", "reason"),
    [
        (lambda body: sign(body + b" "), "signature over a different body"),
        (lambda body: sign(body, "other-secret"), "wrong secret"),
        (lambda body: "sign-me", "the plain token where a signature is expected"),
    ],
)
def test_signed_mode_refuses_bad_signatures(server: Served, header, reason):
    body = json.dumps(
        {"domain": "artifact", "event_type": "deployed", "data": {"case": reason}}
    ).encode()
    response = server.post(body, source="signed-af", headers={"X-JFrog-Event-Auth": header(body)})
    assert response.status_code == 401, reason
    assert "HMAC-SHA256" in response.json()["error"]
    events = server.get("/api/events", params={"source": "signed-af", "limit": 1000}).json()
    assert all(e["data"].get("case") != reason for e in events["events"])


def test_verify_unit():
    options = ArtifactoryOptions(secret="s", signed=True)
    body = b'{"a": 1}'
    verify(Delivery({"x-jfrog-event-auth": sign(body, "s").upper()}, body), options)
    with pytest.raises(VerificationError, match="missing X-JFrog-Event-Auth"):
        verify(Delivery({}, body), options)


@pytest.mark.parametrize(
    "body",
    [
        b"[1, 2]",
        b'"just a string"',
        b"42",
        b"[" * 100_000 + b"]" * 100_000,
        b'{"domain": "a", "event_type": "b", "data": ' + b"[" * 500 + b"]" * 500 + b"}",
        b'{"domain": "a", "event_type": "b", "data": {"x": NaN}}',
        b'{"domain": "a", "event_type": "b", "data": {"x": 1e999}}',
        b'{"domain": "a", "event_type": "b", "data": {"x": ' + b"9" * 5000 + b"}}",
        b"\xff\xfe",
    ],
    ids=[
        "array",
        "string",
        "number",
        "nested-beyond-the-parser",
        "nested-500-levels",
        "nan",
        "infinity",
        "huge-integer",
        "not-utf8",
    ],
)
def test_bad_bodies_are_400_and_the_server_carries_on(server: Served, body: bytes):
    before = len(server.get("/api/events", params={"limit": 1000}).json()["events"])
    response = server.post(body)
    assert response.status_code in (400, 413)
    assert response.json()["reason"] in ("bad_payload", "too_large")
    assert len(server.get("/api/events", params={"limit": 1000}).json()["events"]) == before
    assert server.get("/healthz").json()["status"] == "ok"
