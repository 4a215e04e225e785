"""The Slack actions against a local stand-in of Slack, through the real slack_sdk over HTTP."""

from __future__ import annotations

import json
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from pydantic import ValidationError

from hookwise.actions import ActionContext, RunLog
from hookwise.artifacts import artifact
from hookwise.egress import EgressPolicy
from hookwise.errors import PermanentFailure, RetryLater
from hookwise.event import Event
from hookwise.plugins import load_registry
from hookwise.slack import actions as hookwise_slack
from tests.conftest import fixture_bytes, project, run_cli
from tests.standins.slack import TOKEN, WEBHOOK_PATH, SlackStandin

KEY = "0123456789abcdef0123456789abcdef"
DIGEST = "sha256:ee34c5c94b4d7d0b319af21a84ebb0bcc16ef01be9a6ee0277329256ecee29b0"


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    standin = SlackStandin()
    yield standin
    standin.close()


@pytest.fixture(scope="module")
def actions() -> dict[str, Any]:
    """The actions exactly as hookwise registers them from the installed distribution."""
    registry = load_registry()
    assert registry.integrations["slack"].settings is hookwise_slack.SlackSettings
    return registry.actions


def promoted(url: str | None = None, received_at: float = 0.0) -> Event:
    data = json.loads(fixture_bytes("artifactory/docker.promoted.walkthrough.json"))["data"]
    view = artifact(
        repository="docker-local-staging",
        path="helloworld/latest/manifest.json",
        name="manifest.json",
        image="helloworld",
        tag="latest",
        digest=DIGEST,
        size=949,
        url=url,
    )
    return Event(
        "01JEVENT", "artifactory", "artifactory", "docker", "promoted", None, received_at, data,
        artifacts=[view],
    )  # fmt: skip


def context(settings: dict[str, Any], event: Event | None = None, attempt: int = 1):
    return ActionContext(
        event=event or promoted(),
        rule="docker-to-slack",
        action_id="notify",
        attempt=attempt,
        idempotency_key=KEY,
        egress=EgressPolicy(["127.0.0.1"]),
        log=RunLog("test"),
        settings=hookwise_slack.SlackSettings.model_validate(settings),
        resumed=attempt > 1,
    )


def web(slack: SlackStandin, **extra: Any) -> dict[str, Any]:
    return {"token": TOKEN, "base_url": slack.base_url, "timeout": 2, **extra}


def message(actions, slack: SlackStandin, params: dict[str, Any], **kwargs: Any) -> Any:
    spec = actions["slack.message"]
    settings = kwargs.pop("settings", None) or web(slack)
    return spec.run(spec.params.model_validate(params), context(settings, **kwargs))


def update(actions, slack: SlackStandin, params: dict[str, Any], settings=None) -> Any:
    spec = actions["slack.update"]
    ctx = context(settings or web(slack))
    return spec.run(spec.params.model_validate(params), ctx)


def closed_port_url() -> str:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    return f"http://127.0.0.1:{port}/api/"


# -- slack.message through the Web API ------------------------------------------------------


def test_message_posts_with_the_default_layout(actions, slack: SlackStandin):
    out = message(actions, slack, {"channel": "#deploys", "text": "Deploying helloworld"})

    assert out == {"channel": "C0DEPLOYS", "ts": out["ts"], "thread_ts": None, "via": "web_api"}
    [call] = slack.calls
    assert call.path == "/api/chat.postMessage"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.headers["content-type"].startswith("application/json")
    body = call.body
    assert body["channel"] == "#deploys"
    assert body["text"] == "Deploying helloworld"
    assert "thread_ts" not in body
    assert body["metadata"] == {
        "event_type": "hookwise_action",
        "event_payload": {"key": KEY, "rule": "docker-to-slack", "event_id": "01JEVENT"},
    }
    section, facts, footer = body["blocks"]
    assert section == {
        "type": "section",
        "text": {"type": "mrkdwn", "text": "Deploying helloworld"},
    }
    assert [f["text"] for f in facts["fields"]] == [
        "*Event*\nartifactory · docker · promoted",
        "*Repository*\ndocker-local-staging",
        "*Artifact*\n`helloworld:latest`",
        "*Digest*\n`sha256:ee34c5c94b4d`",
    ]
    assert footer["elements"][0]["text"] == "hookwise · rule `docker-to-slack` · event `01JEVENT`"
    assert slack.messages["C0DEPLOYS"][0]["ts"] == out["ts"]


def test_default_text_summarises_and_links_the_artifact(actions, slack: SlackStandin):
    url = "https://jfrog.example/artifactory/docker-local-staging/helloworld/latest/manifest.json"
    out = message(actions, slack, {"channel": "C0DEPLOYS"}, event=promoted(url=url))

    body = slack.calls[0].body
    assert body["text"] == "artifactory: docker promoted helloworld:latest"
    assert f"*Artifact*\n<{url}|helloworld:latest>" in [
        f["text"] for f in body["blocks"][1]["fields"]
    ]
    assert out["channel"] == "C0DEPLOYS"


def test_event_without_artifact_shows_its_data(actions, slack: SlackStandin):
    event = Event(
        "01JBUILD", "artifactory", "artifactory", "build", "promoted", None, 0.0,
        {"build_name": "app <main>", "build_number": "7", "nested": {"x": 1}},
    )  # fmt: skip
    message(actions, slack, {"channel": "#deploys"}, event=event)

    body = slack.calls[0].body
    assert body["text"] == "artifactory: build promoted"
    assert [f["text"] for f in body["blocks"][1]["fields"]] == [
        "*Event*\nartifactory · build · promoted",
        "*build_name*\napp &lt;main&gt;",
        "*build_number*\n7",
    ]


def test_own_blocks_are_sent_as_given_and_empty_blocks_mean_text_only(actions, slack: SlackStandin):
    blocks = [{"type": "section", "text": {"type": "mrkdwn", "text": "*custom*"}}]
    message(actions, slack, {"channel": "#deploys", "text": "t", "blocks": blocks})
    builder = json.dumps({"blocks": blocks})  # as Block Kit Builder exports it
    message(actions, slack, {"channel": "#deploys", "text": "t", "blocks": builder})
    message(actions, slack, {"channel": "#deploys", "text": "plain", "blocks": []})

    first, second, third = (call.body for call in slack.calls)
    assert first["blocks"] == blocks
    assert second["blocks"] == blocks
    assert "blocks" not in third
    assert third["text"] == "plain"


def test_threaded_reply_uses_thread_ts_and_returns_it(actions, slack: SlackStandin):
    parent = message(actions, slack, {"channel": "#deploys", "text": "parent"})
    params = {
        "channel": parent["channel"],
        "text": "reply",
        "thread_ts": parent["ts"],
        "reply_broadcast": True,
    }
    reply = message(actions, slack, params)

    assert reply["thread_ts"] == parent["ts"]
    assert reply["ts"] != parent["ts"]
    body = slack.calls[1].body
    assert body["thread_ts"] == parent["ts"]
    assert body["reply_broadcast"] is True


def test_default_channel_is_used_and_a_missing_one_is_permanent(actions, slack: SlackStandin):
    settings = web(slack, default_channel="#deploys")
    out = message(actions, slack, {"text": "x"}, settings=settings)
    assert out["channel"] == "C0DEPLOYS"
    assert slack.calls[0].body["channel"] == "#deploys"

    with pytest.raises(PermanentFailure, match=r"needs a channel.*default_channel"):
        message(actions, slack, {"text": "x"})
    assert len(slack.calls) == 1


def test_wrong_token_is_permanent_and_never_shown(actions, slack: SlackStandin):
    settings = web(slack, token="xoxb-wrong-token-value")
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x"}, settings=settings)

    text = str(caught.value)
    assert text.startswith("Slack chat.postMessage to #deploys failed (invalid_auth)")
    assert "integrations.slack.token" in text
    assert "xoxb-wrong" not in text
    assert slack.calls[0].headers["authorization"] == "Bearer xoxb-wrong-token-value"
    assert slack.messages["C0DEPLOYS"] == []


@pytest.mark.parametrize("error", ["not_authed", "account_inactive", "token_revoked"])
def test_other_auth_errors_are_permanent(actions, slack: SlackStandin, error: str):
    slack.fail("chat.postMessage", body={"ok": False, "error": error})
    with pytest.raises(PermanentFailure, match=f"failed \\({error}\\)"):
        message(actions, slack, {"channel": "#deploys", "text": "x"})


def test_missing_scope_names_the_scope_needed(actions, slack: SlackStandin):
    slack.scopes = {"channels:read"}
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x"})

    assert str(caught.value) == (
        "Slack chat.postMessage to #deploys failed (missing_scope): the token lacks the "
        "chat:write scope (it has channels:read); add chat:write under OAuth & Permissions, "
        "reinstall the app, and update the token"
    )


def test_unknown_channel_is_permanent(actions, slack: SlackStandin):
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"channel": "#nowhere", "text": "x"})

    assert "Slack chat.postMessage to #nowhere failed (channel_not_found)" in str(caught.value)
    assert "invite the app" in str(caught.value)
    assert len(slack.calls) == 1


def test_channel_the_app_has_not_joined_is_permanent(actions, slack: SlackStandin):
    with pytest.raises(PermanentFailure, match=r"not_in_channel.*/invite.*chat:write\.public"):
        message(actions, slack, {"channel": "#releases", "text": "x"})


def test_invalid_blocks_and_too_long_text_are_permanent(actions, slack: SlackStandin):
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x", "blocks": [{"type": "bad"}]})
    assert "(invalid_blocks): Slack refused the blocks: must provide a valid type" in str(
        caught.value
    )
    assert "[json-pointer:/blocks/0/type]" in str(caught.value)

    with pytest.raises(PermanentFailure, match=r"msg_too_long.*40,000"):
        message(actions, slack, {"channel": "#deploys", "text": "x" * 40001, "blocks": []})
    assert slack.messages["C0DEPLOYS"] == []


def test_unknown_slack_error_is_permanent_and_points_at_the_docs(actions, slack: SlackStandin):
    slack.fail("chat.postMessage", body={"ok": False, "error": "team_not_found"})
    with pytest.raises(PermanentFailure, match=r"team_not_found.*api\.slack\.com/methods"):
        message(actions, slack, {"channel": "#deploys", "text": "x"})


def test_rate_limit_retries_after_retry_after(actions, slack: SlackStandin):
    slack.fail("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "7"})
    with pytest.raises(RetryLater) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x"})

    assert caught.value.delay == 7.0
    assert str(caught.value) == (
        "Slack chat.postMessage to #deploys was rate-limited (HTTP 429); retrying after 7s"
    )
    assert len(slack.calls) == 1  # slack_sdk's own retry handlers are off


def test_server_error_is_retryable_once_per_attempt(actions, slack: SlackStandin):
    slack.fail("chat.postMessage", 500, "<html>Internal Server Error</html>")
    with pytest.raises(RetryLater) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x"})

    assert caught.value.delay is None
    assert str(caught.value).startswith("Slack chat.postMessage to #deploys failed: HTTP 500")
    assert "Internal Server Error" in str(caught.value)
    assert len(slack.calls) == 1


@pytest.mark.parametrize("error", ["internal_error", "fatal_error", "service_unavailable"])
def test_transient_slack_errors_are_retryable(actions, slack: SlackStandin, error: str):
    slack.fail("chat.postMessage", body={"ok": False, "error": error})
    with pytest.raises(RetryLater, match=f"\\({error}\\): a transient Slack error"):
        message(actions, slack, {"channel": "#deploys", "text": "x"})


def test_connection_refused_is_retryable(actions, slack: SlackStandin):
    settings = web(slack, base_url=closed_port_url())
    with pytest.raises(RetryLater, match=r"could not reach 127\.0\.0\.1: .*refused"):
        message(actions, slack, {"channel": "#deploys", "text": "x"}, settings=settings)


def test_slow_slack_times_out_as_retryable(actions, slack: SlackStandin):
    slack.fail("chat.postMessage", body={"ok": True}, delay=3)
    settings = web(slack, timeout="200ms")
    with pytest.raises(RetryLater, match=r"chat\.postMessage timed out after 0\.2s"):
        message(actions, slack, {"channel": "#deploys", "text": "x"}, settings=settings)


def test_wrong_base_url_is_permanent_and_says_so(actions, slack: SlackStandin):
    settings = web(slack, base_url=f"{slack.url}/wrong/")
    with pytest.raises(PermanentFailure, match=r"HTTP 404 .*integrations\.slack\.base_url"):
        message(actions, slack, {"channel": "#deploys", "text": "x"}, settings=settings)

    slack.fail("chat.postMessage", 200, "<html>Sign in to your proxy</html>")
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"channel": "#deploys", "text": "x"})
    assert "HTTP 200 (Received a response in a non-JSON format: <html>Sign in" in str(caught.value)
    assert "integrations.slack.base_url" in str(caught.value)


def test_retry_after_a_lost_answer_does_not_post_twice(actions, slack: SlackStandin):
    event = promoted(received_at=1000.0)
    slack.fail("chat.postMessage", 500, "upstream timeout", after=True)  # posted, answer lost
    with pytest.raises(RetryLater):
        message(actions, slack, {"channel": "C0DEPLOYS", "text": "x"}, event=event)

    out = message(actions, slack, {"channel": "C0DEPLOYS", "text": "x"}, event=event, attempt=2)

    [posted] = slack.messages["C0DEPLOYS"]
    assert out == {"channel": "C0DEPLOYS", "ts": posted["ts"], "thread_ts": None, "via": "web_api"}
    assert [c.api for c in slack.calls] == [
        "chat.postMessage",
        "conversations.history",
    ]
    lookup = slack.calls[1].body
    assert lookup["channel"] == "C0DEPLOYS"
    assert lookup["oldest"] == "700.000000"  # 5 minutes before the event, for clock skew
    assert lookup["include_all_metadata"] in ("1", 1, True)


def test_retry_of_a_threaded_reply_looks_in_the_thread(actions, slack: SlackStandin):
    parent = message(actions, slack, {"channel": "C0DEPLOYS", "text": "parent"})
    params = {"channel": "C0DEPLOYS", "text": "reply", "thread_ts": parent["ts"]}
    slack.fail("chat.postMessage", 503, "busy", after=True)
    with pytest.raises(RetryLater):
        message(actions, slack, params)
    # The parent carries this same key here; in a real run it is another action's.
    # Another action's reply in the same thread (another idempotency key) is not ours either.
    slack.messages["C0DEPLOYS"][-1]["metadata"]["event_payload"]["key"] = "someone-else"

    out = message(actions, slack, params, attempt=2)

    assert [c.api for c in slack.calls][-2:] == ["conversations.replies", "chat.postMessage"]
    assert out["thread_ts"] == parent["ts"]
    assert len(slack.messages["C0DEPLOYS"]) == 3


def test_retry_posts_again_when_history_cannot_be_read(actions, slack: SlackStandin):
    slack.scopes = {"chat:write"}
    ctx_params = {"channel": "C0DEPLOYS", "text": "x"}
    spec = actions["slack.message"]
    ctx = context(web(slack), attempt=2)
    out = spec.run(spec.params.model_validate(ctx_params), ctx)

    assert out["ts"]
    assert [c.api for c in slack.calls] == ["conversations.history", "chat.postMessage"]
    [line] = [x["message"] for x in ctx.log.lines if x["level"] == "warning"]
    assert line == "retry: could not look for an earlier post (missing_scope); posting again"


def test_retry_with_a_channel_name_posts_again_without_looking(actions, slack: SlackStandin):
    message(actions, slack, {"channel": "#deploys", "text": "x"}, attempt=2)
    assert [c.api for c in slack.calls] == ["chat.postMessage"]


# -- slack.message through an incoming webhook ------------------------------------------------


def hook(slack: SlackStandin, **extra: Any) -> dict[str, Any]:
    return {"webhook_url": slack.webhook_url, "timeout": 2, **extra}


def test_webhook_posts_text_and_layout(actions, slack: SlackStandin):
    out = message(actions, slack, {"text": "Deploying"}, settings=hook(slack))

    assert out == {"channel": None, "ts": None, "thread_ts": None, "via": "webhook"}
    [call] = slack.calls
    assert call.path == WEBHOOK_PATH
    assert "authorization" not in call.headers
    assert call.body["text"] == "Deploying"
    assert call.body["blocks"][0]["text"]["text"] == "Deploying"
    assert "channel" not in call.body and "metadata" not in call.body


def test_webhook_ignores_channel_with_a_warning(actions, slack: SlackStandin):
    spec = actions["slack.message"]
    ctx = context(hook(slack))
    spec.run(spec.params.model_validate({"channel": "#other", "text": "x"}), ctx)
    assert "channel" not in slack.calls[0].body
    assert ctx.log.lines[0]["level"] == "warning"
    assert "#other ignored" in ctx.log.lines[0]["message"]


def test_webhook_cannot_thread(actions, slack: SlackStandin):
    params = {"text": "x", "thread_ts": "1700000000.000100"}
    with pytest.raises(PermanentFailure, match=r"cannot reply in a thread.*bot token"):
        message(actions, slack, params, settings=hook(slack))
    assert slack.calls == []


def test_token_wins_over_webhook_when_both_are_set(actions, slack: SlackStandin):
    both = web(slack, webhook_url=slack.webhook_url)
    out = message(actions, slack, {"channel": "#deploys", "text": "x"}, settings=both)
    assert out["via"] == "web_api"
    assert [c.api for c in slack.calls] == ["chat.postMessage"]


@pytest.mark.parametrize(
    ("status", "body", "hint"),
    [
        (404, "no_service", "webhook no longer exists"),
        (410, "channel_is_archived", "archived"),
        (403, "action_prohibited", "administrator"),
        (400, "invalid_payload", "check `blocks`"),
    ],
)
def test_webhook_refusals_are_permanent(actions, slack: SlackStandin, status, body, hint):
    slack.fail("webhook", status, body)
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"text": "x"}, settings=hook(slack))
    assert f"HTTP {status} ({body})" in str(caught.value)
    assert hint in str(caught.value)
    assert "standin-webhook-secret" not in str(caught.value)


def test_unknown_webhook_url_is_permanent_without_showing_it(actions, slack: SlackStandin):
    settings = hook(slack, webhook_url=f"{slack.url}/services/T0/B0/revoked-secret")
    with pytest.raises(PermanentFailure) as caught:
        message(actions, slack, {"text": "x"}, settings=settings)
    assert "HTTP 404 (no_service)" in str(caught.value)
    assert "revoked-secret" not in str(caught.value)


def test_webhook_rate_limit_and_server_error_are_retryable(actions, slack: SlackStandin):
    slack.fail("webhook", 429, "rate_limited", {"Retry-After": "30"})
    slack.fail("webhook", 500, "rollup_error")
    with pytest.raises(RetryLater) as limited:
        message(actions, slack, {"text": "x"}, settings=hook(slack))
    with pytest.raises(RetryLater, match=r"HTTP 500 \(rollup_error\)"):
        message(actions, slack, {"text": "x"}, settings=hook(slack))
    assert limited.value.delay == 30.0
    assert len(slack.calls) == 2


def test_slow_webhook_times_out_as_retryable(actions, slack: SlackStandin):
    slack.fail("webhook", 200, "ok", delay=3)
    with pytest.raises(RetryLater, match=r"^Slack incoming webhook timed out after 0\.2s$"):
        message(actions, slack, {"text": "x"}, settings=hook(slack, timeout=0.2))


def test_webhook_connection_error_is_retryable_and_hides_the_url(actions, slack: SlackStandin):
    url = closed_port_url().replace("/api/", "/services/T0/B0/hidden-part")
    with pytest.raises(RetryLater) as caught:
        message(actions, slack, {"text": "x"}, settings=hook(slack, webhook_url=url))
    assert "could not reach 127.0.0.1" in str(caught.value)
    assert "hidden-part" not in str(caught.value)


# -- slack.update ------------------------------------------------------------------------------


def test_update_replaces_text_and_layout(actions, slack: SlackStandin):
    posted = message(actions, slack, {"channel": "#deploys", "text": "deploying…"})
    out = update(
        actions, slack, {"channel": posted["channel"], "ts": posted["ts"], "text": "done ✔"}
    )

    assert out == {"channel": "C0DEPLOYS", "ts": posted["ts"]}
    call = slack.calls[1]
    assert call.path == "/api/chat.update"
    assert call.headers["authorization"] == f"Bearer {TOKEN}"
    assert call.body["channel"] == "C0DEPLOYS"
    assert call.body["ts"] == posted["ts"]
    assert call.body["text"] == "done ✔"
    assert call.body["blocks"][0]["text"]["text"] == "done ✔"  # the layout follows the text
    [stored] = slack.messages["C0DEPLOYS"]
    assert stored["text"] == "done ✔" and "edited" in stored


def test_update_with_empty_blocks_removes_them(actions, slack: SlackStandin):
    posted = message(actions, slack, {"channel": "#deploys", "text": "a"})
    update(actions, slack, {"channel": "C0DEPLOYS", "ts": posted["ts"], "text": "b", "blocks": []})
    assert slack.calls[1].body["blocks"] == []
    assert slack.messages["C0DEPLOYS"][0]["blocks"] == []


def test_update_needs_text_or_blocks():
    with pytest.raises(ValidationError, match="give `text`, `blocks` or both"):
        hookwise_slack.UpdateParams.model_validate({"channel": "C0DEPLOYS", "ts": "1.2"})
    with pytest.raises(ValidationError, match="a Slack ts looks like"):
        hookwise_slack.UpdateParams.model_validate({"channel": "C", "ts": "soon", "text": "x"})


def test_update_of_unknown_message_is_permanent(actions, slack: SlackStandin):
    params = {"channel": "C0DEPLOYS", "ts": "1700000000.000100", "text": "x"}
    with pytest.raises(PermanentFailure) as caught:
        update(actions, slack, params)
    assert str(caught.value).startswith(
        "Slack chat.update failed (message_not_found): there is no message with ts "
        "1700000000.000100 in C0DEPLOYS"
    )


def test_update_by_channel_name_is_not_found(actions, slack: SlackStandin):
    posted = message(actions, slack, {"channel": "#deploys", "text": "a"})
    with pytest.raises(PermanentFailure, match="channel_not_found"):
        update(actions, slack, {"channel": "#deploys", "ts": posted["ts"], "text": "b"})


def test_update_of_someone_elses_message_is_permanent(actions, slack: SlackStandin):
    ts = slack.post("C0DEPLOYS", "a human wrote this")
    with pytest.raises(PermanentFailure, match=r"cant_update_message.*only messages the same app"):
        update(actions, slack, {"channel": "C0DEPLOYS", "ts": ts, "text": "x"})


def test_update_with_wrong_token_is_permanent(actions, slack: SlackStandin):
    posted = message(actions, slack, {"channel": "#deploys", "text": "a"})
    params = {"channel": "C0DEPLOYS", "ts": posted["ts"], "text": "b"}
    with pytest.raises(PermanentFailure, match=r"chat\.update failed \(invalid_auth\)"):
        update(actions, slack, params, settings=web(slack, token="xoxb-nope"))


def test_update_rate_limit_and_server_error_are_retryable(actions, slack: SlackStandin):
    params = {"channel": "C0DEPLOYS", "ts": "1700000000.000100", "text": "b"}
    slack.fail("chat.update", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
    slack.fail("chat.update", 502, "<html>Bad Gateway</html>")
    with pytest.raises(RetryLater) as limited:
        update(actions, slack, params)
    with pytest.raises(RetryLater, match="HTTP 502"):
        update(actions, slack, params)
    assert limited.value.delay == 3.0
    assert [c.api for c in slack.calls] == ["chat.update", "chat.update"]


def test_update_through_a_webhook_is_refused(actions, slack: SlackStandin):
    params = {"channel": "C0DEPLOYS", "ts": "1700000000.000100", "text": "b"}
    with pytest.raises(PermanentFailure, match="incoming webhooks cannot edit"):
        update(actions, slack, params, settings=hook(slack))
    assert slack.calls == []


# -- settings --------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("settings", "message_part"),
    [
        ({}, "set `token` (a bot token) or `webhook_url`"),
        ({"token": ""}, "token is empty"),
        ({"token": "sk-not-slack"}, "token must be a Slack token"),
        ({"webhook_url": "hooks.slack.com/services/x"}, "webhook_url must be an http"),
        ({"token": "xoxb-1", "base_url": "ftp://slack.com/api/"}, "base_url must be an http"),
        ({"token": "xoxb-1", "timeout": 0}, "greater than 0"),
        ({"token": "xoxb-1", "tokn": "x"}, "Extra inputs"),
    ],
)
def test_settings_reject_what_check_should_catch(settings, message_part):
    with pytest.raises(ValidationError) as caught:
        hookwise_slack.SlackSettings.model_validate(settings)
    assert message_part in str(caught.value)


def test_settings_errors_do_not_echo_secrets():
    with pytest.raises(ValidationError) as caught:
        hookwise_slack.SlackSettings.model_validate({"token": "secret-value-123"})
    assert "secret-value-123" not in str(caught.value)


# -- hookwise check ---------------------------------------------------------------------------

RULE = """\
rules:
  - name: notify
    when: {source: artifactory}
    actions:
      - uses: slack.message
        with: {channel: "#deploys", text: hi}
"""


def test_check_positions_a_missing_token(tmp_path: Path):
    extra = "integrations:\n  slack:\n    default_channel: '#deploys'\n"
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    assert (
        "hookwise.yaml:15:5: [error] integrations.slack: set `token` (a bot token) or "
        "`webhook_url` (an incoming webhook)"
    ) in result.stderr, result.stderr


def test_check_positions_bad_urls_without_showing_the_webhook(tmp_path: Path):
    extra = (
        "integrations:\n  slack:\n    webhook_url: ${SLACK_WEBHOOK}\n    base_url: slack.com/api\n"
    )
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root, env={"SLACK_WEBHOOK": "hooks.example/T0/B0/s3cr3t"})
    assert result.returncode != 0
    assert (
        "hookwise.yaml:15:18: [error] integrations.slack.webhook_url: webhook_url must be an "
        "http:// or https:// URL with a host"
    ) in result.stderr, result.stderr
    assert (
        "hookwise.yaml:16:15: [error] integrations.slack.base_url: base_url must be an "
        "http:// or https:// URL with a host"
    ) in result.stderr
    assert "s3cr3t" not in result.stderr


def test_check_accepts_a_token_from_the_environment(tmp_path: Path):
    extra = "integrations:\n  slack:\n    token: ${SLACK_TOKEN}\n"
    root = project(tmp_path, RULE, extra=extra)
    result = run_cli("check", cwd=root, env={"SLACK_TOKEN": TOKEN})
    assert result.returncode == 0, result.stderr
    assert TOKEN not in result.stdout + result.stderr


def test_check_wants_the_integration_for_a_slack_rule(tmp_path: Path):
    root = project(tmp_path, RULE)
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    assert "slack.message needs `integrations.slack`" in result.stderr


def test_check_rejects_a_literal_float_thread_ts(tmp_path: Path):
    rules = RULE.replace("text: hi}", "text: hi, thread_ts: 1700000000.000100}")
    root = project(tmp_path, rules, extra="integrations:\n  slack:\n    token: xoxb-1\n")
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    assert "thread_ts" in result.stderr


def test_check_wants_text_or_blocks_for_an_update_even_with_templated_ts(tmp_path: Path):
    rules = (
        "rules:\n  - name: edit\n    when: {source: artifactory}\n    actions:\n"
        "      - uses: slack.update\n"
        '        with: {channel: C0DEPLOYS, ts: "{{ steps.notify.output.ts }}"}\n'
    )
    root = project(tmp_path, rules, extra="integrations:\n  slack:\n    token: xoxb-1\n")
    result = run_cli("check", cwd=root)
    assert result.returncode != 0
    expected = "rules/main.yaml:6:15: [error] rules[0].actions[0].with: give `text`, `blocks`"
    assert expected in result.stderr, result.stderr


def test_egress_policy_applies_to_slack(actions, slack: SlackStandin):
    ctx = context(web(slack))
    ctx.egress = EgressPolicy()  # loopback not allowed
    spec = actions["slack.message"]
    params = spec.params.model_validate({"channel": "C123", "text": "hi"})
    with pytest.raises(
        PermanentFailure, match=r"Slack chat.postMessage: egress to 127\.0\.0\.1 .* egress\.allow"
    ):
        spec.run(params, ctx)
    assert slack.calls == []


def test_base_url_gets_the_slash_slack_sdk_needs():
    settings = hookwise_slack.SlackSettings.model_validate(
        {"token": TOKEN, "base_url": "https://proxy.example.com/api"}
    )
    assert settings.base_url == "https://proxy.example.com/api/"
