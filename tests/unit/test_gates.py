"""`hookwise.flow.gates`: what holds a run before its actions, `wait_for` and `approval`.

In-process over a real SQLite store with the clock in the test's hand; approvals talk to
the Slack stand-in (tests/standins/slack.py) over loopback HTTP, decisions come through
the service as the API, the CLI and Slack record them.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable, Iterator
from typing import Any

import pytest

from tests.conftest import Sink
from tests.inprocess import START, Harness
from tests.standins.slack import TOKEN, Call, SlackStandin

pytestmark = pytest.mark.anyio
Make = Callable[..., Awaitable[Harness]]


async def one_run(harness: Harness, event_id: str) -> dict[str, Any]:
    [run] = await harness.runs(event_id)
    return run


def history(run: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(h["action"], h["attempt"], h["status"]) for h in run["history"]]


async def due_at(harness: Harness, run_id: str) -> float:
    record = await harness.store.get_run(run_id)
    assert record is not None
    return record.next_attempt_at


# -- wait_for ------------------------------------------------------------------------------

WAIT_FOR = """
rules:
  - name: deploy-when-scanned
    when: {source: harbor, domain: artifact, event_type: pushed}
    wait_for:
      when: {source: harbor, domain: [scan, rescan]}
      correlate: "{{ artifact.digest }}"
      timeout: 10m
      if: IF
    actions:
      - uses: log
        with: {message: "deploy {{ data.version }} scanned by {{ awaited.data.scanner }}"}
"""


def waiting(condition: str = "awaited.data.version == data.version") -> str:
    return WAIT_FOR.replace("IF", json.dumps(condition))


def image(digest: str = "sha256:aaa") -> dict[str, Any]:
    return {"image": "library/app", "tag": "1.0", "digest": digest}


async def test_a_waiting_run_is_due_at_its_deadline_and_expires_saying_what_it_waited_for(
    harness_for: Make,
):
    harness = await harness_for(waiting())
    push = await harness.emit("artifact", "pushed", {"version": "1"}, image(), "harbor")
    run_id = (await one_run(harness, push))["id"]
    assert await due_at(harness, run_id) == START + 600

    harness.advance(599.5)
    assert await harness.drain() == []
    harness.advance(0.5)
    assert await harness.drain() == [run_id]
    run = await one_run(harness, push)
    reason = (
        "wait_for: no event matching harbor/scan,rescan/* with the same key arrived within 600s"
    )
    assert (run["status"], run["error"]) == ("expired", reason)
    assert history(run) == [("wait_for", 0, "expired")]
    assert (run["history"][0]["output"], run["history"][0]["error"]) == (None, reason)
    assert (run["attempts"], run["output"], run["awaited_event"]) == (0, {}, None)


async def test_the_awaited_event_is_recorded_then_the_actions_run_with_it(harness_for: Make):
    harness = await harness_for(waiting())
    push = await harness.emit("artifact", "pushed", {"version": "2"}, image(), "harbor")
    harness.advance(30)
    scan = await harness.emit(
        "rescan", "completed", {"version": "2", "scanner": "Trivy"}, image(), "harbor"
    )
    run_id = (await one_run(harness, push))["id"]
    # The gate passes first (the run queues as pending), then the actions run.
    assert await harness.drain() == [run_id, run_id]

    run = await one_run(harness, push)
    assert run["status"] == "succeeded"
    assert history(run) == [("wait_for", 0, "arrived"), ("log#1", 1, "succeeded")]
    assert run["history"][0]["output"] == {"event": scan}
    assert run["output"] == {"log#1": {"message": "deploy 2 scanned by Trivy"}}
    assert run["attempts"] == 1  # the gate is history, not an attempt


async def test_an_if_that_is_false_skips_the_run_keeping_the_awaited_event(harness_for: Make):
    harness = await harness_for(waiting())
    push = await harness.emit("artifact", "pushed", {"version": "3"}, image(), "harbor")
    scan = await harness.emit("scan", "completed", {"version": "2"}, image(), "harbor")
    await harness.drain()

    run = await one_run(harness, push)
    reason = (
        f"wait_for: event {scan} arrived, but if 'awaited.data.version == data.version' is false"
    )
    assert (run["status"], run["error"]) == ("skipped", reason)
    assert history(run) == [("wait_for", 0, "skipped")]
    assert run["history"][0]["output"] == {"event": scan}
    assert (run["attempts"], run["output"]) == (0, {})


async def test_an_if_that_cannot_be_evaluated_counts_as_false_with_the_reason(
    harness_for: Make,
):
    harness = await harness_for(waiting("awaited.data.report.critical == 0"))
    push = await harness.emit("artifact", "pushed", {"version": "4"}, image(), "harbor")
    scan = await harness.emit("scan", "completed", {"critical": 0}, image(), "harbor")
    await harness.drain()

    run = await one_run(harness, push)
    assert run["status"] == "skipped"
    assert run["error"].startswith(
        f"wait_for: event {scan} arrived, but if 'awaited.data.report.critical == 0' could not "
        "be evaluated: if: template 'awaited.data.report.critical == 0' failed: "
        "'dict object' has no attribute 'report'"
    )
    assert run["output"] == {}


# -- approval --------------------------------------------------------------------------------

APPROVAL = """
rules:
  - name: deploy-prod
    when: {source: artifactory, domain: docker}
    approval:
      channel: CHANNEL
      approvers: [U0ALICE, U0BOB, U0CAROL]
      required: REQUIRED
      timeout: 2h
      message: "Deploy {{ data.image }}:{{ data.tag }} to prod?"
    actions:
      - id: deploy
        uses: http.post
        with:
          url: "SINK/deploy"
          headers: {Authorization: "Bearer ${DEPLOY_TOKEN}"}
          json: {tag: "{{ data.tag }}"}
"""
DEPLOY_TOKEN = "dpl-approval-5d0c3e7a"


@pytest.fixture
def slack() -> Iterator[SlackStandin]:
    standin = SlackStandin()
    yield standin
    standin.close()


def slack_config(slack: SlackStandin) -> str:
    return f"integrations:\n  slack:\n    token: {TOKEN}\n    base_url: {slack.base_url}\n"


@pytest.fixture
def approving(
    harness_for: Make, slack: SlackStandin, sink: Sink, monkeypatch: pytest.MonkeyPatch
) -> Callable[..., Awaitable[Harness]]:
    """`await approving(required=1, channel="C0DEPLOYS")`: a harness with an approval rule."""
    monkeypatch.setenv("DEPLOY_TOKEN", DEPLOY_TOKEN)

    async def make(required: int = 1, channel: str = "C0DEPLOYS", text: str = APPROVAL) -> Harness:
        rules = text.replace("SINK", sink.url).replace("CHANNEL", channel)
        return await harness_for(rules.replace("REQUIRED", str(required)), slack_config(slack))

    return make


def deploy(tag: str = "1.0") -> tuple[str, str, dict[str, Any]]:
    return "docker", "promoted", {"image": "api", "tag": tag}


def shown(call: Call) -> str:
    """What a person reads in a posted or updated message: its text and its sections."""
    blocks = call.body.get("blocks") or []
    return "\n".join([call.body["text"], *(b["text"]["text"] for b in blocks if "text" in b)])


def buttons(call: Call) -> list[tuple[str, str]]:
    blocks = call.body.get("blocks") or []
    return [(e["action_id"], e["value"]) for b in blocks if b["type"] == "actions"
            for e in b["elements"]]  # fmt: skip


async def requested(harness: Harness, event_id: str) -> str:
    """Let the worker post the request; the run's id."""
    run_id = (await one_run(harness, event_id))["id"]
    assert await harness.drain() == [run_id]
    assert (await one_run(harness, event_id))["status"] == "waiting_approval"
    return run_id


async def test_the_request_shows_the_rendered_parameters_and_the_run_waits_until_timeout(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving()
    event = await harness.emit(*deploy("1.4"))
    run_id = await requested(harness, event)

    [post] = slack.calls_to("chat.postMessage")
    assert post.body["channel"] == "C0DEPLOYS"
    assert post.body["text"] == "Approval needed: Deploy api:1.4 to prod?"
    text = shown(post)
    assert '"tag": "1.4"' in text and f"{sink.url}/deploy" in text
    assert "Bearer ${DEPLOY_TOKEN}" in text and DEPLOY_TOKEN not in text
    assert "0 of 1 approvals" in text
    assert buttons(post) == [("hookwise_approve", run_id), ("hookwise_reject", run_id)]
    run = await one_run(harness, event)
    assert history(run) == [("approval", 0, "requested")]
    ts = slack.messages["C0DEPLOYS"][0]["ts"]
    assert run["history"][0]["output"] == {"channel": "C0DEPLOYS", "ts": ts}
    assert await due_at(harness, run_id) == START + 7200
    assert (run["attempts"], sink.received) == (0, [])
    harness.advance(7199)
    assert await harness.drain() == []  # nobody decided: nothing to do before the deadline


async def test_an_approval_lets_the_actions_run_and_marks_the_request_approved(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving()
    event = await harness.emit(*deploy("1.5"))
    run_id = await requested(harness, event)
    harness.advance(60)

    answer = await harness.service.decide(run_id, "U0ALICE", "approve", "looks good", "cli")
    assert answer.message == f"approval of run {run_id} by U0ALICE recorded"
    assert await harness.drain() == [run_id, run_id]
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert history(run) == [("approval", 0, "requested"), ("approval", 0, "approved"),
                            ("deploy", 1, "succeeded")]  # fmt: skip
    [decision] = run["history"][1]["output"]
    assert {k: decision[k] for k in ("by", "decision", "reason", "via")} == {
        "by": "U0ALICE", "decision": "approve", "reason": "looks good", "via": "cli"
    }  # fmt: skip
    assert [r.body for r in sink.received] == [{"tag": "1.5"}]
    assert sink.received[0].headers["authorization"] == f"Bearer {DEPLOY_TOKEN}"
    assert (await harness.store.get_run(run_id)).flow["approved"] == ["U0ALICE"]
    [update] = slack.calls_to("chat.update")
    assert update.body["text"] == "Deploy api:1.5 to prod? (Approved)"
    assert "approved by U0ALICE at " in shown(update) and "looks good" in shown(update)
    assert buttons(update) == []


async def test_a_rejection_ends_the_run_with_who_and_why(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving()
    event = await harness.emit(*deploy("1.6"))
    run_id = await requested(harness, event)

    await harness.service.decide(run_id, "U0BOB", "reject", "not on a Friday", "api")
    assert await harness.drain() == [run_id]
    run = await one_run(harness, event)
    assert (run["status"], run["error"]) == (
        "rejected", "approval: rejected by U0BOB via api: not on a Friday"
    )  # fmt: skip
    assert history(run)[-1] == ("approval", 0, "rejected")
    assert [d["by"] for d in run["history"][-1]["output"]] == ["U0BOB"]
    assert (run["attempts"], sink.received) == (0, [])
    [update] = slack.calls_to("chat.update")
    assert update.body["text"] == "Deploy api:1.6 to prod? (Rejected)"
    assert buttons(update) == []
    harness.advance(7200)
    assert await harness.drain() == []


async def test_one_rejection_outweighs_enough_approvals_decided_before_the_worker_looks(
    approving: Make, sink: Sink
):
    harness = await approving(required=1)
    event = await harness.emit(*deploy("1.7"))
    run_id = await requested(harness, event)

    await harness.service.decide(run_id, "U0ALICE", "approve", None, "api")
    await harness.service.decide(run_id, "U0CAROL", "reject", None, "slack")
    await harness.drain()
    run = await one_run(harness, event)
    assert (run["status"], run["error"]) == ("rejected", "approval: rejected by U0CAROL via slack")
    assert sink.received == []


async def test_required_approvals_come_from_distinct_people(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving(required=2)
    event = await harness.emit(*deploy("1.8"))
    run_id = await requested(harness, event)

    await harness.service.decide(run_id, "U0ALICE", "approve", None, "api")
    assert await harness.drain() == [run_id]
    assert (await one_run(harness, event))["status"] == "waiting_approval"
    [update] = slack.calls_to("chat.update")
    assert "approved by U0ALICE" in shown(update) and "1 of 2 approvals" in shown(update)
    assert buttons(update) == [("hookwise_approve", run_id), ("hookwise_reject", run_id)]

    again = await harness.service.decide(run_id, "U0ALICE", "approve", None, "slack")
    assert again.message == f"U0ALICE already decided on run {run_id}; one decision per person"
    assert await harness.drain() == []  # a repeated decision wakes nothing
    assert sink.received == []

    await harness.service.decide(run_id, "U0CAROL", "approve", None, "api")
    assert await harness.drain() == [run_id, run_id]
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert (await harness.store.get_run(run_id)).flow["approved"] == ["U0ALICE", "U0CAROL"]
    assert len(sink.received) == 1


async def test_too_few_approvals_by_the_timeout_expire_the_run(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving(required=2)
    event = await harness.emit(*deploy("1.9"))
    run_id = await requested(harness, event)
    await harness.service.decide(run_id, "U0BOB", "approve", None, "api")
    await harness.drain()

    harness.advance(7200)
    assert await harness.drain() == [run_id]
    run = await one_run(harness, event)
    assert (run["status"], run["error"]) == ("expired", "approval: 1 of 2 approvals within 7200s")
    assert history(run)[-1] == ("approval", 0, "expired")
    assert (run["attempts"], sink.received) == (0, [])
    last = slack.calls_to("chat.update")[-1]
    assert last.body["text"] == "Deploy api:1.9 to prod? (Expired)"
    assert buttons(last) == []


async def test_a_request_slack_cannot_take_yet_is_decidable_and_posted_later(
    approving: Make, slack: SlackStandin
):
    harness = await approving()
    slack.fail("chat.postMessage", 429, {"ok": False, "error": "ratelimited"}, {"Retry-After": "3"})
    event = await harness.emit(*deploy("2.0"))
    run_id = (await one_run(harness, event))["id"]
    assert await harness.drain() == [run_id]

    run = await one_run(harness, event)
    unposted = (
        "approval: the request could not be posted to Slack: Slack chat.postMessage to "
        "C0DEPLOYS was rate-limited (HTTP 429); retrying after 3s. Decide with "
        "`hookwise approve|reject`, the API or the console"
    )
    assert (run["status"], run["error"]) == ("waiting_approval", unposted)
    assert history(run) == [("approval", 0, "requested")]
    assert run["history"][0]["output"] == {"channel": "C0DEPLOYS", "ts": None}
    assert run["history"][0]["error"] == unposted
    assert await due_at(harness, run_id) == START + 30  # asked again, well before the timeout
    harness.advance(29)
    assert await harness.drain() == []

    harness.advance(1)
    assert await harness.drain() == [run_id]
    run = await one_run(harness, event)
    assert (run["status"], run["error"]) == ("waiting_approval", None)
    assert history(run) == [("approval", 0, "requested"), ("approval", 0, "posted")]
    assert len(slack.calls_to("chat.postMessage")) == 2
    assert len(slack.messages["C0DEPLOYS"]) == 1
    assert await due_at(harness, run_id) == START + 7200  # the timeout counts from the gate


async def test_a_request_slack_refuses_for_good_waits_for_a_decision_made_elsewhere(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving(channel="C0RELEASES")  # the app is not a member
    event = await harness.emit(*deploy("2.1"))
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "waiting_approval"
    assert run["error"] == (
        "approval: the request could not be posted to Slack: Slack chat.postMessage to "
        "C0RELEASES failed (not_in_channel): the app is not a member of C0RELEASES: invite it "
        "(/invite @app), or grant the chat:write.public scope to post in public channels "
        "without joining. Decide with `hookwise approve|reject`, the API or the console"
    )
    assert history(run) == [("approval", 0, "requested")]
    assert await due_at(harness, run["id"]) == START + 7200  # not asked again: Slack said no
    assert len(slack.calls_to("chat.postMessage")) == 1

    answer = await harness.service.decide(run["id"], "alice", "approve", None, "cli")
    assert answer.ok, answer.message
    await harness.drain()
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert history(run)[1] == ("approval", 0, "approved")
    assert run["history"][1]["output"][0]["by"] == "alice"
    assert len(sink.received) == 1
    assert slack.calls_to("chat.update") == []  # nothing was posted, so nothing to update


async def test_a_request_that_cannot_be_updated_does_not_hold_up_the_decision(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving()
    event = await harness.emit(*deploy("2.2"))
    run_id = await requested(harness, event)
    slack.fail("chat.update", 200, {"ok": False, "error": "message_not_found"})

    await harness.service.decide(run_id, "U0ALICE", "approve", None, "api")
    await harness.drain()
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert len(slack.calls_to("chat.update")) == 1
    assert len(sink.received) == 1


PARTLY_RENDERABLE = """
rules:
  - name: deploy-prod
    when: {source: artifactory, domain: docker}
    approval:
      channel: C0DEPLOYS
      approvers: [U0ALICE]
      message: "Deploy {{ data.release.name }}?"
    actions:
      - id: build
        uses: http.post
        with: {url: "SINK/build", json: {tag: "{{ data.tag }}"}}
      - uses: http.post
        with: {url: "SINK/deploy", json: {build: "{{ steps.build.output.body.number }}"}}
"""


async def test_a_request_is_posted_even_when_its_templates_cannot_be_rendered_yet(
    approving: Make, slack: SlackStandin
):
    harness = await approving(text=PARTLY_RENDERABLE)
    event = await harness.emit(*deploy("2.3"))
    await requested(harness, event)

    [post] = slack.calls_to("chat.postMessage")
    text = shown(post)
    assert post.body["text"].startswith(
        "Approval needed: (approval.message could not be rendered: rule deploy-prod, "
        "approval.message: template 'Deploy {{ data.release.name }}?' failed: "
    )
    assert '"tag": "2.3"' in text  # the first action, rendered for this event
    assert '"build": "{{ steps.build.output.body.number }}"' in text  # the second, as written


WAIT_THEN_APPROVE = """
rules:
  - name: deploy-when-scanned
    when: {source: harbor, domain: artifact}
    wait_for:
      when: {source: harbor, domain: scan}
      correlate: "{{ artifact.digest }}"
      timeout: 30m
    approval:
      channel: C0DEPLOYS
      approvers: [U0ALICE]
      timeout: 1h
      message: "Deploy {{ artifact.digest }}, scanned by {{ awaited.data.scanner }}?"
    actions:
      - uses: http.post
        with: {url: "SINK/deploy", json: {digest: "{{ artifact.digest }}"}}
"""


async def test_with_wait_for_the_request_is_posted_once_the_awaited_event_arrived(
    approving: Make, slack: SlackStandin, sink: Sink
):
    harness = await approving(text=WAIT_THEN_APPROVE)
    push = await harness.emit("artifact", "pushed", {}, image("sha256:bbb"), "harbor")
    harness.advance(600)
    assert await harness.drain() == []
    assert slack.calls == []

    scan = await harness.emit(
        "scan", "completed", {"scanner": "Trivy"}, image("sha256:bbb"), "harbor"
    )
    run_id = (await one_run(harness, push))["id"]
    assert await harness.drain() == [run_id]  # one pass: through wait_for, up to approval
    run = await one_run(harness, push)
    assert (run["status"], run["awaited_event"]) == ("waiting_approval", scan)
    assert history(run)[-1] == ("approval", 0, "requested")
    [post] = slack.calls_to("chat.postMessage")
    assert post.body["text"] == "Approval needed: Deploy sha256:bbb, scanned by Trivy?"
    assert await due_at(harness, run_id) == START + 600 + 3600
    assert sink.received == []

    await harness.service.decide(run_id, "U0ALICE", "approve", None, "api")
    await harness.drain()
    assert (await one_run(harness, push))["status"] == "succeeded"
    assert [r.body for r in sink.received] == [{"digest": "sha256:bbb"}]


async def test_with_wait_for_the_arrival_stays_in_the_history_before_the_request(
    approving: Make, slack: SlackStandin
):
    harness = await approving(text=WAIT_THEN_APPROVE)
    push = await harness.emit("artifact", "pushed", {}, image("sha256:ccc"), "harbor")
    scan = await harness.emit(
        "scan", "completed", {"scanner": "Grype"}, image("sha256:ccc"), "harbor"
    )
    await harness.drain()

    run = await one_run(harness, push)
    assert run["status"] == "waiting_approval"
    assert len(slack.calls_to("chat.postMessage")) == 1
    assert history(run) == [("wait_for", 0, "arrived"), ("approval", 0, "requested")]
    assert run["history"][0]["output"] == {"event": scan}


async def test_with_public_url_the_request_links_to_the_runs_console_page(
    harness_for: Make, slack: SlackStandin, sink: Sink, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEPLOY_TOKEN", DEPLOY_TOKEN)
    rules = APPROVAL.replace("SINK", sink.url).replace("CHANNEL", "C0DEPLOYS")
    config = slack_config(slack) + "public_url: https://hookwise.example.com/\n"
    harness = await harness_for(rules.replace("REQUIRED", "1"), config)
    event = await harness.emit(*deploy("3.0"))
    run_id = await requested(harness, event)

    [post] = slack.calls_to("chat.postMessage")
    context = post.body["blocks"][-1]["elements"][0]["text"]
    assert context.endswith(f"<https://hookwise.example.com/ui/runs/{run_id}|run {run_id}>")


NOTIFIED = """
rules:
  - name: deploy-notified
    when: {source: artifactory, domain: docker}
    notify: {slack: {channel: C0DEPLOYS}}
    actions:
      - uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.tag }}"}}
"""


async def test_a_status_message_slack_never_took_is_said_to_be_not_posted(
    harness_for: Make, slack: SlackStandin, sink: Sink, caplog: pytest.LogCaptureFixture
):
    harness = await harness_for(NOTIFIED.replace("SINK", sink.url), slack_config(slack))
    slack.fail("chat.postMessage", 200, {"ok": False, "error": "channel_not_found"})
    event = await harness.emit(*deploy("4.0"))
    await harness.drain()
    assert (await one_run(harness, event))["status"] == "succeeded"  # Slack never fails a run
    said = [r.getMessage() for r in caplog.records if r.name == "hookwise.notify"]
    assert said and all("the notify message could not be posted: " in line for line in said)
    assert not any("could not be updated" in line for line in said)
