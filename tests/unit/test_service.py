"""`Hookwise`, the service every front end calls: retry, cancel and decide on runs.

In-process over a real SQLite store with the clock in the test's hand; the API and CLI
tests check that they only word what these return.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

import pytest

from hookwise import service as service_module
from hookwise.event import Event, new_id
from hookwise.store import EventQuery
from tests.conftest import Reply, Sink
from tests.inprocess import Harness

pytestmark = pytest.mark.anyio
Make = Callable[..., Awaitable[Harness]]


def posting(url: str, attempts: int = 1) -> str:
    return f"""\
rules:
  - name: deploy
    when: {{source: artifactory}}
    actions:
      - id: notify
        uses: http.post
        with: {{url: "{url}/deploy", json: {{tag: "{{{{ data.tag }}}}"}}}}
        retry: {{attempts: {attempts}, backoff: 10s}}
      - uses: log
        with: {{message: "deployed {{{{ data.tag }}}}"}}
"""


QUEUED = """\
rules:
  - name: deploy
    when: {source: artifactory}
    concurrency: {key: "{{ data.image }}", limit: 1}
    actions:
      - uses: log
        with: {message: "deploy {{ data.tag }}"}
"""
WAITING = """\
rules:
  - name: after-scan
    when: {source: harbor, domain: artifact}
    wait_for:
      when: {source: harbor, domain: scan}
      correlate: "{{ artifact.digest }}"
      timeout: 30m
    actions:
      - uses: log
        with: {message: "deploy {{ artifact.digest }}"}
"""


async def one_run(harness: Harness, event_id: str) -> dict[str, Any]:
    [run] = await harness.runs(event_id)
    return run


async def test_a_dead_run_retried_goes_on_from_the_failed_action_and_keeps_its_history(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(posting(sink.url))
    sink.script(Reply(status=503, body={"error": "deploy service restarting"}))
    event = await harness.emit("docker", "pushed", {"tag": "1.4"})
    await harness.drain()
    dead = await one_run(harness, event)
    assert dead["status"] == "dead" and "503" in dead["error"]

    answer = await harness.service.retry(dead["id"], "alice", "cli")
    assert answer.ok, answer.message
    assert answer.message == f"run {dead['id']} retried by alice; it goes on from where it failed"
    pending = await one_run(harness, event)
    assert pending["status"] == "pending" and pending["error"] is None

    assert await harness.drain() == [dead["id"]]
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert run["output"]["log#2"]["message"] == "deployed 1.4"
    assert [body["tag"] for body in (r.body for r in sink.received)] == ["1.4", "1.4"]
    history = [(h["action"], h["attempt"], h["status"]) for h in run["history"]]
    assert history == [
        ("notify", 1, "retry"),  # a failure that may be retried, as the action said
        ("retry", 0, "retried"),
        ("notify", 1, "succeeded"),
        ("log#2", 1, "succeeded"),
    ]
    retried = run["history"][1]
    assert retried["output"] == {"by": "alice", "via": "cli", "reason": None}
    assert run["attempts"] == 3  # two tries of notify and one of log; the retry is not one


async def test_a_retrying_run_retried_is_due_at_once_instead_of_after_its_backoff(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(posting(sink.url, attempts=3))
    sink.script(Reply(status=503))
    event = await harness.emit("docker", "pushed", {"tag": "2.0"})
    await harness.drain()
    waiting = await one_run(harness, event)
    assert waiting["status"] == "retrying"
    assert await harness.drain() == []  # its backoff (10s) has not passed

    assert (await harness.service.retry(waiting["id"], "bob", "api")).ok
    assert await harness.drain() == [waiting["id"]]
    assert (await one_run(harness, event))["status"] == "succeeded"
    assert len(sink.received) == 2


async def test_only_dead_or_retrying_runs_can_be_retried(harness_for: Make, sink: Sink):
    harness = await harness_for(posting(sink.url))
    event = await harness.emit("docker", "pushed", {"tag": "3.0"})
    await harness.drain()
    done = await one_run(harness, event)
    assert done["status"] == "succeeded"

    refused = await harness.service.retry(done["id"], "alice", "cli")
    assert refused.outcome == "refused"
    assert refused.message == (
        f"run {done['id']} is succeeded, and only dead or retrying runs can be retried; "
        "replay its event instead"
    )
    unknown = await harness.service.retry("01NOSUCHRUN", "alice", "cli")
    assert (unknown.outcome, unknown.message) == ("unknown", "no run 01NOSUCHRUN")
    assert await harness.drain() == []
    assert len(sink.received) == 1


async def test_a_queued_run_cancelled_never_runs_and_says_who_and_why(harness_for: Make):
    harness = await harness_for(QUEUED)
    first = await harness.emit("docker", "pushed", {"image": "api", "tag": "1"})
    second = await harness.emit("docker", "pushed", {"image": "api", "tag": "2"})
    queued = await one_run(harness, second)
    assert queued["status"] == "pending"

    answer = await harness.service.cancel(queued["id"], "carol", "bad build", "api")
    assert answer.ok and answer.message == f"run {queued['id']} cancelled by carol"
    await harness.drain()
    assert (await one_run(harness, first))["status"] == "succeeded"
    cancelled = await one_run(harness, second)
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == "cancelled by carol via api: bad build"
    assert cancelled["attempts"] == 0
    [entry] = cancelled["history"]
    assert (entry["action"], entry["status"]) == ("cancel", "cancelled")
    assert entry["output"] == {"by": "carol", "via": "api", "reason": "bad build"}
    [summary] = [s for s in await harness.service.events(EventQuery()) if s.event.id == second]
    assert summary.status == "stopped"


async def test_a_run_waiting_for_an_event_cancelled_is_not_released_by_it(harness_for: Make):
    harness = await harness_for(WAITING)
    image = {"image": "library/app", "tag": "1.0", "digest": "sha256:abc"}
    push = await harness.emit("artifact", "pushed", {}, image, "harbor")
    waiting = await one_run(harness, push)
    assert waiting["status"] == "waiting_event"

    assert (await harness.service.cancel(waiting["id"], "dave", None, "cli")).ok
    await harness.emit("scan", "completed", {"critical": 0}, image, "harbor")
    assert await harness.drain() == []
    run = await one_run(harness, push)
    assert (run["status"], run["error"]) == ("cancelled", "cancelled by dave via cli")


async def test_only_deliveries_that_add_or_release_runs_wake_a_worker(harness_for: Make):
    """Most deliveries match nothing: they must not cost a claim, nor a child's wake-up."""
    harness = await harness_for(WAITING)
    image = {"image": "library/app", "tag": "1.0", "digest": "sha256:abc"}

    async def accept(domain: str, key: str | None = None) -> tuple[bool, bool]:
        event = Event(new_id(), "harbor", "harbor", domain, "x", None, harness.now, {}, {}, [image])
        plan, awaited = harness.engine.plan(event), harness.engine.awaited(event)
        result = await harness.store.accept(event, key or event.id, 60, plan, awaited)
        return result.duplicate, result.new_work

    assert await accept("artifact", "push") == (False, True)  # a run, waiting
    assert await accept("artifact", "push") == (True, False)  # the same delivery again
    assert await accept("chart") == (False, False)  # no rule for it
    assert await accept("scan") == (False, True)  # releases the waiting run


async def test_finished_and_running_runs_cannot_be_cancelled(
    harness_for: Make, monkeypatch: pytest.MonkeyPatch
):
    harness = await harness_for(QUEUED)
    event = await harness.emit("docker", "pushed", {"image": "api", "tag": "1"})
    [claimed] = await harness.store.claim("other-worker", 1, 60)
    monkeypatch.setattr(service_module, "BUSY_RETRIES", 2)
    monkeypatch.setattr(service_module, "BUSY_PAUSE", 0)
    busy = await harness.service.cancel(claimed.id, "erin", None, "cli")
    assert busy.outcome == "refused"
    assert busy.message == (
        f"run {claimed.id} is running an action now; cancel it once that attempt has ended"
    )
    await harness.runner.execute(claimed)
    assert (await one_run(harness, event))["status"] == "succeeded"

    finished = await harness.service.cancel(claimed.id, "erin", None, "cli")
    assert finished.message == (
        f"run {claimed.id} is succeeded, and finished runs cannot be cancelled"
    )
    assert (await one_run(harness, event))["history"][-1]["action"] == "log#1"


async def test_a_cancelled_run_cannot_be_decided_or_retried(harness_for: Make):
    harness = await harness_for(QUEUED)
    await harness.emit("docker", "pushed", {"image": "api", "tag": "1"})
    second = await harness.emit("docker", "pushed", {"image": "api", "tag": "2"})
    run_id = (await one_run(harness, second))["id"]
    assert (await harness.service.cancel(run_id, "frank", None, "cli")).ok

    decided = await harness.service.decide(run_id, "frank", "approve", None, "cli")
    assert decided.message == f"run {run_id} is cancelled, not waiting for approval"
    retried = await harness.service.retry(run_id, "frank", "cli")
    assert retried.outcome == "refused" and "is cancelled" in retried.message
    again = await harness.service.cancel(run_id, "frank", None, "cli")
    assert again.outcome == "refused"
    assert len((await one_run(harness, second))["history"]) == 1
