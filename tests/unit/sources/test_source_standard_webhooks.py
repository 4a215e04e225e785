"""The `standard-webhooks` source against a real server: signatures, timestamps, payloads."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
import time
import uuid
from pathlib import Path
from typing import Any

import pytest

from tests.cli import invoke
from tests.conftest import FIXTURES, project
from tests.served import Served

KEY = b"hookwise test key: 24 bytes+"
SECRET = "whsec_" + base64.b64encode(KEY).decode()
RAW_SECRET = "a raw secret, no prefix"

EXTRA = """\
  sw:
    kind: standard-webhooks
    secret: ${TEST_SW_SECRET}
  sw-raw:
    kind: standard-webhooks
    secret: ${TEST_SW_RAW_SECRET}
    tolerance: 1m
  sw-spec:
    kind: standard-webhooks
    secret: whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw
    tolerance: 36500d
max_body_bytes: 262144
"""

RULES = """\
rules:
  - name: invoice-paid
    when: {source: sw, domain: invoice, event_type: paid}
    actions:
      - uses: log
        with: {message: "paid {{ data.amount }} {{ data.currency }}"}
"""

INVOICE = (FIXTURES / "standard_webhooks/invoice.paid.json").read_bytes()
PING = (FIXTURES / "standard_webhooks/ping.json").read_bytes()
VECTOR: dict[str, str] = json.loads((FIXTURES / "standard_webhooks/spec-vector.json").read_text())


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    instance = Served(tmp_path_factory.mktemp("standard-webhooks"), RULES, extra=EXTRA)
    instance.env["TEST_SW_SECRET"] = SECRET
    instance.env["TEST_SW_RAW_SECRET"] = RAW_SECRET
    instance.start()
    yield instance
    instance.stop()


def signature(key: bytes, msg_id: str, stamp: str, body: bytes) -> str:
    digest = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return "v1," + base64.b64encode(digest).decode()


def signed(
    body: bytes, key: bytes = KEY, msg_id: str | None = None, at: float | None = None
) -> dict[str, str]:
    """The headers a Standard Webhooks sender adds, signed over `body`."""
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    stamp = str(int(time.time() if at is None else at))
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": signature(key, msg_id, stamp, body),
    }


def stored(server: Served, source: str = "sw") -> list[dict[str, Any]]:
    return server.stored(source)


def refused(server: Served, body: bytes, headers: dict[str, str], source: str = "sw") -> dict:
    return server.refused(body, headers, source)


def test_signed_event_is_normalized_and_runs_rules(server: Served):
    headers = signed(INVOICE)
    response = server.post(INVOICE, source="sw", headers=headers)
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    event = server.event(event_id)["event"]
    assert (event["kind"], event["domain"], event["event_type"]) == (
        "standard-webhooks",
        "invoice",
        "paid",
    )
    assert event["delivery_id"] == headers["webhook-id"]
    assert event["data"] == json.loads(INVOICE)["data"]
    assert "webhook-signature" not in event["headers"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["log"][0]["message"] == "paid 4200 eur"


def test_payload_without_data_is_the_data_and_a_one_word_type_is_both(server: Served):
    response = server.post(PING, source="sw", headers=signed(PING))
    assert response.status_code == 202, response.text
    event = server.event(response.json()["event_id"])["event"]
    assert (event["domain"], event["event_type"]) == ("ping", "ping")
    assert event["data"] == json.loads(PING)


def test_any_one_of_several_signatures_is_enough(server: Served):
    headers = signed(INVOICE)
    old = signature(b"the previous key", headers["webhook-id"], headers["webhook-timestamp"], b"")
    headers["webhook-signature"] = f"{old} v1a,c2lnbmVk {headers['webhook-signature']}"
    assert server.post(INVOICE, source="sw", headers=headers).status_code == 202


def test_raw_secret_without_prefix_is_the_key(server: Served):
    response = server.post(INVOICE, source="sw-raw", headers=signed(INVOICE, RAW_SECRET.encode()))
    assert response.status_code == 202, response.text


def test_reference_signature_verifies(server: Served):
    headers = {name: VECTOR[name] for name in ("webhook-id", "webhook-timestamp")}
    headers["webhook-signature"] = VECTOR["webhook-signature"]
    body = VECTOR["body"].encode()
    # Signature accepted: refused only because the body follows no payload convention.
    answer = refused(server, body, headers, source="sw-spec")
    assert (answer["status"], answer["error"]) == (
        400,
        "event is missing 'type' (a non-empty string)",
    )
    answer = refused(server, body.replace(b"2", b"3"), headers, source="sw-spec")
    assert answer["status"] == 401


def test_redelivery_with_the_same_webhook_id_is_a_duplicate(server: Served):
    msg_id = f"msg_{uuid.uuid4().hex}"
    first = server.post(INVOICE, source="sw", headers=signed(INVOICE, msg_id=msg_id)).json()
    # Retries are signed afresh, with a new timestamp.
    retry = signed(INVOICE, msg_id=msg_id, at=time.time() + 30)
    second = server.post(INVOICE, source="sw", headers=retry)
    assert second.json() == {"event_id": first["event_id"], "duplicate": True}
    third = server.post(INVOICE, source="sw", headers=signed(INVOICE)).json()
    assert third["duplicate"] is False


def _without(name: str) -> dict[str, str]:
    headers = signed(INVOICE)
    del headers[name]
    return headers


def _with(**changes: str) -> dict[str, str]:
    return {**signed(INVOICE), **{k.replace("_", "-"): v for k, v in changes.items()}}


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        (lambda: {}, "missing webhook-id, webhook-timestamp, webhook-signature"),
        (lambda: _without("webhook-signature"), "missing webhook-signature: Standard Webhooks"),
        (lambda: signed(INVOICE, b"wrong key"), "no v1 signature in webhook-signature matches"),
        (lambda: signed(b'{"type": "invoice.paid", "data": {}}'), "no v1 signature"),
        (lambda: _with(webhook_id="msg_other"), "no v1 signature"),
        (lambda: _with(webhook_signature="v1a,c2lnbmVk"), "has no `v1,<base64>` signature"),
        (lambda: _with(webhook_timestamp="soon"), "must be unix seconds, got 'soon'"),
        (lambda: _with(webhook_timestamp="1e9"), "must be unix seconds"),
        (lambda: signed(INVOICE, at=time.time() - 600), "s old, beyond the 300s tolerance"),
        (lambda: signed(INVOICE, at=time.time() + 3600), "s in the future, beyond the 300s"),
    ],
)
def test_bad_signature_or_timestamp_is_401(server: Served, headers, message: str):
    answer = refused(server, INVOICE, headers())
    assert (answer["status"], answer["reason"]) == (401, "unauthorized")
    assert message in answer["error"]


def test_stale_delivery_says_by_how_much(server: Served):
    answer = refused(server, INVOICE, signed(INVOICE, at=time.time() - 3600))
    assert re.match(r"webhook-timestamp is 360\ds old", answer["error"])
    answer = refused(server, INVOICE, signed(INVOICE, at=time.time() - 120), source="sw-raw")
    assert "beyond the 60s tolerance" in answer["error"]


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b'{"type": "invoice.paid",', "body is not valid JSON"),
        (b'[{"type": "invoice.paid"}]', "payload must be a JSON object"),
        (b"42", "payload must be a JSON object"),
        (b'{"data": {}}', "event is missing 'type'"),
        (b'{"type": "invoice."}', "does not read as <domain>.<event_type>"),
        (b"[" * 100_000 + b"]" * 100_000, "nested too deeply"),
        (b'{"type": "a.b", "n": ' + b"1" * 5000 + b"}", "not valid JSON"),
    ],
)
def test_signed_but_unusable_body_is_400(server: Served, body: bytes, message: str):
    answer = refused(server, body, signed(body))
    assert (answer["status"], answer["reason"]) == (400, "bad_payload")
    assert message in answer["error"]


def test_huge_body_is_413(server: Served):
    body = json.dumps({"type": "invoice.paid", "data": "x" * 300_000}).encode()
    answer = refused(server, body, signed(body))
    assert (answer["status"], answer["reason"]) == (413, "too_large")


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ("", "no secret configured"),
        ("    secret: whsec_not*base64\n", "not valid base64"),
        ("    secret: whsec_\n", "empty key"),
        ("    allow_unauthenticated: true\n    tolerance: soon\n", "expected a duration"),
    ],
)
def test_bad_options_are_reported_by_check(tmp_path: Path, options: str, message: str):
    extra = f"  sw:\n    kind: standard-webhooks\n{options}"
    result = invoke("check", cwd=project(tmp_path, extra=extra))
    assert result.returncode == 1
    assert message in result.stderr


def test_svix_header_names_and_an_unpadded_secret_signed_by_the_reference_library(
    served_factory: Any,
):
    """What Svix sends by default: `svix-*` headers, signed with a `whsec_` secret whose
    base64 has no `=` padding; the reference library signs it, hookwise must accept it."""
    from datetime import UTC, datetime

    from standardwebhooks import Webhook

    unpadded = "whsec_" + base64.b64encode(b"twenty-two bytes of key").decode().rstrip("=")
    assert not unpadded.endswith("=") and len(unpadded.removeprefix("whsec_")) % 4
    served = served_factory(RULES, extra=EXTRA)
    served.env.update(TEST_SW_SECRET=unpadded, TEST_SW_RAW_SECRET=RAW_SECRET)
    served.start()
    now = datetime.now(tz=UTC)
    signature = Webhook(unpadded).sign("msg_svix_1", now, INVOICE.decode())
    headers = {"svix-id": "msg_svix_1", "svix-timestamp": str(int(now.timestamp())),
               "svix-signature": signature}  # fmt: skip
    accepted = served.post(INVOICE, source="sw", headers=headers)
    assert accepted.status_code == 202, accepted.text
    [stored] = served.stored("sw")
    assert (stored["delivery_id"], stored["domain"], stored["event_type"]) == (
        "msg_svix_1", "invoice", "paid",
    )  # fmt: skip
    forged = {**headers, "svix-id": "msg_svix_2"}
    refused = served.post(INVOICE, source="sw", headers=forged)
    assert refused.status_code == 401
    assert "no v1 signature in svix-signature matches" in refused.json()["error"]
