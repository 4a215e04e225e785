"""The `cloudevents` source against a real server: binary, structured and batch mode."""

from __future__ import annotations

import base64
import json
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli import invoke
from tests.conftest import FIXTURES, project
from tests.served import Served

TOKEN = "ce-test-token"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
STRUCTURED = "application/cloudevents+json; charset=utf-8"
BATCH = "application/cloudevents-batch+json"

EXTRA = """\
  ce:
    kind: cloudevents
    token: ${TEST_CE_TOKEN}
  ce-envelope:
    kind: cloudevents
    allow_unauthenticated: true
    type_prefix: com.example.
    type_pattern: '(?P<domain>[^.]+)\\.(?P<event_type>.+)'
    envelope: true
max_body_bytes: 262144
"""

RULES = """\
rules:
  - name: image-pushed
    when: {source: ce, domain: image, event_type: pushed}
    actions:
      - uses: log
        with: {message: "pushed {{ data.repository }}:{{ data.tag }}"}
"""

BINARY_HEADERS: dict[str, str] = json.loads(
    (FIXTURES / "cloudevents/binary.headers.json").read_text()
)
BINARY_DATA = (FIXTURES / "cloudevents/binary.data.json").read_bytes()
STRUCTURED_EVENT: dict[str, Any] = json.loads(
    (FIXTURES / "cloudevents/structured.json").read_text()
)
BATCH_EVENTS: list[dict[str, Any]] = json.loads((FIXTURES / "cloudevents/batch.json").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    instance = Served(tmp_path_factory.mktemp("cloudevents"), RULES, extra=EXTRA)
    instance.env["TEST_CE_TOKEN"] = TOKEN
    instance.start()
    yield instance
    instance.stop()


def fresh(event: dict[str, Any]) -> dict[str, Any]:
    """The event with a new id, so module-scoped tests never dedupe against each other."""
    return {**event, "id": str(uuid.uuid4())}


def binary_headers(**changes: str | None) -> dict[str, str]:
    headers = {**BINARY_HEADERS, "ce-id": str(uuid.uuid4()), **AUTH, **changes}
    headers["Content-Type"] = headers.pop("content-type")  # in place of conftest's default
    return {k: v for k, v in headers.items() if v is not None}


def stored(server: Served, source: str = "ce") -> list[dict[str, Any]]:
    return server.stored(source)


def refused(server: Served, body: bytes, headers: dict[str, str], source: str = "ce") -> dict:
    return server.refused(body, headers, source)


def test_binary_mode_event_is_normalized_and_runs_rules(server: Served):
    headers = binary_headers()
    response = server.post(BINARY_DATA, source="ce", headers=headers)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    event = server.event(event_id)["event"]
    assert (event["kind"], event["domain"], event["event_type"]) == (
        "cloudevents",
        "image",
        "pushed",
    )
    assert event["delivery_id"] == headers["ce-id"]
    assert event["data"] == json.loads(BINARY_DATA)
    assert event["headers"]["ce-subject"] == "web:1.4.2"
    assert "authorization" not in event["headers"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["log"][0]["message"] == "pushed web:1.4.2"


@pytest.mark.parametrize(
    ("content_type", "body", "data"),
    [
        ("text/plain; charset=utf-8", "héllo wörld".encode(), "héllo wörld"),
        ("text/plain; charset=ISO-8859-1", "héllo".encode("latin-1"), "héllo"),
        ("application/octet-stream", b"\xff\x00\xfe", base64.b64encode(b"\xff\x00\xfe").decode()),
        ("application/vnd.example+json", b'{"a": [1, 2]}', {"a": [1, 2]}),
        (None, b'{"no": "content-type"}', {"no": "content-type"}),
        (None, b"plain words", "plain words"),
        ("application/json", b"", None),
    ],
)
def test_binary_mode_data_is_decoded_by_content_type(server: Served, content_type, body, data):
    headers = binary_headers(**{"content-type": content_type or ""})
    response = server.post(body, source="ce", headers=headers)
    assert response.status_code == 202, response.text
    assert server.event(response.json()["event_id"])["event"]["data"] == data


def test_structured_mode_event_is_normalized(server: Served):
    event = fresh(STRUCTURED_EVENT)
    headers = {**AUTH, "Content-Type": STRUCTURED}
    response = server.post(json.dumps(event).encode(), source="ce", headers=headers)
    assert response.status_code == 202, response.text
    stored_event = server.event(response.json()["event_id"])["event"]
    assert (stored_event["domain"], stored_event["event_type"]) == ("pull_request", "opened")
    assert stored_event["delivery_id"] == event["id"]
    assert stored_event["data"] == STRUCTURED_EVENT["data"]


def test_batch_accepts_every_event_separately(server: Served):
    events = [fresh(e) for e in BATCH_EVENTS]
    body = json.dumps(events).encode()
    response = server.post(body, source="ce", headers={**AUTH, "Content-Type": BATCH})
    assert response.status_code == 202, response.text
    answers = response.json()["events"]
    assert len(answers) == len(events)
    assert not any(a["duplicate"] for a in answers)
    got = [server.event(a["event_id"])["event"] for a in answers]
    assert [(e["domain"], e["event_type"], e["delivery_id"]) for e in got] == [
        ("image", "pushed", events[0]["id"]),
        ("tag", "deleted", events[1]["id"]),
        ("scan", "completed", events[2]["id"]),
        ("alert", "raised", events[3]["id"]),
    ]
    assert got[0]["data"] == {"repository": "api", "tag": "2.0.0"}
    assert got[2]["data"] == {"repository": "api", "critical": 0}  # from data_base64
    assert got[3]["data"] == '<alert severity="warning">disk 91% full</alert>'


def test_batch_with_one_bad_event_stores_nothing(server: Served):
    events = [fresh(e) for e in BATCH_EVENTS]
    del events[2]["source"]
    answer = refused(server, json.dumps(events).encode(), {**AUTH, "Content-Type": BATCH})
    assert answer["status"] == 400
    assert answer["error"].startswith("batch event 2: CloudEvent is missing required attribute")
    assert "'source'" in answer["error"]


def test_same_id_and_source_is_a_duplicate(server: Served):
    event = fresh(STRUCTURED_EVENT)
    headers = {**AUTH, "Content-Type": STRUCTURED}
    first = server.post(json.dumps(event).encode(), source="ce", headers=headers).json()
    # A redelivery need not be byte-identical: the id and source identify the event.
    again = {**event, "time": "2030-01-01T00:00:00Z"}
    second = server.post(json.dumps(again).encode(), source="ce", headers=headers)
    assert second.json() == {"event_id": first["event_id"], "duplicate": True}
    other = {**event, "source": "https://github.com/other/repo"}
    third = server.post(json.dumps(other).encode(), source="ce", headers=headers).json()
    assert third["duplicate"] is False
    # The same event in binary mode is the same event too.
    binary = binary_headers(**{"ce-id": event["id"], "ce-source": event["source"]})
    fourth = server.post(BINARY_DATA, source="ce", headers=binary).json()
    assert fourth == {"event_id": first["event_id"], "duplicate": True}


def test_envelope_and_type_pattern(server: Served):
    event = fresh({**STRUCTURED_EVENT, "type": "com.example.image.tag.deleted"})
    body = json.dumps(event).encode()
    response = server.post(body, source="ce-envelope", headers={"Content-Type": STRUCTURED})
    assert response.status_code == 202, response.text
    stored_event = server.event(response.json()["event_id"])["event"]
    assert (stored_event["domain"], stored_event["event_type"]) == ("image", "tag.deleted")
    assert stored_event["data"] == event
    assert stored_event["data"]["subject"] == "123"

    headers = binary_headers(**{"ce-type": "com.example.image.pushed"})
    response = server.post(BINARY_DATA, source="ce-envelope", headers=headers)
    envelope = server.event(response.json()["event_id"])["event"]["data"]
    assert envelope["data"] == json.loads(BINARY_DATA)
    assert envelope["comexampleteam"] == "Platform Ops"  # percent-decoded
    assert envelope["datacontenttype"] == "application/json"


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": None}, "missing Authorization; send `Authorization: Bearer <token>`"),
        ({"Authorization": "Bearer wrong"}, "is not `Bearer <token>` with the configured token"),
        ({"Authorization": f"Basic {TOKEN}"}, "is not `Bearer <token>`"),
        ({"Authorization": TOKEN}, "is not `Bearer <token>`"),
    ],
)
def test_bad_token_is_401(server: Served, headers: dict[str, str | None], message: str):
    sent = binary_headers(**headers)
    answer = refused(server, BINARY_DATA, sent)
    assert (answer["status"], answer["reason"]) == (401, "unauthorized")
    assert message in answer["error"]


def test_token_scheme_is_case_insensitive(server: Served):
    response = server.post(
        BINARY_DATA, source="ce", headers=binary_headers(Authorization=f"bearer {TOKEN}")
    )
    assert response.status_code == 202


@pytest.mark.parametrize(
    ("mode", "change", "message"),
    [
        ("binary", {"ce-type": None}, "missing required attribute 'type' (the ce-type header"),
        ("binary", {"ce-id": ""}, "missing required attribute 'id'"),
        ("binary", {"ce-specversion": "0.3"}, "specversion '0.3' is not supported"),
        ("structured", {"source": None}, "missing required attribute 'source' (the 'source' m"),
        ("structured", {"specversion": None}, "missing required attribute 'specversion'"),
        ("structured", {"type": 7}, "missing required attribute 'type'"),
        ("structured", {"type": "com.example."}, "does not read as <domain>.<event_type>"),
        ("structured", {"data_base64": "!!"}, "either 'data' or 'data_base64'"),
    ],
)
def test_invalid_event_is_400_naming_the_problem(server: Served, mode, change, message):
    if mode == "binary":
        answer = refused(server, BINARY_DATA, binary_headers(**change))
    else:
        event = {k: v for k, v in {**fresh(STRUCTURED_EVENT), **change}.items() if v is not None}
        body = json.dumps(event).encode()
        answer = refused(server, body, {**AUTH, "Content-Type": STRUCTURED})
    assert (answer["status"], answer["reason"]) == (400, "bad_payload")
    assert message in answer["error"]


NESTED = b"[" * 100_000 + b"]" * 100_000


@pytest.mark.parametrize(
    ("content_type", "body", "message"),
    [
        ("application/json", b'{"a": 1}', "not a CloudEvent: send ce-specversion"),
        (STRUCTURED, b'{"specversion": "1.0",', "body is not valid JSON"),
        (STRUCTURED, b"[1, 2]", "a structured CloudEvent must be a JSON object"),
        (STRUCTURED, b'"event"', "a structured CloudEvent must be a JSON object"),
        (STRUCTURED, NESTED, "nested too deeply"),
        (BATCH, json.dumps(BATCH_EVENTS[0]).encode(), "batch must be a JSON array"),
        (BATCH, b"[1]", "batch event 0: a structured CloudEvent must be a JSON object"),
        ("application/cloudevents+avro", b"\x00", "not supported; send application/cloudeve"),
    ],
)
def test_unusable_body_is_400(server: Served, content_type: str, body: bytes, message: str):
    answer = refused(server, body, {**AUTH, "Content-Type": content_type})
    assert answer["status"] == 400
    assert message in answer["error"]


def test_binary_mode_bad_json_data_is_400(server: Served):
    answer = refused(server, b"{oops", binary_headers())
    assert answer["status"] == 400
    assert "body is not valid JSON" in answer["error"]
    answer = refused(server, NESTED, binary_headers())
    assert "nested too deeply" in answer["error"]


def test_huge_body_is_413(server: Served):
    body = json.dumps({**fresh(STRUCTURED_EVENT), "data": "x" * 300_000}).encode()
    answer = refused(server, body, {**AUTH, "Content-Type": STRUCTURED})
    assert (answer["status"], answer["reason"]) == (413, "too_large")


def test_unauthenticated_source_needs_no_token(server: Served):
    headers = {"Content-Type": STRUCTURED, "Authorization": ""}
    body = json.dumps(fresh(STRUCTURED_EVENT)).encode()
    response = server.http.post("/hooks/ce-envelope", content=body, headers=headers)
    assert response.status_code == 202


def test_dry_run_of_a_binary_mode_event(tmp_path: Path):
    project(tmp_path, RULES, extra=EXTRA)
    headers = [f"--header={name}:{value}" for name, value in {**BINARY_HEADERS, **AUTH}.items()]
    data = str(FIXTURES / "cloudevents/binary.data.json")
    args = ["test", "--source", "ce", data, *headers, "--json"]
    result = invoke(*args, cwd=tmp_path, env={"TEST_CE_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    [item] = json.loads(result.stdout)["events"]
    event = item["event"]
    assert (event["domain"], event["event_type"]) == ("image", "pushed")
    assert event["delivery_id"] == BINARY_HEADERS["ce-id"]
    assert event["data"] == json.loads(BINARY_DATA)
    assert item["rules"][0]["matched"] is True
    assert item["rules"][0]["actions"][0]["params"] == {"message": "pushed web:1.4.2"}
    result = invoke(*args, cwd=tmp_path, env={"TEST_CE_TOKEN": "other"})
    assert result.returncode == 1
    assert "refused (unauthorized)" in result.stderr


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("", "no token configured"),
        ("    token: ''\n", "token is empty"),
        ("    allow_unauthenticated: true\n    type_pattern: '(?P<domain>.+)'\n", "needs groups"),
        ("    allow_unauthenticated: true\n    tokn: x\n", "tokn"),
    ],
)
def test_bad_options_are_reported_by_check(tmp_path: Path, options: str, message: str):
    extra = f"  ce:\n    kind: cloudevents\n{options}"
    result = invoke("check", cwd=project(tmp_path, extra=extra))
    assert result.returncode == 1
    assert message in result.stderr
