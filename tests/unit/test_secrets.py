"""Secrets never reach a log, the history or an event, in any form they come back in."""

from __future__ import annotations

import base64
import html
import json
import logging
from pathlib import Path
from urllib.parse import quote, quote_plus

import httpx
import pytest

from hookwise import logs
from hookwise.errors import VerificationError
from hookwise.secrets import Secrets, excerpt, known
from hookwise.service import build_service
from hookwise.sources import Delivery
from tests.conftest import SECRET, Sink, project

# Characters every encoding treats differently: a space, a quote, a slash, non-ASCII.
TOKEN = 'tok en"/é€-4f9a'


def forms(secret: str) -> list[str]:
    """The ways a secret comes back from clients and downstreams."""
    return [
        secret,
        quote(secret, safe=""),
        quote(secret, safe="/"),  # what httpx leaves unencoded in a query
        quote_plus(secret),
        quote(quote(secret, safe=""), safe=""),  # a URL inside a URL
        json.dumps(secret)[1:-1],
        json.dumps(secret, ensure_ascii=False)[1:-1],
        json.dumps(quote(secret, safe="/"))[1:-1],
        json.dumps(json.dumps(secret)[1:-1])[1:-1],  # JSON inside JSON
        quote(json.dumps(secret, ensure_ascii=False)[1:-1], safe=""),  # JSON, then a URL
        html.escape(secret),  # an HTML error page
        "".join(f"&#{ord(c)};" for c in secret),
        "".join(f"&#x{ord(c):x};" for c in secret),
    ]


def leaked(text: str, secret: str = TOKEN) -> list[str]:
    """Every form of the secret in `text`, and any six-character start of one."""
    found = [form for form in forms(secret) if form in text]
    found += [form[:6] for form in forms(secret) if form[:6] in text]
    return found


@pytest.mark.parametrize("form", forms(TOKEN))
def test_every_encoded_form_is_masked(form: str):
    secrets = Secrets([TOKEN])
    assert secrets.mask(f"answered 500: {{'echo': '{form}'}} done") == (
        "answered 500: {'echo': '***'} done"
    )


def test_basic_auth_is_masked_whatever_the_user_name():
    secrets = Secrets(["hunter2-password"])
    for user in ("bot", "ci", "a-much-longer-user-name"):
        header = "Basic " + base64.b64encode(f"{user}:hunter2-password".encode()).decode()
        assert secrets.mask(f"sent Authorization: {header}, got 401") == (
            "sent Authorization: Basic ***, got 401"
        )
    assert secrets.mask("Basic " + base64.b64encode(b"bot:other").decode()).startswith("Basic Ym")


def test_basic_auth_in_latin_1_and_wrapped_base64_are_masked():
    secrets = Secrets(["pässwort-123"])
    latin = base64.b64encode("bot:pässwort-123".encode("latin-1")).decode()
    assert secrets.mask(f"Authorization: Basic {latin}") == "Authorization: Basic ***"
    blob = base64.encodebytes(b"x" * 100 + "pässwort-123".encode() + b"y" * 100).decode()
    assert "\n" in blob.strip()  # wrapped at 76 columns, as MIME and PEM write it
    assert secrets.mask(f"body: {blob}") == "body: ***\n"


def test_dict_keys_are_masked_too():
    secrets = Secrets(["deploy-token-99"])
    echoed = {"form": {'{"token": "deploy-token-99"}': ""}, "n": 1}
    assert secrets.redact(echoed) == {"form": {'{"token": "***"}': ""}, "n": 1}


def test_a_secret_cut_before_an_ellipsis_in_the_middle_of_a_text_is_masked():
    secrets = Secrets(["xoxb-2222222222-3333333333-AbCdEf"])
    cut = "sent Authorization: Bearer xoxb-2222222222-3333… (and more)"
    assert secrets.mask(cut) == "sent Authorization: Bearer ***… (and more)"


def test_masking_happens_before_cutting():
    known.add([TOKEN])
    text = "x" * 290 + quote(TOKEN, safe="/") + " and more"
    cut = excerpt(text, 300)
    assert len(cut) <= 300
    assert leaked(cut) == []
    assert "***" in cut


def test_a_secret_cut_off_by_a_plugin_is_masked_at_the_end():
    secrets = Secrets(["s3cr3t-value-123"])
    assert secrets.mask("answered 500: s3cr3t-val") == "answered 500: ***"
    assert secrets.mask("answered 500: s3cr3t-val…") == "answered 500: ***…"
    assert secrets.mask("answered 500: nothing secret") == "answered 500: nothing secret"


def test_short_values_are_not_masked_everywhere():
    # A one-letter "secret" would mask that letter in every line; a run still masks its
    # own short ${VAR} values (test_execution's numeric secret).
    secrets = Secrets(["t", "42"])
    assert secrets.mask("the test at 42") == "the test at 42"
    assert secrets.mask("chat 42 at 4242", also=["42"]) == "chat *** at ******"


def test_third_party_loggers_are_masked_and_quiet(capsys: pytest.CaptureFixture[str]):
    known.add(["lib-logged-secret"])
    logs.configure(logging.INFO)
    try:
        logging.getLogger("urllib3.connectionpool").warning(
            "Retrying after error for /x?api_key=lib-logged-secret"
        )
        logging.getLogger("httpx").info("HTTP Request: POST http://h/?api_key=lib-logged-secret")
        try:
            raise RuntimeError("failed with token lib%2Dlogged%2Dsecret")
        except RuntimeError:
            logging.getLogger("slack_sdk").exception("Failed to send a request")
    finally:
        logging.getLogger().handlers.clear()
    err = capsys.readouterr().err
    assert "Retrying after error for /x?api_key=***" in err
    assert "HTTP Request" not in err  # httpx's INFO lines are dropped
    assert "failed with token ***" in err
    assert "lib-logged-secret" not in err and "lib%2Dlogged" not in err


def test_the_config_registers_every_secret(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    monkeypatch.setenv("JIRA_PASS", "jira-pass-4711")
    monkeypatch.chdir(tmp_path)
    extra = """\
api_token: api-token-0815
integrations:
  jira: {url: "https://jira.example.com", username: bot, password: "${JIRA_PASS}"}
"""
    build_service(project(tmp_path, extra=extra) / "hookwise.yaml")
    for value in (SECRET, "jira-pass-4711", "api-token-0815"):
        assert value in known, value


def test_a_generic_source_never_keeps_its_credential_header(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    extra = """\
  shared:
    kind: generic
    header: X-Shared
    scheme: ""
    token: shared-token-42
"""
    engine = build_service(project(tmp_path, extra=extra) / "hookwise.yaml").engine
    delivery = Delivery(
        {"x-shared": "shared-token-42", "x-request-id": "r-1", "content-type": "application/json"},
        b'{"type": "deploy.finished"}',
    )
    [(_, event)] = engine.normalize("shared", delivery)
    assert event.headers == {"x-request-id": "r-1", "content-type": "application/json"}


@pytest.mark.parametrize(
    "names",
    [
        ("X-JFrog-Event-Auth", "x-jfrog-event-auth"),
        ("x-hub-signature-256", "X-Hub-Signature-256"),
    ],
)
def test_a_credential_header_sent_twice_is_refused(names: tuple[str, str]):
    raw = [(names[0].encode(), b"bad"), (b"x-other", b"1"), (names[1].encode(), b"good")]
    with pytest.raises(VerificationError, match="sent more than once"):
        Delivery.from_raw(raw, b"{}", [names[0]])
    # Headers that are not credentials may repeat; the last one counts, as before.
    delivery = Delivery.from_raw([(b"x-other", b"1"), (b"X-Other", b"2")], b"{}", [names[0]])
    assert delivery.headers == {"x-other": "2"}


def test_httpx_request_lines_do_not_reach_the_log(capsys: pytest.CaptureFixture[str], sink: Sink):
    known.add(["query-secret-99"])
    logs.configure(logging.INFO)
    try:
        httpx.get(f"{sink.url}/?api_key=query-secret-99")
    finally:
        logging.getLogger().handlers.clear()
    assert "query-secret" not in capsys.readouterr().err
