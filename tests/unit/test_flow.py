"""Flow control with the clock in the test's hand: debounce, throttle, concurrency, wait_for.

The engine, store and runner run in-process on a real SQLite store; `clock.now` is
moved by the test, so a 30-minute timeout takes no time at all.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Any

import pytest

from hookwise.store import EventQuery
from tests.cli import invoke
from tests.conftest import project
from tests.inprocess import Harness

pytestmark = pytest.mark.anyio


@pytest.fixture
async def flow(harness_for: Callable[..., Awaitable[Harness]], request: pytest.FixtureRequest):
    rules, extra = request.param if isinstance(request.param, tuple) else (request.param, "")
    return await harness_for(rules, extra)


def promoted(tag: str, image: str = "team/api") -> dict[str, Any]:
    return {"image_name": image, "tag": tag, "repo_key": "docker-prod"}


DEBOUNCE = """
rules:
  - name: redeploy
    when: {source: artifactory, domain: docker, event_type: promoted}
    debounce: {key: "{{ data.image_name }}", window: 30s, max_wait: 5m}
    actions:
      - uses: log
        with:
          message: "{{ events | map(attribute='data.tag') | join(',') }} last={{ data.tag }}"
"""


@pytest.mark.parametrize("flow", [DEBOUNCE], indirect=True)
async def test_two_promotions_two_seconds_apart_cause_one_redeploy_seeing_both(flow: Harness):
    first = await flow.emit("docker", "promoted", promoted("1.0"))
    other = await flow.emit("docker", "promoted", promoted("9.9", image="team/web"))
    flow.advance(2)
    second = await flow.emit("docker", "promoted", promoted("1.1"))
    assert await flow.drain() == []  # both batches are still gathering
    [batch] = await flow.runs(first)
    assert batch["status"] == "debouncing"
    assert [r["id"] for r in await flow.runs(second)] == [batch["id"]]
    assert batch["events"] == [first, second]

    flow.advance(29)  # 31 s after the first, 29 s after the second: not quiet long enough
    assert await flow.drain() == [(await flow.runs(other))[0]["id"]]
    flow.advance(1.5)
    assert await flow.drain() == [batch["id"]]
    [done] = await flow.runs(second)
    assert done["status"] == "succeeded"
    assert done["output"]["log#1"]["message"] == "1.0,1.1 last=1.1"
    assert (await flow.runs(other))[0]["output"]["log#1"]["message"] == "9.9 last=9.9"


@pytest.mark.parametrize("flow", [DEBOUNCE], indirect=True)
async def test_a_steady_stream_is_cut_at_max_wait(flow: Harness):
    first = await flow.emit("docker", "promoted", promoted("0"))
    for tag in range(1, 20):
        flow.advance(20)  # never 30 s quiet
        await flow.drain()
        if (await flow.runs(first))[0]["status"] != "debouncing":
            break
        await flow.emit("docker", "promoted", promoted(str(tag)))
    [run] = await flow.runs(first)
    assert run["status"] == "succeeded"
    # Due 5 min after the first event; the 15th event (at 300 s) came just after the cut.
    assert len(run["events"]) == 15
    later = await flow.emit("docker", "promoted", promoted("late"))
    assert (await flow.runs(later))[0]["id"] != run["id"]


THROTTLE = """
rules:
  - name: ticket
    when: {source: artifactory, domain: docker}
    throttle: {key: "{{ data.repo_key }}", once_per: 10m}
    actions:
      - uses: log
        with: {message: "{{ data.tag }}"}
"""


@pytest.mark.parametrize("flow", [THROTTLE], indirect=True)
async def test_throttle_runs_once_per_key_per_period_and_records_skips(flow: Harness):
    first = await flow.emit("docker", "promoted", promoted("1"))
    flow.advance(60)
    second = await flow.emit("docker", "promoted", promoted("2"))
    other_repo = await flow.emit("docker", "promoted", {**promoted("3"), "repo_key": "dev"})
    await flow.drain()
    assert (await flow.runs(first))[0]["status"] == "succeeded"
    [skipped] = await flow.runs(second)
    assert skipped["status"] == "skipped"
    assert "throttled" in skipped["error"] and "'docker-prod'" in skipped["error"]
    assert skipped["attempts"] == 0
    assert (await flow.runs(other_repo))[0]["status"] == "succeeded"
    listed = {s.event.id: s.status for s in await flow.store.list_events(EventQuery(limit=10))}
    assert listed[second] == "stopped"
    flow.advance(9 * 60 + 1)  # ten minutes after the first run
    third = await flow.emit("docker", "promoted", promoted("4"))
    await flow.drain()
    assert (await flow.runs(third))[0]["status"] == "succeeded"


def concurrency_rules(on_conflict: str) -> str:
    return f"""
rules:
  - name: deploy
    when: {{source: artifactory, domain: docker}}
    concurrency: {{key: "{{{{ data.image_name }}}}", limit: 1, on_conflict: {on_conflict}}}
    actions:
      - uses: log
        with: {{message: "{{{{ data.tag }}}}"}}
"""


@pytest.mark.parametrize("flow", [concurrency_rules("queue")], indirect=True)
async def test_queue_runs_one_per_key_at_a_time_in_arrival_order(flow: Harness):
    ids = []
    for tag in ("1", "2", "3"):
        ids.append(await flow.emit("docker", "promoted", promoted(tag)))
        flow.advance(1)
    web = await flow.emit("docker", "promoted", promoted("w", image="team/web"))
    runs = [(await flow.runs(i))[0]["id"] for i in ids]
    web_run = (await flow.runs(web))[0]["id"]

    first_claim = await flow.store.claim("w1", 50, 60)
    assert sorted(r.id for r in first_claim) == sorted([runs[0], web_run])
    assert await flow.store.claim("w2", 50, 60) == []  # the image's slot is taken
    for run in first_claim:
        await flow.runner.execute(run)
    order = []
    while claimed := await flow.store.claim("w1", 50, 60):
        assert len(claimed) == 1
        order.append(claimed[0].id)
        await flow.runner.execute(claimed[0])
    assert order == runs[1:]


@pytest.mark.parametrize("flow", [concurrency_rules("supersede")], indirect=True)
async def test_supersede_cancels_waiting_runs_of_the_key_but_not_a_started_one(flow: Harness):
    started_event = await flow.emit("docker", "promoted", promoted("1"))
    [started] = await flow.store.claim("w1", 50, 60)
    older = await flow.emit("docker", "promoted", promoted("2"))
    newest = await flow.emit("docker", "promoted", promoted("3"))
    [superseded] = await flow.runs(older)
    assert superseded["status"] == "superseded"
    assert (await flow.runs(newest))[0]["id"] in superseded["error"]
    assert (await flow.runs(started_event))[0]["status"] == "running"
    assert await flow.store.claim("w2", 50, 60) == []  # the newest waits for the slot
    await flow.runner.execute(started)
    assert await flow.drain() == [(await flow.runs(newest))[0]["id"]]
    assert (await flow.runs(newest))[0]["output"]["log#1"]["message"] == "3"


WAIT_FOR = """
rules:
  - name: deploy-when-scanned
    when: {source: harbor, domain: artifact, event_type: pushed}
    wait_for:
      when: {source: harbor, domain: scan, event_type: completed}
      correlate: "{{ artifact.digest }}"
      timeout: 30m
      if: awaited.data.critical == 0
    actions:
      - uses: log
        with: {message: "deploy {{ artifact.digest }} scanned {{ awaited.data.scanner }}"}
"""


def image(digest: str) -> dict[str, Any]:
    return {"image": "library/app", "tag": "1.0", "digest": digest}


@pytest.mark.parametrize("flow", [WAIT_FOR], indirect=True)
async def test_wait_for_runs_when_the_clean_scan_of_the_same_digest_arrives(flow: Harness):
    push = await flow.emit("artifact", "pushed", {}, image("sha256:aaa"), "harbor")
    assert (await flow.runs(push))[0]["status"] == "waiting_event"
    flow.advance(60)
    other = await flow.emit("scan", "completed", {"critical": 0}, image("sha256:bbb"), "harbor")
    await flow.drain()
    assert (await flow.runs(push))[0]["status"] == "waiting_event"
    assert await flow.runs(other) == []
    scan = await flow.emit(
        "scan", "completed", {"critical": 0, "scanner": "Trivy"}, image("sha256:aaa"), "harbor"
    )
    await flow.drain()
    [run] = await flow.runs(push)
    assert run["status"] == "succeeded"
    assert run["awaited_event"] == scan
    assert run["output"]["log#1"]["message"] == "deploy sha256:aaa scanned Trivy"
    assert [r["id"] for r in await flow.runs(scan)] == [run["id"]]


@pytest.mark.parametrize("flow", [WAIT_FOR], indirect=True)
async def test_wait_for_expires_after_its_timeout_and_skips_a_dirty_scan(flow: Harness):
    lonely = await flow.emit("artifact", "pushed", {}, image("sha256:ccc"), "harbor")
    dirty = await flow.emit("artifact", "pushed", {}, image("sha256:ddd"), "harbor")
    await flow.emit("scan", "completed", {"critical": 2}, image("sha256:ddd"), "harbor")
    await flow.drain()
    [skipped] = await flow.runs(dirty)
    assert skipped["status"] == "skipped"
    assert "awaited.data.critical == 0" in skipped["error"] and "is false" in skipped["error"]
    flow.advance(29 * 60)
    await flow.drain()
    assert (await flow.runs(lonely))[0]["status"] == "waiting_event"
    flow.advance(61)
    await flow.drain()
    [expired] = await flow.runs(lonely)
    assert expired["status"] == "expired"
    assert "harbor/scan/completed" in expired["error"] and "1800s" in expired["error"]
    assert expired["attempts"] == 0


BROKEN_FLOW = """\
rules:
  - name: bad-flow
    when: {source: artifactory}
    debounce: {key: "{{ data.image_name", window: 30s}
    wait_for:
      when: {domain: scan}
      correlate: "{{ artifact.digest }}"
      timeout: 0s
    approval:
      channel: "#deploys"
      approvers: [alice]
    actions:
      - uses: log
        with: {message: hi}
  - name: combined
    when: {source: artifactory}
    debounce: {window: 30s}
    wait_for: {when: {domain: scan}, correlate: "{{ artifact.digest }}", timeout: 1m}
    actions:
      - uses: log
        with: {message: hi}
"""


def test_check_names_every_flow_mistake_with_its_position(tmp_path: Path):
    result = invoke("check", cwd=project(tmp_path, BROKEN_FLOW))
    assert result.returncode == 1
    lines = result.stderr.splitlines()

    def line_for(fragment: str) -> str:
        found = [line for line in lines if fragment in line]
        assert found, f"{fragment!r} not in:\n{result.stderr}"
        return found[0]

    assert line_for("debounce and wait_for cannot be combined").startswith("rules/main.yaml:15:")
    assert line_for("wait_for.timeout").startswith("rules/main.yaml:8:")
    assert "must be Slack ids" in line_for("approval.approvers")
    assert line_for("approval.approvers").startswith("rules/main.yaml:11:")
    assert "integrations.slack.token" in line_for("approval: needs Slack")
    assert line_for("template does not compile").startswith("rules/main.yaml:4:")
