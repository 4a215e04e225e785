"""End to end: an Artifactory promotion reaches a real `hookwise serve`, which talks to Slack.

The rule posts "deploying", replies in its thread with the ts from `steps`, then updates the
first message; the stand-in must see exactly those three Web API calls.
"""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from tests.conftest import fixture_bytes
from tests.standins.slack import TOKEN, SlackStandin

RULES = """\
rules:
  - name: docker-promoted-to-slack
    when: {source: artifactory, domain: docker, event_type: promoted}
    actions:
      - id: notify
        uses: slack.message
        with:
          channel: "#deploys"
          text: "Deploying {{ artifact.image }}:{{ artifact.tag }}…"
      - id: detail
        uses: slack.message
        with:
          channel: "{{ steps.notify.output.channel }}"
          thread_ts: "{{ steps.notify.output.ts }}"
          text: "Promoted from {{ artifact.repository }}"
          blocks: []
      - id: done
        uses: slack.update
        with:
          channel: "{{ steps.notify.output.channel }}"
          ts: "{{ steps.notify.output.ts }}"
          text: "Deployed {{ artifact.image }}:{{ artifact.tag }} ✔"
"""


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    standin = SlackStandin()
    yield standin
    standin.close()


def test_promotion_posts_replies_in_thread_and_updates(hookwise_factory, slack: SlackStandin):
    extra = (
        f"integrations:\n  slack:\n    token: ${{SLACK_TOKEN}}\n    base_url: {slack.base_url}\n"
    )
    server = hookwise_factory(RULES, extra=extra)
    server.env["SLACK_TOKEN"] = TOKEN
    server.start()

    response = server.post(fixture_bytes("artifactory/docker.promoted.walkthrough.json"))
    assert response.status_code == 202, response.text
    event_id = response.json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})

    assert run["status"] == "succeeded", run
    post, reply, edit = slack.calls
    assert [c.path for c in slack.calls] == [
        "/api/chat.postMessage",
        "/api/chat.postMessage",
        "/api/chat.update",
    ]
    assert all(c.headers["authorization"] == f"Bearer {TOKEN}" for c in slack.calls)
    parent_ts = slack.messages["C0DEPLOYS"][0]["ts"]

    assert post.body["channel"] == "#deploys"
    assert post.body["text"] == "Deploying helloworld:latest…"
    assert "thread_ts" not in post.body
    fields = [f["text"] for f in post.body["blocks"][1]["fields"]]
    assert fields == [
        "*Event*\nartifactory · docker · promoted",
        "*Repository*\ndocker-local-staging",
        "*Artifact*\n`helloworld:latest`",
        "*Digest*\n`sha256:ee34c5c94b4d`",
    ]

    assert reply.body["channel"] == "C0DEPLOYS"
    assert reply.body["thread_ts"] == parent_ts
    assert reply.body["text"] == "Promoted from docker-local-staging"
    assert "blocks" not in reply.body

    assert edit.body["channel"] == "C0DEPLOYS"
    assert edit.body["ts"] == parent_ts
    assert edit.body["text"] == "Deployed helloworld:latest ✔"

    keys = {c.body["metadata"]["event_payload"]["key"] for c in (post, reply)}
    assert len(keys) == 2  # each action its own idempotency key

    reply_ts = slack.messages["C0DEPLOYS"][1]["ts"]
    assert run["output"] == {
        "notify": {"channel": "C0DEPLOYS", "ts": parent_ts, "thread_ts": None, "via": "web_api"},
        "detail": {
            "channel": "C0DEPLOYS",
            "ts": reply_ts,
            "thread_ts": parent_ts,
            "via": "web_api",
        },
        "done": {"channel": "C0DEPLOYS", "ts": parent_ts},
    }
    assert [h["action"] for h in run["history"]] == ["notify", "detail", "done"]
    assert TOKEN not in server.get(f"/api/events/{event_id}").text
    assert not any(TOKEN in line for line in server.log)


def test_rate_limit_is_retried_after_retry_after(hookwise_factory, slack: SlackStandin):
    slack.fail("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "1"})
    rules = RULES.split("      - id: detail")[0]
    extra = (
        f"integrations:\n  slack:\n    token: ${{SLACK_TOKEN}}\n    base_url: {slack.base_url}\n"
    )
    server = hookwise_factory(rules, extra=extra)
    server.env["SLACK_TOKEN"] = TOKEN
    server.start()

    event_id = server.post(fixture_bytes("artifactory/docker.promoted.walkthrough.json")).json()[
        "event_id"
    ]
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})

    assert run["status"] == "succeeded", run
    first, second = run["history"]
    assert first["status"] == "retry"
    assert first["error"] == (
        "Slack chat.postMessage to #deploys was rate-limited (HTTP 429); retrying after 1s"
    )
    assert second["status"] == "succeeded"
    assert [c.api for c in slack.calls] == ["chat.postMessage", "chat.postMessage"]
