"""Approvals and /hookwise through a real `hookwise serve`, with a local Slack.

The tests play Slack's part: they sign requests to /slack/interactions and
/slack/commands the way Slack does, and the Slack stand-in records what hookwise
posts and updates. Each flow is stopped halfway by a restart of the server.
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import httpx
import pytest

from tests.conftest import Hookwise, Sink, fixture_bytes, run_cli, wait_until
from tests.standins.slack import TOKEN, SlackStandin, click, command, signed_headers

SIGNING_SECRET = "8f742231b10e8888abcd99yyyzzz85a5"
PROMOTED = fixture_bytes("artifactory/docker.promoted.json")

RULES = """
rules:
  - name: deploy-prod
    when: {{source: artifactory, domain: docker, event_type: promoted}}
    approval:
      channel: C0DEPLOYS
      approvers: [U0ALICE, U0BOB, S0LEADS]
      required: {required}
      timeout: 2h
      message: "Redeploy {{{{ artifact.image }}}}:{{{{ artifact.tag }}}} to prod?"
    notify: {{slack: {{channel: C0DEPLOYS}}}}
    actions:
      - uses: http.post
        with:
          url: {sink}/deploy
          json: {{tag: "{{{{ artifact.tag }}}}"}}
"""


def slack_config(standin: SlackStandin) -> str:
    return f"""integrations:
  slack:
    token: {TOKEN}
    base_url: {standin.base_url}
    signing_secret: {SIGNING_SECRET}
    operators: [U0OPS, U0ALICE]
"""


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    standin = SlackStandin()
    standin.groups["S0LEADS"] = ["U0CAROL"]
    yield standin
    standin.close()


@pytest.fixture
def approvals(
    hookwise_factory: Callable[..., Hookwise], slack: SlackStandin, sink: Sink
) -> Callable[[int], Hookwise]:
    def start(required: int = 1) -> Hookwise:
        rules = RULES.format(required=required, sink=sink.url)
        return hookwise_factory(rules, extra=slack_config(slack)).start()

    return start


def to_slack(server: Hookwise, path: str, body: bytes, **sign: Any) -> httpx.Response:
    secret = sign.pop("secret", SIGNING_SECRET)
    headers = signed_headers(secret, body, **sign)
    return httpx.post(f"{server.url}{path}", content=body, headers=headers, timeout=10)


def requested(slack: SlackStandin) -> tuple[str, dict[str, Any]]:
    """The run id on the approval request's buttons, and the message itself."""

    def find() -> tuple[str, dict[str, Any]] | None:
        for message in slack.messages["C0DEPLOYS"]:
            for block in message.get("blocks") or []:
                if block["type"] == "actions":
                    return block["elements"][0]["value"], message
        return None

    return wait_until(find)


def run_of(server: Hookwise, run_id: str) -> dict[str, Any]:
    response = server.get(f"/api/runs/{run_id}")
    assert response.status_code == 200, response.text
    return response.json()["run"]


def text_of(message: dict[str, Any]) -> str:
    """Everything a person reads in the message: its text and every block's text."""
    texts = [message.get("text", "")]
    for block in message.get("blocks") or []:
        texts.append((block.get("text") or {}).get("text", ""))
        texts += [
            e.get("text", "") for e in block.get("elements", []) if block["type"] == "context"
        ]
    return "\n".join(texts)


def test_approval_by_a_listed_approver_survives_a_restart_and_runs_once(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(1)
    assert server.post(PROMOTED).status_code == 202
    run_id, message = requested(slack)
    assert "Approval needed" in message["text"]
    shown = text_of(message)
    tag = json.loads(PROMOTED)["data"]["tag"]
    assert "to prod?" in shown and f'"tag": "{tag}"' in shown  # the rendered parameters
    assert run_of(server, run_id)["status"] == "waiting_approval"

    forged = to_slack(
        server,
        "/slack/interactions",
        click(run_id, "U0ALICE", "hookwise_approve"),
        secret="not-the-signing-secret",
    )
    assert forged.status_code == 401 and "X-Slack-Signature" in forged.json()["error"]
    stale = to_slack(
        server,
        "/slack/interactions",
        click(run_id, "U0ALICE", "hookwise_approve"),
        timestamp=time.time() - 600,
    )
    assert stale.status_code == 401 and "old" in stale.json()["error"]
    unsigned = httpx.post(
        f"{server.url}/slack/interactions", content=click(run_id, "U0ALICE", "hookwise_approve")
    )
    assert unsigned.status_code == 401
    outsider = to_slack(
        server, "/slack/interactions", click(run_id, "U0MALLORY", "hookwise_approve")
    )
    assert outsider.status_code == 200
    refusal = wait_until(lambda: [e for e in slack.ephemerals if e["user"] == "U0MALLORY"])
    assert "not an approver" in refusal[0]["text"]
    assert run_of(server, run_id)["decisions"] == []

    server.stop()
    server.start()  # halfway: the run waits in the store, not in memory
    assert run_of(server, run_id)["status"] == "waiting_approval"
    assert sink.received == []

    approved = to_slack(server, "/slack/interactions", click(run_id, "U0ALICE", "hookwise_approve"))
    assert approved.status_code == 200
    wait_until(lambda: run_of(server, run_id)["status"] == "succeeded")
    assert [r.body for r in sink.received] == [{"tag": json.loads(PROMOTED)["data"]["tag"]}]
    run = run_of(server, run_id)
    assert [(d["by"], d["decision"], d["via"]) for d in run["decisions"]] == [
        ("U0ALICE", "approve", "slack")
    ]
    assert any(h["action"] == "approval" and h["status"] == "approved" for h in run["history"])
    request = next(m for m in slack.messages["C0DEPLOYS"] if m["ts"] == message["ts"])
    assert "approved by <@U0ALICE>" in text_of(request)
    assert all(b["type"] != "actions" for b in request["blocks"])  # no buttons once decided
    again = to_slack(server, "/slack/interactions", click(run_id, "U0BOB", "hookwise_approve"))
    assert again.status_code == 200
    late = wait_until(lambda: [e for e in slack.ephemerals if e["user"] == "U0BOB"])
    assert "not waiting for approval" in late[0]["text"]
    assert len(sink.received) == 1


def test_two_distinct_approvers_and_group_members_count_once_each(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(2)
    server.post(PROMOTED)
    run_id, _ = requested(slack)
    for _ in range(2):  # the same person twice is one approval
        to_slack(server, "/slack/interactions", click(run_id, "U0CAROL", "hookwise_approve"))
    wait_until(lambda: len(run_of(server, run_id)["decisions"]) == 1)
    assert "already decided" in wait_until(lambda: slack.ephemerals)[0]["text"]
    assert run_of(server, run_id)["status"] == "waiting_approval"
    to_slack(server, "/slack/interactions", click(run_id, "U0BOB", "hookwise_approve"))
    wait_until(lambda: run_of(server, run_id)["status"] == "succeeded")
    assert len(sink.received) == 1


def test_rejection_from_the_api_stops_the_run_and_updates_the_message(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(1)
    server.post(PROMOTED)
    run_id, message = requested(slack)
    bad = httpx.post(f"{server.url}/api/runs/{run_id}/reject", json={"by": 7, "reason": "no"})
    assert (bad.status_code, bad.json()["reason"]) == (400, "bad_request")
    assert bad.json()["error"].startswith("by: ")
    answer = httpx.post(
        f"{server.url}/api/runs/{run_id}/reject", json={"by": "alice", "reason": "freeze week"}
    )
    assert answer.status_code == 202
    wait_until(lambda: run_of(server, run_id)["status"] == "rejected")
    run = run_of(server, run_id)
    assert run["error"] == "approval: rejected by alice via api: freeze week"
    request = next(m for m in slack.messages["C0DEPLOYS"] if m["ts"] == message["ts"])
    assert "rejected by alice" in text_of(request) and "freeze week" in text_of(request)
    assert sink.received == []
    twice = httpx.post(f"{server.url}/api/runs/{run_id}/approve", json={"by": "bob"})
    assert twice.status_code == 409 and "rejected" in twice.json()["error"]


def test_notify_message_follows_the_run_and_threads_the_steps(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(1)
    event_id = server.post(PROMOTED).json()["event_id"]
    run_id, _ = requested(slack)
    notice = wait_until(
        lambda: [
            m
            for m in slack.messages["C0DEPLOYS"]
            if "deploy-prod" in m.get("text", "") and "Approval" not in m["text"]
        ]
    )[0]
    assert "waiting approval" in notice["text"]
    httpx.post(f"{server.url}/api/runs/{run_id}/approve", json={"by": "U0ALICE"})
    wait_until(
        lambda: (
            "succeeded"
            in next(m for m in slack.messages["C0DEPLOYS"] if m["ts"] == notice["ts"])["text"]
        )
    )
    replies = [m for m in slack.messages["C0DEPLOYS"] if m.get("thread_ts") == notice["ts"]]
    assert [r["text"] for r in replies] == ["approval: requested", "approval: approved"]
    assert len([m for m in slack.messages["C0DEPLOYS"] if "thread_ts" not in m]) == 2
    assert server.event(event_id)["runs"][0]["status"] == "succeeded"


def test_slash_command_answers_privately_and_guards_changes(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(1)
    event_id = server.post(PROMOTED).json()["event_id"]
    run_id, _ = requested(slack)

    def ask(text: str, user: str = "U0ALICE") -> dict[str, Any]:
        response = to_slack(server, "/slack/commands", command(text, user))
        assert response.status_code == 200, response.text
        answer = response.json()
        assert answer["response_type"] == "ephemeral"
        return answer

    assert "/hookwise status" in ask("help")["text"]
    status = ask("status")["text"]
    assert event_id in status and run_id in status  # recent event, run waiting for approval
    assert "deploy-prod" in ask("rules")["text"]
    assert "waiting_approval" in ask(f"show {event_id}")["text"]
    assert "limited to the users" in ask(f"replay {event_id}", user="U0BOB")["text"]
    assert "Unknown command" in ask("deploy everything")["text"]
    forged = to_slack(server, "/slack/commands", command("status", "U0ALICE"), secret="x")
    assert forged.status_code == 401
    assert "not an approver" in ask(f"approve {run_id}", user="U0OPS")["text"]
    assert "recorded" in ask(f"approve {run_id}")["text"]
    wait_until(lambda: run_of(server, run_id)["status"] == "succeeded")
    assert len(sink.received) == 1


def test_cli_decisions_reach_a_stopped_service_and_refuse_the_wrong_run(
    approvals: Callable[[int], Hookwise], slack: SlackStandin, sink: Sink
):
    server = approvals(1)
    server.post(PROMOTED)
    run_id, message = requested(slack)
    server.stop()
    unknown = run_cli("approve", "01NOSUCHRUN", cwd=server.root)
    assert unknown.returncode == 1
    assert "no run id begins with 01NOSUCHRUN" in unknown.stderr
    rejected = run_cli("reject", run_id, "--reason", "freeze week", "--by", "bob", cwd=server.root)
    assert rejected.returncode == 0, rejected.stderr
    assert f"rejection of run {run_id} by bob recorded" in rejected.stdout
    server.start()
    wait_until(lambda: run_of(server, run_id)["status"] == "rejected")
    [decision] = run_of(server, run_id)["decisions"]
    assert (decision["by"], decision["via"], decision["reason"]) == ("bob", "cli", "freeze week")
    request = next(m for m in slack.messages["C0DEPLOYS"] if m["ts"] == message["ts"])
    assert "rejected by bob" in text_of(request)
    assert sink.received == []
