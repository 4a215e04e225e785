"""jenkins.build against a local Jenkins stand-in, through the real python-jenkins client."""

from __future__ import annotations

import json
import socket
import threading
import time
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import hookwise_jenkins
import pytest

from hookwise.actions import ActionContext, ActionSpec, RunLog
from hookwise.egress import EgressPolicy
from hookwise.errors import EgressDenied, PermanentFailure, RetryLater
from hookwise.event import Event
from hookwise.plugins import load_registry
from tests.conftest import FIXTURES, project, run_cli
from tests.standins.jenkins import CRUMB_FIELD, JenkinsStandin

TOKEN = "api-token-1234"
PARAMS = {"build_name": "", "build_number": ""}


@pytest.fixture
def jenkins() -> Iterator[JenkinsStandin]:
    server = JenkinsStandin()
    server.add_job("release/deploy", parameters=dict(PARAMS))
    server.add_job("plain")
    yield server
    server.close()


@pytest.fixture(scope="module")
def spec() -> ActionSpec:
    """The action as hookwise registers it, from the installed distribution's entry point."""
    registry = load_registry()
    assert registry.integrations["jenkins"].settings is hookwise_jenkins.JenkinsSettings
    return registry.actions["jenkins.build"]


@pytest.fixture(autouse=True)
def _fresh_memory() -> Iterator[None]:
    # A service stopped by an earlier test in this process told the plugin it is stopping.
    hookwise_jenkins._stopping.clear()
    hookwise_jenkins._remembered.clear()
    yield
    hookwise_jenkins._remembered.clear()
    hookwise_jenkins._stopping.clear()


# The stand-in listens on loopback, which the egress policy refuses unless allowed.
LOOPBACK_ALLOWED = EgressPolicy(["127.0.0.1"])


def context(url: str, key: str | None = None, attempt: int = 1, **settings: Any) -> ActionContext:
    event = Event("E1", "artifactory", "artifactory", "build", "promoted", None, 0.0, {}, {})
    ctx = ActionContext(
        event, "deploy", "deploy", attempt, key or uuid.uuid4().hex, LOOPBACK_ALLOWED, RunLog("t")
    )
    values = {"url": url, "username": "hookwise", "api_token": TOKEN, "timeout": "5s", **settings}
    ctx.settings = hookwise_jenkins.JenkinsSettings.model_validate(values)
    return ctx


def run(spec: ActionSpec, ctx: ActionContext, **params: Any) -> Any:
    return spec.run(spec.params.model_validate(params), ctx)


def waiting(**params: Any) -> dict[str, Any]:
    return {"wait": True, "timeout": "5s", "poll_interval": "0.01s", **params}


def messages(ctx: ActionContext) -> list[str]:
    return [line["message"] for line in ctx.log.lines]


# -- triggering -------------------------------------------------------------------------


def test_folder_job_with_parameters_and_crumb_is_followed_to_its_result(spec, jenkins):
    ctx = context(jenkins.url)
    parameters = {"build_name": "sample_build_name", "build_number": "1"}
    output = run(spec, ctx, job="release/deploy", parameters=parameters, **waiting())

    base = jenkins.url
    assert output == {
        "job": "release/deploy",
        "queue_id": 7,
        "queue_url": f"{base}queue/item/7/",
        "number": 1,
        "url": f"{base}job/release/job/deploy/1/",
        "result": "SUCCESS",
        "duration_ms": 1234,
    }
    [crumb] = jenkins.seen("GET", "crumbIssuer")
    [post] = jenkins.seen("POST")
    assert post.path == "/job/release/job/deploy/buildWithParameters"
    assert post.query == {"build_name": ["sample_build_name"], "build_number": ["1"]}
    assert post.headers[CRUMB_FIELD.lower()] == next(iter(jenkins.sessions.values()))
    assert jenkins.requests.index(crumb) < jenkins.requests.index(post)
    assert [r.path for r in jenkins.seen("GET", "queue/item")] == ["/queue/item/7/api/json"] * 2
    assert len(jenkins.seen("GET", "/job/release/job/deploy/1/api/json")) == 2
    assert jenkins.jobs["release/deploy"].builds[0]["actions"][0]["parameters"] == [
        {"name": "build_name", "value": "sample_build_name"},
        {"name": "build_number", "value": "1"},
    ]
    assert messages(ctx) == [
        f"triggered release/deploy (build_name, build_number): queue item {base}queue/item/7/",
        "queued: Waiting for next available executor",
        f"build {base}job/release/job/deploy/1/ started",
        f"build {base}job/release/job/deploy/1/ finished SUCCESS",
    ]


def test_without_parameters_posts_build_and_does_not_wait(spec, jenkins):
    output = run(spec, context(jenkins.url), job="plain")
    assert output == {"job": "plain", "queue_id": 7, "queue_url": f"{jenkins.url}queue/item/7/"}
    [post] = jenkins.seen("POST")
    assert (post.path, post.query) == ("/job/plain/build", {})
    assert jenkins.seen("GET", "queue") == []


def test_deeply_nested_folders_and_names_needing_quoting(spec, jenkins):
    jenkins.add_job("a/b c/d", parameters={"x": ""})
    output = run(spec, context(jenkins.url), job="/a/b c/d/", parameters={"x": 1}, **waiting())
    [post] = jenkins.seen("POST")
    assert post.path == "/job/a/job/b c/job/d/buildWithParameters"
    assert output["url"] == f"{jenkins.url}job/a/job/b%20c/job/d/1/"


def test_parameter_values_are_sent_as_jenkins_parses_them(spec, jenkins):
    parameters = {"flag": True, "off": False, "n": 3, "targets": ["eu", "us"]}
    run(spec, context(jenkins.url), job="release/deploy", parameters=parameters)
    [post] = jenkins.seen("POST")
    assert post.query == {"flag": ["true"], "off": ["false"], "n": ["3"], "targets": ["eu", "us"]}


def test_jenkins_without_csrf_protection_needs_no_crumb():
    server = JenkinsStandin(csrf=False)
    server.add_job("plain")
    try:
        registry = load_registry()
        output = run(registry.actions["jenkins.build"], context(server.url), job="plain")
    finally:
        server.close()
    assert output["queue_id"] == 7
    assert [(r.method, r.path) for r in server.requests] == [
        ("GET", "/crumbIssuer/api/json"),  # answered 404: Jenkins without CSRF protection
        ("POST", "/job/plain/build"),
    ]
    assert CRUMB_FIELD.lower() not in server.requests[1].headers


def test_remote_trigger_token_from_settings_and_overridden_per_action(spec, jenkins):
    jenkins.jobs["plain"].token = "job-trigger-token"
    run(spec, context(jenkins.url, token="job-trigger-token"), job="plain")
    run(spec, context(jenkins.url, token="other"), job="plain", token="job-trigger-token")
    ctx = context(jenkins.url, token="t")
    run(spec, ctx, job="release/deploy", parameters={"x": "1"})
    queries = [r.query for r in jenkins.seen("POST")]
    assert queries == [
        {"token": ["job-trigger-token"]},
        {"token": ["job-trigger-token"]},
        {"x": ["1"], "token": ["t"]},
    ]
    assert messages(ctx)[0].startswith("triggered release/deploy (x): queue item")


# -- failures when triggering -----------------------------------------------------------


def test_wrong_api_token_is_permanent_and_names_the_settings(spec, jenkins):
    ctx = context(jenkins.url, api_token="wrong-token")
    with pytest.raises(PermanentFailure) as caught:
        run(spec, ctx, job="release/deploy", parameters={"x": "1"})
    message = str(caught.value)
    assert message.startswith(f"POST {jenkins.url}job/release/job/deploy/buildWithParameters: ")
    assert "refused the credentials (401): HTTP ERROR 401 Invalid password/token" in message
    assert "integrations.jenkins.username ('hookwise') and api_token" in message
    assert "wrong-token" not in message
    assert [r.path for r in jenkins.requests] == ["/crumbIssuer/api/json"]


def test_missing_permission_is_permanent(spec, jenkins):
    jenkins.script("POST", "/job/plain/build", 403, "<h2>hookwise is missing Job/Build</h2>")
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="plain")
    assert str(caught.value) == (
        f"POST {jenkins.url}job/plain/build: Jenkins refused it (403): hookwise is missing "
        "Job/Build; user 'hookwise' needs Overall/Read, Job/Read and Job/Build on 'plain', or "
        "check the remote trigger token"
    )


def test_unknown_job_is_permanent_and_names_the_path(spec, jenkins):
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="release/nope", parameters={"x": "1"})
    assert str(caught.value).endswith(
        f"job 'release/nope' not found at {jenkins.url}job/release/job/nope/ (check the "
        "folder/job path, and that user 'hookwise' has Job/Read on it)"
    )
    assert len(jenkins.seen("POST")) == 1


def test_parameters_on_a_job_without_parameters_is_permanent_with_jenkins_message(spec, jenkins):
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url, token="s3cret-trigger"), job="plain", parameters={"a": 1})
    message = str(caught.value)
    assert message == (
        f"POST {jenkins.url}job/plain/buildWithParameters: Jenkins answered 400: "
        "java.io.IOException: plain is not parameterized"
    )
    assert "s3cret-trigger" not in message  # python-jenkins puts it in the URL's query


def test_no_parameters_on_a_parameterised_job_explains_the_fix(spec, jenkins):
    with pytest.raises(PermanentFailure, match="give at least one in `parameters`"):
        run(spec, context(jenkins.url), job="release/deploy")


def test_rate_limit_retries_after_retry_after(spec, jenkins):
    jenkins.script("POST", "buildWithParameters", 429, "slow down", {"Retry-After": "30"})
    with pytest.raises(RetryLater) as caught:
        run(spec, context(jenkins.url), job="release/deploy", parameters={"x": "1"}, wait=True)
    assert caught.value.delay == 30
    assert "Jenkins answered 429: slow down" in str(caught.value)
    assert jenkins.queue == {}


@pytest.mark.parametrize("status", [500, 502, 503])
def test_server_errors_are_retryable(spec, jenkins, status):
    # python-jenkins turns a 500 into "Possibly authentication failed": the status decides.
    jenkins.script("POST", "/job/plain/build", status, "<pre>java.lang.NullPointerException</pre>")
    with pytest.raises(RetryLater) as caught:
        run(spec, context(jenkins.url), job="plain")
    assert caught.value.delay is None
    assert str(caught.value) == (
        f"POST {jenkins.url}job/plain/build: Jenkins answered {status}: "
        "java.lang.NullPointerException"
    )


def test_server_error_on_the_crumb_request_is_retryable(spec, jenkins):
    jenkins.script("GET", "crumbIssuer", 503, "starting", {"Retry-After": "5"})
    with pytest.raises(RetryLater) as caught:
        run(spec, context(jenkins.url), job="plain")
    assert caught.value.delay == 5
    assert jenkins.seen("POST") == []


def test_rejected_crumb_is_retryable_with_a_fresh_session(spec, jenkins):
    jenkins.script("POST", "/job/plain/build", 403, "No valid crumb was included in the request")
    with pytest.raises(RetryLater, match="refused the CSRF crumb"):
        run(spec, context(jenkins.url), job="plain")
    run(spec, context(jenkins.url), job="plain")
    assert len(jenkins.seen("GET", "crumbIssuer")) == 2  # a new client, so a new crumb


def test_connection_refused_is_retryable_and_hides_the_trigger_token(spec):
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    ctx = context(f"http://127.0.0.1:{port}", token="s3cret-trigger")
    with pytest.raises(RetryLater) as caught:
        run(spec, ctx, job="plain", parameters={"a": "b"})
    assert f"cannot connect to http://127.0.0.1:{port}/" in str(caught.value)
    assert "s3cret-trigger" not in str(caught.value)


def test_no_answer_in_time_is_retryable(spec):
    with socket.socket() as silent:  # accepts connections (backlog) and never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(5)
        url = f"http://127.0.0.1:{silent.getsockname()[1]}"
        started = time.monotonic()
        with pytest.raises(RetryLater) as caught:
            run(spec, context(url, timeout="0.2s"), job="plain")
    assert time.monotonic() - started < 3
    assert str(caught.value).endswith("Jenkins did not answer within 0.2s")


# -- waiting ----------------------------------------------------------------------------


@pytest.mark.parametrize("result", ["FAILURE", "UNSTABLE", "ABORTED"])
def test_a_failed_build_fails_the_action_naming_url_and_result(spec, jenkins, result):
    jenkins.jobs["plain"].result = result
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="plain", **waiting())
    assert str(caught.value) == (
        f"Jenkins build {jenkins.url}job/plain/1/ finished {result} "
        "(fail_on: FAILURE, UNSTABLE, ABORTED, NOT_BUILT)"
    )


def test_fail_on_can_accept_unstable_builds(spec, jenkins):
    jenkins.jobs["plain"].result = "UNSTABLE"
    output = run(spec, context(jenkins.url), job="plain", **waiting(fail_on=["FAILURE"]))
    assert output["result"] == "UNSTABLE"


def test_cancelled_queue_item_is_permanent(spec, jenkins):
    jenkins.jobs["plain"].cancel = True
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="plain", **waiting())
    assert str(caught.value) == (
        f"Jenkins cancelled queue item {jenkins.url}queue/item/7/ of 'plain' before it started"
    )


def test_wait_timeout_fails_without_retrying_and_a_retry_follows_the_same_build(spec, jenkins):
    jenkins.jobs["plain"].building_polls = 10_000
    key = uuid.uuid4().hex
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url, key), job="plain", **waiting(timeout="0.3s"))
    assert str(caught.value) == (
        f"'plain' build {jenkins.url}job/plain/1/ still running after waiting 0.3s; not "
        "retried, since that would start another build: raise `timeout` (and the action's "
        "timeout) to wait longer"
    )
    # Should the run be retried anyway (e.g. hookwise's own timeout hit first), the next
    # attempt of the same action follows build 1 instead of starting build 2.
    jenkins.jobs["plain"].builds[0]["polls"] = 1
    ctx = context(jenkins.url, key, attempt=2)
    output = run(spec, ctx, job="plain", **waiting())
    assert (output["queue_id"], output["number"], output["result"]) == (7, 1, "SUCCESS")
    assert len(jenkins.seen("POST")) == 1
    assert "following it instead of starting another build" in messages(ctx)[0]


def test_wait_timeout_while_queued_says_why(spec, jenkins):
    jenkins.jobs["plain"].queued_polls = 10_000
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="plain", **waiting(timeout="0.2s"))
    assert str(caught.value).startswith(
        f"'plain' still queued as {jenkins.url}queue/item/7/ (Waiting for next available "
        "executor) after waiting 0.2s; not retried"
    )


def test_transient_errors_while_following_are_polled_through(spec, jenkins):
    jenkins.script("GET", "/queue/item/7/", 503, "restarting", times=2)
    jenkins.script("GET", "/job/plain/1/api/json", 429, "busy", {"Retry-After": "0.05"})
    ctx = context(jenkins.url)
    output = run(spec, ctx, job="plain", **waiting())
    assert output["result"] == "SUCCESS"
    assert len(jenkins.seen("POST")) == 1
    warnings = [line["message"] for line in ctx.log.lines if line["level"] == "warning"]
    assert warnings == [
        f"GET {jenkins.url}queue/item/7/api/json: Jenkins answered 503: restarting; polling on",
        f"GET {jenkins.url}queue/item/7/api/json: Jenkins answered 503: restarting; polling on",
        f"GET {jenkins.url}job/plain/1/api/json: Jenkins answered 429: busy; polling on",
    ]


def test_permanent_errors_while_following_say_the_build_was_triggered(spec, jenkins):
    jenkins.script("GET", "/job/plain/1/api/json", 403, "<h2>no Job/Read</h2>")
    with pytest.raises(PermanentFailure) as caught:
        run(spec, context(jenkins.url), job="plain", **waiting())
    assert str(caught.value).startswith(
        f"GET {jenkins.url}job/plain/1/api/json: Jenkins refused it (403): no Job/Read;"
    )
    assert str(caught.value).endswith(
        "(the build was triggered; not retried, a retry would start another)"
    )


def test_stopping_hookwise_ends_a_wait_at_once(spec, jenkins):
    jenkins.jobs["plain"].building_polls = 10_000
    threading.Timer(0.3, hookwise_jenkins.hookwise_shutdown).start()
    started = time.monotonic()
    with pytest.raises(RetryLater, match="hookwise is stopping"):
        run(spec, context(jenkins.url), job="plain", **waiting(timeout="60s", poll_interval="5s"))
    assert time.monotonic() - started < 3
    hookwise_jenkins.hookwise_startup()
    assert not hookwise_jenkins._stopping.is_set()


# -- idempotency across processes -----------------------------------------------------------


def test_idempotency_parameter_finds_the_build_of_an_earlier_attempt(spec, jenkins):
    jenkins.jobs["release/deploy"].parameters = {**PARAMS, "HOOKWISE_KEY": ""}
    key = uuid.uuid4().hex
    params = {
        "job": "release/deploy",
        "parameters": {"build_name": "b", "build_number": "1"},
        "idempotency_parameter": "HOOKWISE_KEY",
    }
    first = run(spec, context(jenkins.url, key), **params, **waiting())
    [post] = jenkins.seen("POST")
    assert post.query["HOOKWISE_KEY"] == [key]
    hookwise_jenkins._remembered.clear()  # as after a crash: this process remembers nothing

    ctx = context(jenkins.url, key, attempt=2)
    again = run(spec, ctx, **params, **waiting())
    assert again == first
    assert len(jenkins.seen("POST")) == 1
    assert messages(ctx)[0] == (
        f"found the build of an earlier attempt by HOOKWISE_KEY={key} (queue item 7); "
        "not triggering again"
    )
    # Another run has another key, so it does trigger.
    run(spec, context(jenkins.url), **params)
    assert len(jenkins.seen("POST")) == 2


def test_idempotency_parameter_finds_a_still_queued_trigger(spec, jenkins):
    jenkins.jobs["plain"].parameters = {"HOOKWISE_KEY": ""}
    jenkins.jobs["plain"].queued_polls = 10_000
    key = uuid.uuid4().hex
    first = run(spec, context(jenkins.url, key), job="plain", idempotency_parameter="HOOKWISE_KEY")
    hookwise_jenkins._remembered.clear()
    again = run(spec, context(jenkins.url, key), job="plain", idempotency_parameter="HOOKWISE_KEY")
    assert again == first
    assert len(jenkins.seen("POST")) == 1


# -- configuration ----------------------------------------------------------------------

RULE = """\
rules:
  - name: deploy-promoted-builds
    when:
      source: artifactory
      domain: build
      event_type: promoted
    actions:
      - id: deploy
        uses: jenkins.build
        timeout: 30s
        with:
          job: release/deploy
          parameters:
            build_name: "{{ data.build_name }}"
            build_number: "{{ data.build_number }}"
          wait: true
          timeout: 20s
          poll_interval: 0.1s
"""


@pytest.mark.parametrize(
    ("block", "expected"),
    [
        (
            "    url: https://ci.example.com\n    username: hookwise\n",
            "hookwise.yaml:15:5: [error] integrations.jenkins.api_token: required key is missing",
        ),
        (
            "    url: ci.example.com\n    username: hookwise\n    api_token: t\n",
            "hookwise.yaml:15:10: [error] integrations.jenkins.url: url must be an http:// or "
            "https:// URL with a host",
        ),
        (
            "    url: https://ci.example.com\n    username: hookwise\n    api_token: ''\n",
            "hookwise.yaml:17:16: [error] integrations.jenkins.api_token: api_token is empty",
        ),
    ],
)
def test_check_reports_settings_mistakes_with_positions(tmp_path: Path, block, expected):
    root = project(tmp_path, RULE, extra="integrations:\n  jenkins:\n" + block)
    result = run_cli("check", cwd=root)
    assert result.returncode == 1, result.stderr
    assert expected in result.stderr, result.stderr


def test_check_accepts_a_complete_configuration(tmp_path: Path):
    extra = (
        "integrations:\n  jenkins:\n    url: https://ci.example.com/jenkins\n"
        "    username: hookwise\n    api_token: ${JENKINS_API_TOKEN}\n"
    )
    result = run_cli(
        "check", cwd=project(tmp_path, RULE, extra=extra), env={"JENKINS_API_TOKEN": "x"}
    )
    assert result.returncode == 0, result.stderr


# -- end to end -------------------------------------------------------------------------


def test_promoted_build_triggers_the_deploy_job_and_waits(hookwise_factory, jenkins):
    jenkins.jobs["release/deploy"].queued_polls = 2
    jenkins.jobs["release/deploy"].building_polls = 3
    extra = (
        "integrations:\n  jenkins:\n    url: ${JENKINS_URL}\n    username: hookwise\n"
        "    api_token: ${JENKINS_API_TOKEN}\n"
    )
    server = hookwise_factory(RULE, extra=extra)
    server.env.update(JENKINS_URL=jenkins.url, JENKINS_API_TOKEN=TOKEN)
    server.start()

    response = server.post((FIXTURES / "artifactory" / "build.promoted.json").read_bytes())
    assert response.status_code == 202, response.text
    [run_] = server.wait_for_runs(response.json()["event_id"], {"succeeded", "dead"})

    assert run_["status"] == "succeeded", run_
    assert run_["output"]["deploy"] == {
        "job": "release/deploy",
        "queue_id": 7,
        "queue_url": f"{jenkins.url}queue/item/7/",
        "number": 1,
        "url": f"{jenkins.url}job/release/job/deploy/1/",
        "result": "SUCCESS",
        "duration_ms": 1234,
    }
    [crumb] = jenkins.seen("GET", "crumbIssuer")
    [post] = jenkins.seen("POST")
    assert post.path == "/job/release/job/deploy/buildWithParameters"
    assert post.query == {"build_name": ["sample_build_name"], "build_number": ["1"]}
    assert post.headers[CRUMB_FIELD.lower()] == next(iter(jenkins.sessions.values()))
    assert jenkins.requests.index(crumb) < jenkins.requests.index(post)
    assert TOKEN not in json.dumps(run_)


def test_egress_policy_applies_to_jenkins(spec, jenkins):
    ctx = context(jenkins.url)
    ctx.egress = EgressPolicy()  # loopback not allowed
    with pytest.raises(EgressDenied, match=r"egress to 127\.0\.0\.1 .* egress\.allow"):
        run(spec, ctx, job="plain")
    assert jenkins.requests == []


def test_an_empty_trigger_token_is_a_settings_error():
    with pytest.raises(ValueError, match=r"token is empty: is its \$\{VAR\} set\?"):
        hookwise_jenkins.JenkinsSettings.model_validate(
            {"url": "https://ci.example.com", "username": "u", "api_token": "t", "token": ""}
        )
