"""The console in a real headless Chromium (Debian's, driven by Playwright), against a real
`hookwise serve` over loopback: logging in, reading an event's timeline, retrying,
cancelling, approving (and a viewer refused), bulk retry, the dry-run form, and hostile
payload text shown inert. Each effect is checked in the store through the API too.

The test run also takes the screenshots in docs/screenshots/ that the docs show.
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import httpx
import pytest
from playwright.sync_api import Browser, BrowserContext, Page, sync_playwright

from tests.conftest import SECRET, TESTS, Hookwise, Reply, Sink, wait_until
from tests.tokens import ACCESS, OPERATOR, VIEWER, bearer

CHROMIUM = shutil.which("chromium") or "/usr/bin/chromium"
SHOTS = TESTS.parent / "docs" / "screenshots"
RULES = """
rules:
  - name: deploy
    description: Deploy every pushed image
    when: {source: artifactory, domain: docker, event_type: pushed}
    actions:
      - id: deploy
        uses: http.post
        with: {url: "SINK/deploy", json: {image: "{{ data.image_name }}", tag: "{{ data.tag }}"}}
        retry: {attempts: 1}
  - name: release-prod
    when: {source: artifactory, domain: docker, event_type: promoted}
    approval: {channel: C0DEPLOYS, approvers: [U0ALICE], timeout: 1h}
    actions:
      - uses: http.post
        with: {url: "SINK/release", json: {tag: "{{ data.tag }}"}}
  - name: nightly-build
    when: {source: artifactory, domain: build}
    debounce: {key: "{{ data.build_name }}", window: 1h}
    actions:
      - uses: log
        with: {message: "build {{ data.build_name }}"}
"""
# Slack is on a closed port: approval requests cannot be posted, and the runs wait all
# the same, to be decided from the console.
SLACK = "integrations:\n  slack: {token: xoxb-1-browser, base_url: 'http://127.0.0.1:9/api/'}\n"


def docker(event_type: str, tag: str, name: str = "web") -> bytes:
    data = {"repo_key": "docker-local", "image_name": name, "tag": tag,
            "path": f"{name}/{tag}/manifest.json", "name": "manifest.json",
            "sha256": "e" * 64, "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": event_type, "data": data}).encode()


def build(name: str) -> bytes:
    data = {"build_name": name, "build_number": "7", "build_started": "2026-12-05T08:00:00Z"}
    return json.dumps({"domain": "build", "event_type": "uploaded", "data": data}).encode()


@pytest.fixture(scope="module")
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory, sink: Sink) -> Iterator[Hookwise]:
    root = tmp_path_factory.mktemp("console")
    instance = Hookwise(root, RULES.replace("SINK", sink.url), extra=ACCESS + SLACK)
    instance.start()
    instance.http.headers.update(bearer(VIEWER))
    yield instance
    instance.stop()


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    if not Path(CHROMIUM).exists():
        pytest.fail(f"no Chromium at {CHROMIUM}: .ci/run installs Debian's chromium package")
    with sync_playwright() as playwright:
        instance = playwright.chromium.launch(executable_path=CHROMIUM, args=["--no-sandbox"])
        yield instance
        instance.close()


def session(
    browser: Browser, server: Hookwise, token: str, start: str
) -> tuple[BrowserContext, Page]:
    """A fresh browser profile, logged in with `token`, on the page `start`."""
    context = browser.new_context(viewport={"width": 1280, "height": 900})
    page = context.new_page()
    page.goto(server.url + start)
    assert "/ui/login" in page.url  # sent to log in first
    page.fill("input[name=token]", token)
    page.click("button:has-text('Log in')")
    assert page.url == server.url + start
    return context, page


def run_of(server: Hookwise, run_id: str) -> dict[str, Any]:
    return server.get(f"/api/runs/{run_id}").json()["run"]


def dead(server: Hookwise, sink: Sink, tag: str) -> tuple[str, str]:
    sink.script(Reply(503, {"error": "deploy agent is restarting"}))
    event_id = server.post(docker("pushed", tag)).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"dead"})
    return event_id, run["id"]


def test_an_operator_finds_why_a_run_failed_and_retries_it(
    browser: Browser, server: Hookwise, sink: Sink
):
    event_id, run_id = dead(server, sink, "1.0")
    context, page = session(browser, server, OPERATOR, "/ui/runs?status=dead")
    page.screenshot(path=str(SHOTS / "runs-dead.png"), full_page=True)
    page.click(f"a:has-text('{run_id}')")
    assert page.url.endswith(f"/ui/runs/{run_id}")
    why = page.inner_text("p.error")
    assert 'answered 503: {"error": "deploy agent is restarting"}' in why
    page.screenshot(path=str(SHOTS / "run.png"), full_page=True)

    page.click("button:has-text('Retry from the failed step')")
    assert f"run {run_id} retried by olivia" in page.inner_text("p.note")
    wait_until(lambda: run_of(server, run_id)["status"] == "succeeded")
    page.reload()
    assert "succeeded" in page.inner_text("h2")
    assert [r.body for r in sink.received if r.path == "/deploy"][-1] == {
        "image": "web",
        "tag": "1.0",
    }
    retry = next(e for e in run_of(server, run_id)["history"] if e["action"] == "retry")
    assert retry["output"]["by"] == "olivia" and retry["output"]["via"] == "console"

    page.goto(f"{server.url}/ui/events/{event_id}")
    timeline = page.inner_text("ol.timeline")
    assert "Received and verified" in timeline and "Normalized as docker / pushed" in timeline
    assert "nightly-build" in timeline and "domain 'docker' does not match 'build'" in timeline
    assert '"tag": "1.0"' in timeline  # the rendered parameters
    page.screenshot(path=str(SHOTS / "event.png"), full_page=True)
    context.close()


def test_a_debouncing_run_is_cancelled_with_a_reason(browser: Browser, server: Hookwise):
    event_id = server.post(build("nightly")).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"debouncing"})
    context, page = session(browser, server, OPERATOR, f"/ui/runs/{run['id']}")
    page.fill("input[aria-label='Reason for cancelling']", "superseded by the hotfix build")
    page.click("button:has-text('Cancel')")
    assert "cancelled by olivia" in page.inner_text("p.note")
    cancelled = run_of(server, run["id"])
    assert cancelled["status"] == "cancelled"
    assert cancelled["error"] == "cancelled by olivia via console: superseded by the hotfix build"
    context.close()


def test_an_approval_is_decided_in_the_console_while_slack_is_down_and_not_by_a_viewer(
    browser: Browser, server: Hookwise, sink: Sink
):
    event_id = server.post(docker("promoted", "2.0")).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"waiting_approval"})
    assert run["error"].startswith("approval: the request could not be posted to Slack")

    viewer, page = session(browser, server, VIEWER, f"/ui/runs/{run['id']}")
    assert page.locator("button:has-text('Approve')").count() == 0
    token = page.locator("input[name=csrf]").first.get_attribute("value") or ""
    forged = page.request.post(f"{server.url}/ui/runs/{run['id']}/approve", form={"csrf": token})
    assert forged.status == 403 and "victor is a viewer" in forged.text()
    assert run_of(server, run["id"])["status"] == "waiting_approval"
    viewer.close()

    operator, page = session(browser, server, OPERATOR, f"/ui/runs/{run['id']}")
    page.click("button:has-text('Approve')")
    assert "approval of run" in page.inner_text("p.note")
    wait_until(lambda: run_of(server, run["id"])["status"] == "succeeded")
    decided = run_of(server, run["id"])["decisions"]
    assert [(d["by"], d["decision"], d["via"]) for d in decided] == [
        ("olivia", "approve", "console")
    ]
    assert [r.body for r in sink.received if r.path == "/release"] == [{"tag": "2.0"}]
    operator.close()


def test_bulk_retry_shows_the_count_and_retries_on_confirmation(
    browser: Browser, server: Hookwise, sink: Sink
):
    runs = [dead(server, sink, f"3.{n}")[1] for n in range(3)]
    context, page = session(browser, server, OPERATOR, "/ui/runs?status=dead&rule=deploy")
    page.click("button:has-text('Retry every dead run these filters pick')")
    assert page.inner_text("h1") == "Retry 3 dead runs?"
    page.click("button:has-text('Yes, retry 3')")
    assert "Retried 3 of 3 dead runs." in page.inner_text("p.note")
    for run_id in runs:
        wait_until(lambda run_id=run_id: run_of(server, run_id)["status"] == "succeeded")
    context.close()


def test_the_dry_run_form_explains_a_pasted_payload(browser: Browser, server: Hookwise):
    context, page = session(browser, server, VIEWER, "/ui/rules")
    page.select_option("select[name=source]", "artifactory")
    page.fill("textarea[name=headers]", f"X-JFrog-Event-Auth: {SECRET}")
    page.fill("textarea[name=body]", docker("pushed", "9.9", name="api").decode())
    page.click("button:has-text('Dry run')")
    report = page.inner_text("main")
    assert "MATCH" in report and '"tag": "9.9"' in report
    assert "domain 'docker' does not match 'build'" in report
    page.screenshot(path=str(SHOTS / "rules.png"), full_page=True)
    listed = server.get("/api/events", params={"text": "9.9"}).json()["events"]
    assert listed == []  # nothing was stored
    context.close()


def test_hostile_payload_text_renders_inert(browser: Browser, server: Hookwise):
    script = "<script>window.__pwned=1</script>"
    event_id = server.post(docker("pushed", script, name="evil")).json()["event_id"]
    context, page = session(browser, server, VIEWER, f"/ui/events/{event_id}")
    assert page.evaluate("window.__pwned") is None
    assert script in page.inner_text("main")  # shown as the text it is
    page.goto(f"{server.url}/ui/events")
    assert page.evaluate("window.__pwned") is None
    page.screenshot(path=str(SHOTS / "events.png"), full_page=True)
    page.goto(f"{server.url}/ui")
    page.screenshot(path=str(SHOTS / "overview.png"), full_page=True)
    context.close()


def test_a_wrong_token_does_not_log_in(browser: Browser, server: Hookwise):
    context = browser.new_context()
    page = context.new_page()
    page.goto(f"{server.url}/ui/login")
    page.fill("input[name=token]", "not-a-token-at-all")
    page.click("button:has-text('Log in')")
    assert "That token is not one of" in page.inner_text("p.problem")
    assert httpx.get(f"{server.url}/ui", follow_redirects=False).status_code == 303
    context.close()
