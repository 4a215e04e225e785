"""The Jira plugin: the real `jira` library against a local stand-in of the REST API v2."""

from __future__ import annotations

import base64
import hashlib
import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hookwise.actions import ActionContext, ActionSpec
from hookwise.egress import EgressPolicy
from hookwise.errors import EgressDenied, PermanentFailure, RetryLater
from hookwise.event import Event
from hookwise.plugins import load_registry
from tests.conftest import Hookwise, fixture_bytes, project, run_cli
from tests.standins.jira import JiraStandin

USER, PASSWORD = "hookwise-bot", "s3cret-pw"
TOKEN = "pat-0123456789"
EMAIL, API_TOKEN = "bot@example.com", "cloud-api-token"
BASIC = {"username": USER, "password": PASSWORD}
BEARER = {"token": TOKEN}
CLOUD = {"email": EMAIL, "api_token": API_TOKEN}
SECRETS = (PASSWORD, TOKEN, API_TOKEN)
DIGEST = "sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84"
KEY_A, KEY_B = "a" * 32, "b" * 32


@pytest.fixture(scope="module")
def specs() -> dict[str, ActionSpec]:
    """The actions exactly as hookwise registers them, from the installed entry point."""
    registry = load_registry()
    assert registry.integrations["jira"].settings.__name__ == "JiraSettings"
    return {name: spec for name, spec in registry.actions.items() if name.startswith("jira.")}


@pytest.fixture
def jira() -> Iterator[JiraStandin]:
    server = JiraStandin(username=USER, password=PASSWORD, token=TOKEN)
    yield server
    server.close()


def settings(specs: dict[str, ActionSpec], jira: JiraStandin, **values: Any) -> Any:
    model = load_registry().integrations["jira"].settings
    merged = {"url": jira.url, **BASIC, "default_project": "OPS", "timeout": "2s"}
    if any(k in values for k in ("token", "email")):
        merged = {k: v for k, v in merged.items() if k not in BASIC}
    return model.model_validate({**merged, **values})


def context(
    settings: Any, key: str = KEY_A, attempt: int = 1, allow: tuple[str, ...] = ("127.0.0.1",)
) -> ActionContext:
    event = Event("01JEVENT", "harbor", "harbor", "scan", "failed", None, 0.0, {"type": "x"}, {})
    ctx = ActionContext(event, "scan-failed-to-jira", "ticket", attempt, key, EgressPolicy(allow))
    ctx.settings = settings
    return ctx


def run(specs: dict[str, ActionSpec], name: str, params: dict[str, Any], ctx: ActionContext) -> Any:
    spec = specs[name]
    return spec.run(spec.params.model_validate(params), ctx)


def routes(jira: JiraStandin) -> list[str]:
    return [f"{r.method} {r.path.removeprefix('/rest/api/2')}" for r in jira.requests]


def no_secrets(text: str) -> None:
    for secret in SECRETS:
        assert secret not in text


# -- settings ------------------------------------------------------------------------


@pytest.mark.parametrize("auth", [BASIC, BEARER, CLOUD])
def test_settings_accept_each_auth_style(specs, jira, auth):
    assert settings(specs, jira, **auth).url == jira.url


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"url": "https://jira.example.com"}, "no credentials: give username \\+ password"),
        ({**BASIC, **BEARER}, "give one way to authenticate, not username \\+ password and token"),
        ({"username": USER}, "username needs password"),
        ({"api_token": API_TOKEN}, "api_token needs email"),
        ({"token": " "}, "token is empty"),
        (
            {**BEARER, "url": "ftp://jira.example.com"},
            "url must be an http:// or https:// URL with a host",
        ),
        ({**BEARER, "url": "https://"}, "url must be an http:// or https:// URL with a host"),
        ({**BEARER, "url": "https://u:p@jira.example.com"}, "must not contain credentials"),
        ({**BEARER, "timeout": 0}, "greater than 0"),
    ],
)
def test_settings_refuse(specs, values, message):
    model = load_registry().integrations["jira"].settings
    with pytest.raises(ValidationError, match=message):
        model.model_validate({"url": "https://jira.example.com/", **values})


def test_settings_strip_trailing_slash(specs):
    model = load_registry().integrations["jira"].settings
    assert model.model_validate({"url": "https://j.example.com/jira/", **BEARER}).url == (
        "https://j.example.com/jira"
    )


# -- jira.issue ---------------------------------------------------------------------


def test_issue_created_with_every_field(specs, jira):
    params = {
        "project": "OPS",
        "issue_type": "Task",
        "summary": "Scan failed for harbor/alpine",
        "description": "Scanner *Trivy* reported an error.",
        "labels": ["harbor", "scan"],
        "components": ["registry"],
        "priority": "High",
        "assignee": "alice",
        "fields": {"customfield_10010": {"value": "prod"}, "labels": ["extra"]},
    }
    output = run(specs, "jira.issue", params, context(settings(specs, jira)))

    assert output == {
        "key": "OPS-1",
        "url": f"{jira.url}/browse/OPS-1",
        "created": True,
        "commented": False,
        "comment_id": None,
    }
    assert routes(jira) == ["GET /field", "GET /search", "POST /issue"]
    search = jira.calls("GET", "/search")[0]
    assert search.query["jql"] == f'project = "OPS" AND labels = "hookwise-run-{KEY_A}" ' + (
        "ORDER BY created DESC"
    )
    assert jira.calls("POST", "/issue")[0].body == {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Task"},
            "summary": "Scan failed for harbor/alpine",
            "description": "Scanner *Trivy* reported an error.",
            "components": [{"name": "registry"}],
            "priority": {"name": "High"},
            "assignee": {"name": "alice"},
            "customfield_10010": {"value": "prod"},
            "labels": ["harbor", "scan", "extra", f"hookwise-run-{KEY_A}"],
        }
    }
    expected = "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()
    assert {r.headers["authorization"] for r in jira.requests} == {expected}


def test_issue_links_back_to_the_run_when_the_console_has_a_public_url(specs, jira):
    ctx = context(settings(specs, jira))
    ctx.run_url = "https://hookwise.example.com/ui/runs/01JRUN"
    run(specs, "jira.issue", {"summary": "s", "description": "Scan failed."}, ctx)
    assert jira.calls("POST", "/issue")[0].body["fields"]["description"] == (
        "Scan failed.\n\n----\nFiled by [hookwise run|https://hookwise.example.com/ui/runs/01JRUN]."
    )


def test_issue_on_cloud_uses_enhanced_search_and_account_ids(specs, jira):
    ctx = context(settings(specs, jira, **CLOUD))
    output = run(specs, "jira.issue", {"summary": "s", "assignee": "5b10ac8d82e05b22cc7d4ef5"}, ctx)
    assert output["key"] == "OPS-1"
    assert routes(jira) == ["GET /field", "GET /search/jql", "POST /issue"]
    assert jira.calls("POST", "/issue")[0].body["fields"]["assignee"] == {
        "accountId": "5b10ac8d82e05b22cc7d4ef5"
    }
    assert jira.requests[0].headers["authorization"].startswith("Basic ")


def test_issue_with_personal_access_token_sends_bearer(specs, jira):
    run(specs, "jira.issue", {"summary": "s"}, context(settings(specs, jira, **BEARER)))
    assert {r.headers["authorization"] for r in jira.requests} == {f"Bearer {TOKEN}"}


def test_issue_dedupe_comments_on_the_open_issue(specs, jira):
    params = {
        "summary": "Scan failed for harbor/alpine",
        "description": "scanner error",
        "dedupe_key": f"harbor-scan-{DIGEST}",
    }
    first = run(specs, "jira.issue", params, context(settings(specs, jira), KEY_A))
    second = run(specs, "jira.issue", params, context(settings(specs, jira), KEY_B))

    label = f"harbor-scan-{DIGEST}"
    assert first["created"] and not first["commented"]
    assert second == {
        "key": "OPS-1",
        "url": f"{jira.url}/browse/OPS-1",
        "created": False,
        "commented": True,
        "comment_id": jira.comments["OPS-1"][0]["id"],
    }
    assert list(jira.issues) == ["OPS-1"]
    assert jira.issues["OPS-1"]["fields"]["labels"] == [label, f"hookwise-run-{KEY_A}"]
    assert jira.calls("GET", "/search")[1].query["jql"] == (
        f'project = "OPS" AND (labels = "hookwise-run-{KEY_B}" OR (labels = "{label}" '
        "AND statusCategory != Done)) ORDER BY created DESC"
    )
    [comment] = jira.comments["OPS-1"]
    assert comment["body"] == (
        "Happened again: Scan failed for harbor/alpine\n\nscanner error\n\n----\n"
        "_hookwise rule scan-failed-to-jira, event 01JEVENT (harbor scan.failed), "
        f"ref {KEY_B}_"
    )
    assert routes(jira)[-2:] == ["GET /search", "POST /issue/OPS-1/comment"]


def test_issue_dedupe_custom_repeat_comment(specs, jira):
    params = {"summary": "s", "dedupe_key": "k", "repeat_comment": "Seen again at {{ x }}"}
    run(specs, "jira.issue", params, context(settings(specs, jira), KEY_A))
    run(specs, "jira.issue", params, context(settings(specs, jira), KEY_B))
    assert jira.comments["OPS-1"][0]["body"].startswith("Seen again at {{ x }}\n\n----\n")


def test_issue_dedupe_opens_a_new_issue_when_the_old_one_is_done(specs, jira):
    params = {"summary": "s", "dedupe_key": "same"}
    run(specs, "jira.issue", params, context(settings(specs, jira), KEY_A))
    jira.issues["OPS-1"]["status"] = "Done"
    output = run(specs, "jira.issue", params, context(settings(specs, jira), KEY_B))
    assert output["key"] == "OPS-2" and output["created"]
    assert jira.comments["OPS-1"] == []


def test_issue_retry_after_timeout_does_not_create_twice(specs, jira):
    jira.slow("POST", "/issue", 3.0)  # Jira creates it, but answers after our 1s timeout
    s = settings(specs, jira, timeout="1s")
    with pytest.raises(RetryLater, match=r"no answer from http://127\.0\.0\.1:\d+ within 1s"):
        run(specs, "jira.issue", {"summary": "s"}, context(s, KEY_A, attempt=1))
    output = run(specs, "jira.issue", {"summary": "s"}, context(s, KEY_A, attempt=2))
    assert output["key"] == "OPS-1" and output["created"] is True
    assert list(jira.issues) == ["OPS-1"]
    assert len(jira.calls("POST", "/issue")) == 1


def test_issue_retry_after_timeout_does_not_comment_twice(specs, jira):
    existing = jira.add_issue(labels=["same"])
    jira.slow("POST", r"/issue/[^/]+/comment", 3.0)
    s = settings(specs, jira, timeout="1s")
    params = {"summary": "s", "dedupe_key": "same"}
    with pytest.raises(RetryLater, match="no answer"):
        run(specs, "jira.issue", params, context(s, KEY_B, attempt=1))
    output = run(specs, "jira.issue", params, context(s, KEY_B, attempt=2))
    assert output["commented"] and output["comment_id"] == jira.comments[existing][0]["id"]
    assert len(jira.comments[existing]) == 1
    assert len(jira.calls("POST", r"/issue/[^/]+/comment")) == 1


@pytest.mark.parametrize(
    ("key", "label"),
    [
        (f"harbor-scan-{DIGEST}", f"harbor-scan-{DIGEST}"),
        ("Scan FAILED: harbor/alpine 3.8", "scan-failed:-harbor-alpine-3.8"),
        ("  --weird  key--  ", "weird-key"),
        ("x" * 101, "hookwise-" + hashlib.sha1(b"x" * 101).hexdigest()[:16]),
        ("???", "hookwise-" + hashlib.sha1(b"???").hexdigest()[:16]),
    ],
)
def test_dedupe_label(key, label):
    from hookwise_jira import dedupe_label

    assert dedupe_label(key) == label


def test_issue_summary_is_cut_to_jira_limit(specs, jira):
    ctx = context(settings(specs, jira))
    run(specs, "jira.issue", {"summary": "x" * 300}, ctx)
    summary = jira.calls("POST", "/issue")[0].body["fields"]["summary"]
    assert len(summary) == 255 and summary.endswith("…")
    assert "summary cut from 300 to 255" in ctx.log.lines[0]["message"]


def test_issue_validation_error_is_permanent_with_jiras_text(specs, jira):
    with pytest.raises(PermanentFailure) as caught:
        run(
            specs,
            "jira.issue",
            {"summary": "s", "issue_type": "Epic"},
            context(settings(specs, jira)),
        )
    assert str(caught.value) == (
        "creating a Epic in OPS: Jira refused the request (400): "
        "issuetype: valid issue type is required"
    )


def test_issue_unknown_project_is_permanent(specs, jira):
    with pytest.raises(PermanentFailure, match="The value 'NOPE' does not exist for the field"):
        run(
            specs, "jira.issue", {"summary": "s", "project": "NOPE"}, context(settings(specs, jira))
        )
    assert jira.calls("POST") == []


def test_issue_without_any_project_is_permanent(specs, jira):
    s = settings(specs, jira, default_project=None)
    with pytest.raises(
        PermanentFailure, match=r"set `project` or integrations\.jira default_project"
    ):
        run(specs, "jira.issue", {"summary": "s"}, context(s))
    assert jira.requests == []


def test_answer_that_is_not_json_is_permanent(specs, jira):
    jira.fail("GET", "/search", 200, b"<html><body>Log in to continue</body></html>")
    with pytest.raises(PermanentFailure, match="not JSON; is url the Jira base URL"):
        run(specs, "jira.issue", {"summary": "s"}, context(settings(specs, jira)))


def test_wrong_base_url_is_permanent(specs, jira):
    s = settings(specs, jira, url=f"{jira.url}/jira")
    with pytest.raises(PermanentFailure, match=r"not found \(404\).*the url"):
        run(specs, "jira.comment", {"key": "OPS-1", "body": "b"}, context(s))
    assert jira.misses == ["POST /jira/rest/api/2/issue/OPS-1/comment"]


def test_issue_params_refuse_labels_with_spaces_and_blank_dedupe_key(specs):
    with pytest.raises(ValidationError, match="cannot be empty or contain spaces"):
        specs["jira.issue"].params.model_validate({"summary": "s", "labels": ["a b"]})
    with pytest.raises(ValidationError, match="dedupe_key rendered empty"):
        specs["jira.issue"].params.model_validate({"summary": "s", "dedupe_key": " "})


# -- failures, for every action --------------------------------------------------------

ACTIONS = {
    "jira.issue": ({"summary": "s"}, "POST", "/issue"),
    "jira.comment": ({"key": "OPS-1", "body": "hello"}, "POST", r"/issue/OPS-1/comment"),
    "jira.transition": (
        {"key": "OPS-1", "transition": "done"},
        "POST",
        r"/issue/OPS-1/transitions",
    ),
}


@pytest.mark.parametrize("name", list(ACTIONS))
@pytest.mark.parametrize("auth", [BASIC, BEARER, CLOUD])
def test_wrong_credentials_are_permanent_and_name_the_account(specs, jira, name, auth):
    jira.add_issue()
    wrong = {k: (v + "-wrong" if v in SECRETS else v) for k, v in auth.items()}
    with pytest.raises(PermanentFailure) as caught:
        run(specs, name, ACTIONS[name][0], context(settings(specs, jira, **wrong)))
    message = str(caught.value)
    assert "(401): You are not authenticated" in message
    assert "Check the credentials" in message
    account = {"username": f"user '{USER}'", "token": "personal access token", "email": EMAIL}
    assert next(v for k, v in account.items() if k in auth) in message
    no_secrets(message)
    assert len(jira.requests) == 1  # no retries inside the library


@pytest.mark.parametrize("name", list(ACTIONS))
def test_forbidden_is_permanent(specs, jira, name):
    jira.add_issue()
    params, method, path = ACTIONS[name]
    jira.fail(method, path, 403, {"errorMessages": ["You do not have permission."], "errors": {}})
    with pytest.raises(PermanentFailure) as caught:
        run(specs, name, params, context(settings(specs, jira)))
    assert f"user '{USER}'" in str(caught.value)
    assert "is not allowed to do this (403): You do not have permission." in str(caught.value)
    assert len(jira.calls(method, path)) == 1


@pytest.mark.parametrize("name", ["jira.comment", "jira.transition"])
def test_unknown_issue_is_permanent(specs, jira, name):
    params = {**ACTIONS[name][0], "key": "OPS-99"}
    with pytest.raises(PermanentFailure) as caught:
        run(specs, name, params, context(settings(specs, jira)))
    assert "not found (404): Issue Does Not Exist" in str(caught.value)
    assert "OPS-99" in str(caught.value)


@pytest.mark.parametrize("name", list(ACTIONS))
def test_rate_limit_retries_after_retry_after(specs, jira, name):
    jira.add_issue()
    params, method, path = ACTIONS[name]
    body = {"errorMessages": ["Rate limit exceeded."], "errors": {}}
    jira.fail(method, path, 429, body, {"Retry-After": "7"})
    with pytest.raises(RetryLater) as caught:
        run(specs, name, params, context(settings(specs, jira)))
    assert caught.value.delay == 7.0
    assert "rate limited by Jira (429): Rate limit exceeded." in str(caught.value)
    assert len(jira.calls(method, path)) == 1  # the library did not retry (or sleep) itself


@pytest.mark.parametrize("name", list(ACTIONS))
def test_server_error_retries(specs, jira, name):
    jira.add_issue()
    params, method, path = ACTIONS[name]
    jira.fail(method, path, 500, {"errorMessages": ["Internal server error"], "errors": {}})
    with pytest.raises(RetryLater) as caught:
        run(specs, name, params, context(settings(specs, jira)))
    assert caught.value.delay is None
    assert "Jira answered 500: Internal server error" in str(caught.value)
    assert len(jira.calls(method, path)) == 1


@pytest.mark.parametrize("name", list(ACTIONS))
def test_connection_refused_retries(specs, jira, name):
    s = settings(specs, jira)
    jira.close()
    with pytest.raises(RetryLater, match=f"cannot connect to {s.url}"):
        run(specs, name, ACTIONS[name][0], context(s))


@pytest.mark.parametrize("name", list(ACTIONS))
def test_egress_policy_applies(specs, jira, name):
    with pytest.raises(EgressDenied, match=r"egress to 127\.0\.0\.1 .* egress\.allow"):
        run(specs, name, ACTIONS[name][0], context(settings(specs, jira), allow=()))
    assert jira.requests == []


# -- jira.comment ------------------------------------------------------------------------


def test_comment(specs, jira):
    key = jira.add_issue()
    ctx = context(settings(specs, jira, **BEARER))
    output = run(specs, "jira.comment", {"key": key, "body": "Promoted to *prod*"}, ctx)
    [comment] = jira.comments[key]
    assert output == {"key": "OPS-1", "comment_id": comment["id"]}
    assert routes(jira) == ["POST /issue/OPS-1/comment"]
    assert jira.requests[0].body == {"body": "Promoted to *prod*"}
    assert jira.requests[0].headers["authorization"] == f"Bearer {TOKEN}"


@pytest.mark.parametrize("key", ["OPS-1/../x", "OPS", "", "OPS-1?x=1"])
def test_comment_refuses_a_malformed_key(specs, key):
    with pytest.raises(ValidationError):
        specs["jira.comment"].params.model_validate({"key": key, "body": "b"})


# -- jira.transition ----------------------------------------------------------------------


def test_transition_by_name_in_any_case(specs, jira):
    key = jira.add_issue()
    params = {
        "key": key,
        "transition": "DONE",
        "comment": "fixed by rescan",
        "fields": {"resolution": {"name": "Fixed"}},
    }
    output = run(specs, "jira.transition", params, context(settings(specs, jira)))
    assert output == {"key": "OPS-1", "transition": "Done", "status": "Done", "changed": True}
    assert routes(jira) == ["GET /issue/OPS-1/transitions", "POST /issue/OPS-1/transitions"]
    assert jira.requests[1].body == {
        "transition": {"id": 31},
        "update": {"comment": [{"add": {"body": "fixed by rescan"}}]},
        "fields": {"resolution": {"name": "Fixed"}},
    }
    assert jira.issues[key]["status"] == "Done"
    assert jira.comments[key][0]["body"] == "fixed by rescan"


def test_transition_by_id(specs, jira):
    key = jira.add_issue()
    output = run(
        specs, "jira.transition", {"key": key, "transition": "21"}, context(settings(specs, jira))
    )
    assert output == {
        "key": key,
        "transition": "Start Progress",
        "status": "In Progress",
        "changed": True,
    }


def test_unavailable_transition_lists_the_available_ones(specs, jira):
    key = jira.add_issue()
    jira.issues[key]["status"] = "Done"
    with pytest.raises(PermanentFailure) as caught:
        run(
            specs,
            "jira.transition",
            {"key": key, "transition": "Start Progress"},
            context(settings(specs, jira)),
        )
    assert str(caught.value) == (
        "OPS-1 has no transition 'Start Progress' from its status 'Done' "
        f"(available to user '{USER}' (integrations.jira username/password): 'Reopen')"
    )
    assert routes(jira) == ["GET /issue/OPS-1/transitions", "GET /issue/OPS-1"]


def test_transition_retried_after_a_timeout_finds_it_done(specs, jira):
    key = jira.add_issue()
    jira.slow("POST", r"/issue/OPS-1/transitions", 3.0)
    s = settings(specs, jira, timeout="1s")
    params = {"key": key, "transition": "done"}
    with pytest.raises(RetryLater, match="no answer"):
        run(specs, "jira.transition", params, context(s, attempt=1))
    output = run(specs, "jira.transition", params, context(s, attempt=2))
    assert output == {"key": key, "transition": None, "status": "Done", "changed": False}
    assert len(jira.calls("POST")) == 1


# -- hookwise check ------------------------------------------------------------------------

RULE = """\
rules:
  - name: scan-failed-to-jira
    when: {source: artifactory}
    actions:
      - uses: jira.issue
        with: {summary: "x"}
"""


@pytest.mark.parametrize(
    ("block", "problem"),
    [
        (
            "    url: https://jira.example.com\n    username: bot\n",
            "hookwise.yaml:15:5: [error] integrations.jira: username needs password",
        ),
        (
            "    url: https://jira.example.com\n",
            "hookwise.yaml:15:5: [error] integrations.jira: no credentials: give username",
        ),
        (
            "    url: jira.example.com\n    token: ${JIRA_TOKEN}\n",
            "hookwise.yaml:15:10: [error] integrations.jira.url: url must be an http:// or "
            "https:// URL with a host",
        ),
        (
            "    url: https://jira.example.com\n    token: t\n    tokn: t\n",
            "hookwise.yaml:17:5: [error] integrations.jira.tokn: unknown key 'tokn'; "
            "did you mean 'token'?",
        ),
    ],
)
def test_check_reports_positioned_errors(tmp_path: Path, block: str, problem: str):
    root = project(tmp_path, RULE, extra="integrations:\n  jira:\n" + block)
    result = run_cli("check", cwd=root, env={"JIRA_TOKEN": "t"})
    assert result.returncode == 1, result.stderr
    assert problem in result.stderr


def test_check_passes_with_valid_settings(tmp_path: Path):
    block = "    url: https://jira.example.com\n    token: ${JIRA_TOKEN}\n"
    root = project(tmp_path, RULE, extra="integrations:\n  jira:\n" + block)
    result = run_cli("check", cwd=root, env={"JIRA_TOKEN": "t"})
    assert result.returncode == 0, result.stderr


# -- end to end: Harbor scan failed -> one Jira bug, then a comment ----------------------------

E2E_RULES = """\
rules:
  - name: harbor-scan-failed-to-jira
    when:
      source: harbor
      domain: scan
      event_type: failed
    actions:
      - id: ticket
        uses: jira.issue
        with:
          issue_type: Bug
          summary: "Vulnerability scan failed for {{ artifact.image }}@{{ artifact.digest[:19] }}"
          description: "Harbor could not scan {{ artifact.url }}."
          labels: [harbor, scan-failed]
          dedupe_key: "harbor-scan-{{ artifact.digest }}"
        retry: {attempts: 2, backoff: 1s}
"""
HARBOR_AUTH = "Basic aGFyYm9yOndlYmhvb2s="


def test_harbor_scan_failed_opens_one_bug_then_comments(tmp_path: Path, jira: JiraStandin):
    extra = (
        "  harbor:\n    kind: harbor\n    auth_header: ${HARBOR_AUTH}\n"
        "integrations:\n  jira:\n    url: ${JIRA_URL}\n    username: ${JIRA_USER}\n"
        "    password: ${JIRA_PASSWORD}\n    default_project: OPS\n    timeout: 5s\n"
    )
    server = Hookwise(tmp_path, E2E_RULES, extra=extra)
    server.env.update(
        HARBOR_AUTH=HARBOR_AUTH, JIRA_URL=jira.url, JIRA_USER=USER, JIRA_PASSWORD=PASSWORD
    )
    server.start()
    try:
        payload = json.loads(fixture_bytes("harbor/scan.failed.default.json"))
        headers = {"Authorization": HARBOR_AUTH}
        first = server.post(json.dumps(payload).encode(), source="harbor", headers=headers)
        [run1] = server.wait_for_runs(first.json()["event_id"], {"succeeded", "dead"})
        again = {**payload, "occur_at": payload["occur_at"] + 3600}
        second = server.post(json.dumps(again).encode(), source="harbor", headers=headers)
        assert second.json().get("duplicate") is not True
        [run2] = server.wait_for_runs(second.json()["event_id"], {"succeeded", "dead"})
    finally:
        server.stop()

    url = f"{jira.url}/browse/OPS-1"
    assert run1["status"] == "succeeded", run1
    assert run1["output"]["ticket"] == {
        "key": "OPS-1",
        "url": url,
        "created": True,
        "commented": False,
        "comment_id": None,
    }
    assert run2["status"] == "succeeded", run2
    comment_id = jira.comments["OPS-1"][0]["id"]
    assert run2["output"]["ticket"] == {
        "key": "OPS-1",
        "url": url,
        "created": False,
        "commented": True,
        "comment_id": comment_id,
    }
    assert routes(jira) == [
        "GET /field",
        "GET /search",
        "POST /issue",
        "GET /search",
        "POST /issue/OPS-1/comment",
    ]
    label = f"harbor-scan-{DIGEST}"
    run_label = next(x for x in jira.issues["OPS-1"]["fields"]["labels"] if "run" in x)
    assert jira.calls("POST", "/issue")[0].body == {
        "fields": {
            "project": {"key": "OPS"},
            "issuetype": {"name": "Bug"},
            "summary": "Vulnerability scan failed for harbor/alpine@sha256:dabea2944dcc",
            "description": f"Harbor could not scan localhost/harbor/alpine@{DIGEST}.",
            "labels": ["harbor", "scan-failed", label, run_label],
        }
    }
    assert list(jira.issues) == ["OPS-1"]
    [comment] = jira.comments["OPS-1"]
    assert comment["body"].startswith(
        "Happened again: Vulnerability scan failed for harbor/alpine@sha256:dabea2944dcc\n\n"
        f"Harbor could not scan localhost/harbor/alpine@{DIGEST}.\n\n----\n"
        f"_hookwise rule harbor-scan-failed-to-jira, event {second.json()['event_id']} "
        "(harbor scan.failed), ref "
    )
    assert jira.misses == []
    no_secrets(json.dumps([run1, run2]))


def test_project_inside_fields_is_refused():
    from hookwise_jira import IssueParams

    with pytest.raises(ValidationError, match="give the project as `project`"):
        IssueParams.model_validate(
            {"project": "OPS", "summary": "s", "fields": {"project": {"key": "SEC"}}}
        )
