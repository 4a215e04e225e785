"""The `generic` source against a real server: GitHub-style HMAC, home-grown senders, tokens."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid
from pathlib import Path

import pytest

from tests.cli import invoke
from tests.conftest import FIXTURES, project
from tests.served import Served

GITHUB_SECRET = "github webhook secret"
INHOUSE_SECRET = "in-house signing secret"
TOKEN = "generic-token"

EXTRA = """\
  github:
    kind: generic
    domain: {value: github}
    event_type: {header: X-GitHub-Event}
    delivery_id: {header: X-GitHub-Delivery}
    hmac:
      header: X-Hub-Signature-256
      secret: ${TEST_GITHUB_SECRET}
      prefix: "sha256="
  inhouse:
    kind: generic
    domain: {path: kind}
    event_type: {path: action}
    delivery_id: {path: id}
    data: payload
    hmac:
      header: X-Signature
      secret: ${TEST_INHOUSE_SECRET}
      algorithm: sha512
      encoding: base64
  tokened:
    kind: generic
    token: ${TEST_GENERIC_TOKEN}
    header: X-Gitlab-Token
    scheme: ""
max_body_bytes: 262144
"""

RULES = """\
rules:
  - name: github-push
    when: {source: github, event_type: push}
    actions:
      - uses: log
        with: {message: "{{ data.repository.full_name }} {{ data.ref }} by {{ data.pusher.name }}"}
"""

PUSH = (FIXTURES / "generic/github.push.json").read_bytes()
DEPLOY = (FIXTURES / "generic/deploy.finished.json").read_bytes()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    instance = Served(tmp_path_factory.mktemp("generic"), RULES, extra=EXTRA)
    instance.env.update(
        TEST_GITHUB_SECRET=GITHUB_SECRET,
        TEST_INHOUSE_SECRET=INHOUSE_SECRET,
        TEST_GENERIC_TOKEN=TOKEN,
    )
    instance.start()
    yield instance
    instance.stop()


def github(body: bytes, event: str = "push", secret: str = GITHUB_SECRET, **extra: str) -> dict:
    """The headers GitHub sends with a delivery."""
    digest = hmac.new(secret.encode(), body, hashlib.sha256).hexdigest()
    return {
        "X-GitHub-Event": event,
        "X-GitHub-Delivery": str(uuid.uuid4()),
        "X-Hub-Signature-256": f"sha256={digest}",
        "User-Agent": "GitHub-Hookshot/7a9b2c1",
        **extra,
    }


def inhouse(body: bytes, secret: str = INHOUSE_SECRET) -> dict[str, str]:
    digest = hmac.new(secret.encode(), body, hashlib.sha512).digest()
    return {"X-Signature": base64.b64encode(digest).decode()}


def test_github_push_is_normalized_and_runs_rules(server: Served):
    headers = github(PUSH)
    response = server.post(PUSH, source="github", headers=headers)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    event = server.event(event_id)["event"]
    assert (event["kind"], event["domain"], event["event_type"]) == ("generic", "github", "push")
    assert event["delivery_id"] == headers["X-GitHub-Delivery"]
    assert event["data"] == json.loads(PUSH)
    assert event["headers"]["x-github-event"] == "push"
    assert "x-hub-signature-256" not in event["headers"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["log"][0]["message"] == "octo-org/web refs/heads/main by mona"


def test_github_redelivery_is_a_duplicate(server: Served):
    headers = github(PUSH)
    first = server.post(PUSH, source="github", headers=headers).json()
    second = server.post(PUSH, source="github", headers=headers).json()
    assert second == {"event_id": first["event_id"], "duplicate": True}
    third = server.post(PUSH, source="github", headers=github(PUSH)).json()
    assert third["duplicate"] is False


def test_signature_hex_is_case_insensitive(server: Served):
    headers = github(PUSH)
    headers["X-Hub-Signature-256"] = headers["X-Hub-Signature-256"].upper()
    assert server.post(PUSH, source="github", headers=headers).status_code == 202


def test_home_grown_sender_with_paths_and_base64_sha512(server: Served):
    payload = {**json.loads(DEPLOY), "id": int(uuid.uuid4().int % 10**9)}
    body = json.dumps(payload).encode()
    response = server.post(body, source="inhouse", headers=inhouse(body))
    assert response.status_code == 202, response.text
    event = server.event(response.json()["event_id"])["event"]
    assert (event["domain"], event["event_type"]) == ("deploy", "finished")
    assert event["delivery_id"] == str(payload["id"])
    assert event["data"] == payload["payload"]
    again = server.post(body, source="inhouse", headers=inhouse(body)).json()
    assert again["duplicate"] is True


@pytest.mark.parametrize(
    ("payload", "domain", "event_type"),
    [
        ({"type": "build.finished", "n": 1}, "generic", "build.finished"),
        ({"n": 2}, "generic", "unknown"),
        ({"type": 3}, "generic", "3"),
    ],
)
def test_defaults_and_bare_token(server: Served, payload, domain: str, event_type: str):
    body = json.dumps({**payload, "nonce": str(uuid.uuid4())}).encode()
    response = server.post(body, source="tokened", headers={"X-Gitlab-Token": TOKEN})
    assert response.status_code == 202, response.text
    event = server.event(response.json()["event_id"])["event"]
    assert (event["domain"], event["event_type"]) == (domain, event_type)
    assert event["delivery_id"] is None
    assert event["data"] == json.loads(body)


@pytest.mark.parametrize(
    ("source", "headers", "message"),
    [
        ("github", lambda: github(PUSH, secret="wrong"), "is not the hex HMAC-SHA256 of this body"),
        ("github", lambda: github(PUSH.replace(b"main", b"prod")), "is not the hex HMAC-SHA256"),
        ("github", lambda: {"X-GitHub-Event": "push"}, "missing X-Hub-Signature-256 header"),
        (
            "github",
            lambda: {**github(PUSH), "X-Hub-Signature-256": "sha1=" + "0" * 40},
            "X-Hub-Signature-256 should start with 'sha256='",
        ),
        ("inhouse", lambda: inhouse(PUSH, "wrong"), "X-Signature is not the base64 HMAC-SHA512"),
        ("tokened", lambda: {}, "missing X-Gitlab-Token; send `X-Gitlab-Token: <token>`"),
        ("tokened", lambda: {"X-Gitlab-Token": "nope"}, "X-Gitlab-Token is not `<token>`"),
        ("tokened", lambda: {"X-Gitlab-Token": f"Bearer {TOKEN}"}, "is not `<token>`"),
    ],
)
def test_bad_credentials_are_401(server: Served, source: str, headers, message: str):
    body = PUSH if source != "inhouse" else DEPLOY
    answer = server.refused(body, headers(), source)
    assert (answer["status"], answer["reason"]) == (401, "unauthorized")
    assert message in answer["error"]


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("body", "extra", "message"),
    [
        (b'{"ref": ', {}, "body is not valid JSON"),
        (b"[1, 2, 3]", {}, "a generic event must be a JSON object"),
        (b'"push"', {}, "a generic event must be a JSON object"),
        (NESTED, {}, "nested too deeply"),
        (b'{"n": ' + b"9" * 5000 + b"}", {}, "not valid JSON"),
        (PUSH, {"X-GitHub-Event": ""}, "event_type: the delivery has no header X-GitHub-Event"),
        (PUSH, {"X-GitHub-Delivery": ""}, "delivery_id: the delivery has no header X-GitHub-Del"),
    ],
)
def test_signed_but_unusable_github_body_is_400(server: Served, body: bytes, extra, message):
    headers = github(body, **extra)
    answer = server.refused(body, {k: v for k, v in headers.items() if v}, "github")
    assert (answer["status"], answer["reason"]) == (400, "bad_payload")
    assert message in answer["error"]


@pytest.mark.parametrize(
    ("payload", "message"),
    [
        ({"action": "finished", "id": 1, "payload": {}}, "domain: the delivery has no body field"),
        ({"kind": {"a": 1}, "action": "x", "id": 1, "payload": {}}, "domain: body field 'kind'"),
        ({"kind": "deploy", "action": "x", "id": 1}, "the body has no 'payload'"),
    ],
)
def test_missing_configured_paths_are_400(server: Served, payload, message: str):
    body = json.dumps(payload).encode()
    answer = server.refused(body, inhouse(body), "inhouse")
    assert answer["status"] == 400
    assert message in answer["error"]


def test_huge_body_is_413(server: Served):
    body = json.dumps({"padding": "x" * 300_000}).encode()
    answer = server.refused(body, github(body), "github")
    assert (answer["status"], answer["reason"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("", "no credentials configured"),
        ("    hmac: {header: X-Sig, secret: ''}\n", "hmac.secret is empty"),
        ("    hmac: {secret: s}\n", "header"),
        ("    hmac: {header: X-Sig, secret: s, algorithm: md5}\n", "algorithm"),
        ("    token: t\n    domain: {path: a, value: b}\n", "exactly one of"),
        ("    token: t\n    event_type: {}\n", "exactly one of"),
    ],
)
def test_bad_options_are_reported_by_check(tmp_path: Path, options: str, message: str):
    extra = f"  gen:\n    kind: generic\n{options}"
    result = invoke("check", cwd=project(tmp_path, extra=extra))
    assert result.returncode == 1
    assert message in result.stderr
