"""What an unauthenticated or malformed request can do: a 4xx, nothing stored, no 5xx."""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from hookwise.builtin.cloudevents import decode_data
from hookwise.errors import PayloadError, VerificationError
from hookwise.slack.verify import verify_slack
from hookwise.sources import parse_json
from tests.asgi import App, sign_standard, slack_form, slack_headers
from tests.cli import invoke
from tests.conftest import SECRET, project

PUSHED = json.dumps({"type": "invoice.paid", "data": {"id": 1}}).encode()


@pytest.mark.anyio
@pytest.mark.parametrize("digits", [400, 5000])
async def test_a_huge_standard_webhooks_timestamp_is_a_401(asgi: App, digits: int):
    headers = sign_standard(PUSHED, stamp="9" * digits)
    response = await asgi.client.post("/hooks/standard", content=PUSHED, headers=headers)
    assert response.status_code == 401
    assert "webhook-timestamp must be unix seconds" in response.json()["error"]
    assert await asgi.events() == []


@pytest.mark.parametrize("stamp", ["nan", "NaN", "inf", "1e9", " 1700000000", "-1", "١٢٣"])
def test_a_slack_timestamp_must_be_whole_seconds(stamp: str):
    headers = {"x-slack-request-timestamp": stamp, "x-slack-signature": "v0=00"}
    with pytest.raises(VerificationError, match="not unix seconds"):
        verify_slack("secret", headers, b"")


@pytest.mark.anyio
async def test_a_signed_slack_request_with_timestamp_nan_is_refused(asgi: App):
    body = slack_form(command="/hookwise", text="status", user_id="U0OPERATOR")
    headers = slack_headers(body) | {"x-slack-request-timestamp": "nan"}
    response = await asgi.client.post("/slack/commands", content=body, headers=headers)
    assert response.status_code == 401


@pytest.mark.anyio
@pytest.mark.parametrize(
    "text",
    [
        '{"domain": "docker", "event_type": "pushed", "data": {"tag": "\\ud800"}}',
        '{"domain": "docker", "event_type": "pushed", "data": {"\\udfff": 1}}',
        '{"domain": "docker", "event_type": "pushed", "data": ["\\ud83d"]}',
    ],
)
async def test_a_lone_surrogate_is_refused_at_intake(asgi: App, text: str):
    body = text.encode()
    response = await asgi.client.post(
        "/hooks/artifactory", content=body, headers={"X-JFrog-Event-Auth": SECRET}
    )
    assert response.status_code == 400
    assert "lone UTF-16 surrogate" in response.json()["error"]
    assert await asgi.events() == []
    assert (await asgi.client.get("/api/events", headers=asgi.auth)).status_code == 200


@pytest.mark.anyio
async def test_a_surrogate_pair_is_text_and_is_kept(asgi: App):
    body = b'{"domain": "docker", "event_type": "pushed", "data": {"tag": "\\ud83d\\ude80"}}'
    response = await asgi.client.post(
        "/hooks/artifactory", content=body, headers={"X-JFrog-Event-Auth": SECRET}
    )
    assert response.status_code == 202
    event = await asgi.client.get(f"/api/events/{response.json()['event_id']}", headers=asgi.auth)
    assert event.json()["event"]["data"] == {"tag": "🚀"}


def test_parse_json_says_what_is_wrong_with_a_surrogate():
    with pytest.raises(PayloadError, match="lone UTF-16 surrogate"):
        parse_json(b'["\\ud800"]')
    assert parse_json(b'["\\\\ud800"]') == ["\\ud800"]  # an escaped backslash is just text


@pytest.mark.anyio
@pytest.mark.parametrize(
    "charset", ["undefined", "idna", "punycode", "no-such-charset", "rot13", "utf-7"]
)
async def test_a_binary_cloudevent_with_a_bad_charset_is_a_400(asgi: App, charset: str):
    headers = {
        "authorization": "Bearer ce-token-1",
        "ce-specversion": "1.0",
        "ce-id": "1",
        "ce-source": "/test",
        "ce-type": "com.example.image.pushed",
        "content-type": f"text/plain; charset={charset}",
    }
    body = b"+2AA-" if charset == "utf-7" else b"\xff" + b"a" * 70
    response = await asgi.client.post("/hooks/cloudevents", content=body, headers=headers)
    assert response.status_code == 400, response.text
    assert "is not supported" in response.json()["error"] or "not valid" in response.json()["error"]
    assert await asgi.events() == []


def test_decode_data_names_the_charset():
    with pytest.raises(PayloadError, match="charset 'no-such-charset' is not supported"):
        decode_data(b"x", "text/plain; charset=no-such-charset", "data")
    with pytest.raises(PayloadError, match="charset 'punycode' is not supported"):
        decode_data(b"9" * 100, "text/plain; charset=punycode", "data")
    with pytest.raises(PayloadError, match="data is not valid utf-16-le text"):
        decode_data(b"\x00\xd8", "text/plain; charset=utf-16-le", "data")
    assert decode_data("café".encode("latin-1"), "text/plain; charset=ISO-8859-1", "d") == "café"


@pytest.mark.anyio
@pytest.mark.parametrize(
    "payload",
    [
        {"type": "block_actions", "actions": 5, "user": {"id": "U0OPERATOR"}},
        {"type": "block_actions", "actions": [1], "user": {"id": "U0OPERATOR"}},
        {"type": "block_actions", "actions": [{"action_id": "hookwise_approve"}], "user": "x"},
        {"type": "block_actions", "actions": [{"action_id": 7}], "user": {"id": "U1"}},
        {"type": "block_actions", "actions": [], "user": {"id": ["U1"]}},
    ],
)
async def test_a_slack_interaction_of_the_wrong_shape_is_a_400(asgi: App, payload: dict):
    body = slack_form(payload=json.dumps(payload))
    response = await asgi.client.post(
        "/slack/interactions", content=body, headers=slack_headers(body)
    )
    assert response.status_code == 400
    assert "not a block_actions payload" in response.json()["error"]


@pytest.mark.anyio
@pytest.mark.parametrize("payload", ["[", '"\\ud800"', "1" * 5000, "[" * 100 + "]" * 100])
async def test_a_slack_interaction_that_is_not_json_is_a_400(asgi: App, payload: str):
    body = slack_form(payload=payload)
    response = await asgi.client.post(
        "/slack/interactions", content=body, headers=slack_headers(body)
    )
    assert response.status_code == 400


CREDENTIALS = [
    ("artifactory", "X-JFrog-Event-Auth", "bad", SECRET),
    ("harbor", "Authorization", "bad", "harbor-auth-1"),
    ("cloudevents", "Authorization", "Bearer bad", "Bearer ce-token-1"),
    ("shared", "X-Shared", "bad", "shared-token-1"),
    ("github", "X-Hub-Signature-256", "sha256=00", "sha256=00"),
]


@pytest.mark.anyio
@pytest.mark.parametrize(("source", "header", "bad", "good"), CREDENTIALS)
async def test_a_credential_sent_twice_is_refused_whatever_the_order(
    asgi: App, source: str, header: str, bad: str, good: str
):
    body = b'{"domain": "docker", "event_type": "pushed", "type": "a.b", "data": {}}'
    for first, second in ((bad, good), (good, bad), (good, good)):
        headers = [(header, first), (header.lower(), second), ("content-type", "application/json")]
        response = await asgi.client.post(f"/hooks/{source}", content=body, headers=headers)
        assert response.status_code == 401
        assert "was sent more than once" in response.json()["error"]
    assert await asgi.events() == []


@pytest.mark.anyio
async def test_a_standard_webhooks_signature_sent_twice_is_refused(asgi: App):
    signed = sign_standard(PUSHED)
    headers = [*signed.items(), ("webhook-signature", "v1,AAAA")]
    response = await asgi.client.post("/hooks/standard", content=PUSHED, headers=headers)
    assert response.status_code == 401
    assert await asgi.events() == []


@pytest.mark.anyio
@pytest.mark.parametrize("header", ["x-slack-signature", "x-slack-request-timestamp"])
async def test_a_slack_signature_header_sent_twice_is_refused(asgi: App, header: str):
    body = slack_form(command="/hookwise", text="help", user_id="U0OPERATOR")
    signed = slack_headers(body)
    headers = [*signed.items(), (header, signed[header])]
    response = await asgi.client.post("/slack/commands", content=body, headers=headers)
    assert response.status_code == 401
    assert "was sent more than once" in response.json()["error"]


BILLION_LAUGHS = """\
rules: &a [[x, x, x, x, x, x, x, x, x]]
b: &b [*a, *a, *a, *a, *a, *a, *a, *a, *a]
c: &c [*b, *b, *b, *b, *b, *b, *b, *b, *b]
d: &d [*c, *c, *c, *c, *c, *c, *c, *c, *c]
e: &e [*d, *d, *d, *d, *d, *d, *d, *d, *d]
f: &f [*e, *e, *e, *e, *e, *e, *e, *e, *e]
g: &g [*f, *f, *f, *f, *f, *f, *f, *f, *f]
h: &h [*g, *g, *g, *g, *g, *g, *g, *g, *g]
i: &i [*h, *h, *h, *h, *h, *h, *h, *h, *h]
"""


def test_check_refuses_a_billion_laughs_file_at_once(tmp_path: Path):
    started = time.monotonic()
    result = invoke("check", cwd=project(tmp_path, BILLION_LAUGHS))
    assert time.monotonic() - started < 10
    assert result.returncode == 1
    assert "rules/main.yaml:" in result.stderr
    assert (
        "YAML too large" in result.stderr and "aliases expand to far more values" in result.stderr
    )
    assert "Traceback" not in result.stderr


def test_check_refuses_a_5000_deep_list_with_its_position(tmp_path: Path):
    result = invoke("check", cwd=project(tmp_path, "rules: " + "[" * 5000 + "]" * 5000 + "\n"))
    assert result.returncode == 1
    assert "rules/main.yaml:1:" in result.stderr
    assert "nested more than 64 levels deep" in result.stderr
    assert "RecursionError" not in result.stderr and "Traceback" not in result.stderr


def test_an_ordinary_use_of_aliases_still_loads(tmp_path: Path):
    rule = (
        "  - name: r{n}\n    when: {{source: artifactory}}\n"
        "    actions: [{{uses: log, with: {{message: hi}}, retry: {retry}}}]\n"
    )
    first = rule.format(n=0, retry="&retry {attempts: 5, backoff: 2s}")
    text = "rules:\n" + first + "".join(rule.format(n=n, retry="*retry") for n in range(1, 300))
    result = invoke("check", cwd=project(tmp_path, text))
    assert result.returncode == 0, result.stderr
    assert "ok: 300 rules" in result.stdout


@pytest.mark.anyio
async def test_a_nul_in_what_identifies_an_event_is_a_400(asgi: App):
    event = {"specversion": "1.0", "id": "a\u0000b", "source": "/x", "type": "com.x.pushed"}
    response = await asgi.client.post(
        "/hooks/cloudevents",
        content=json.dumps(event).encode(),
        headers={
            "authorization": "Bearer ce-token-1",
            "content-type": "application/cloudevents+json",
        },
    )
    assert response.status_code == 400
    assert "contains a NUL character" in response.json()["error"]
    assert await asgi.events() == []


@pytest.mark.anyio
@pytest.mark.parametrize("content_type", [5, ["text/plain"], {"a": 1}])
async def test_a_datacontenttype_that_is_not_text_is_a_400(asgi: App, content_type: object):
    event = {"specversion": "1.0", "id": "1", "source": "s", "type": "a.b",
             "data_base64": "aGk=", "datacontenttype": content_type}  # fmt: skip
    response = await asgi.client.post(
        "/hooks/cloudevents",
        content=json.dumps(event).encode(),
        headers={
            "authorization": "Bearer ce-token-1",
            "content-type": "application/cloudevents+json",
        },
    )
    assert response.status_code == 400
    assert "'datacontenttype' must be a string" in response.json()["error"]
