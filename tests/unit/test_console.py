"""The console at /ui, in-process: logins and roles, CSRF, every page's content, and the
operations it offers, checked in the store. The browser tier (tests/e2e/test_browser.py)
drives the same pages in a real Chromium.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

import pytest

from tests.conftest import SECRET, Reply, Sink, wait_until
from tests.served import Served
from tests.tokens import ACCESS, OPERATOR, VIEWER, bearer

RULES = """
rules:
  - name: deploy
    when: {source: artifactory, domain: docker, event_type: pushed}
    actions:
      - id: call
        uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.tag }}"}}
        retry: {attempts: 1}
  - name: builds-only
    when: {domain: build}
    actions:
      - uses: log
        with: {message: build}
"""


def pushed(tag: str, name: str = "api") -> bytes:
    return json.dumps(
        {
            "domain": "docker",
            "event_type": "pushed",
            "data": {"repo_key": "docker-local", "image_name": name, "tag": tag,
                     "path": f"{name}/{tag}/manifest.json", "name": "manifest.json",
                     "sha256": "a" * 64, "size": 1},
        }
    ).encode()  # fmt: skip


@pytest.fixture
def console(served_factory: Callable[..., Served], sink: Sink) -> Served:
    served = served_factory(RULES.replace("SINK", sink.url), extra=ACCESS).start()
    served.http.headers["Authorization"] = f"Bearer {VIEWER}"  # for the API; pages use cookies
    return served


def login(served: Served, token: str) -> None:
    answer = served.http.post(
        "/ui/login", data={"token": token, "next": "/ui/runs"}, follow_redirects=False
    )
    assert answer.status_code == 303 and answer.headers["location"] == "/ui/runs"
    cookie = answer.headers["set-cookie"]
    assert "HttpOnly" in cookie and "SameSite=strict" in cookie and "Path=/ui" in cookie


def csrf(html: str) -> str:
    found = re.search(r'name="csrf" value="([0-9a-f]+)"', html)
    assert found, "the page has no form token"
    return found.group(1)


def dead_run(served: Served, sink: Sink, tag: str) -> tuple[str, str]:
    """An event whose deploy run died (the sink answers 500); (event id, run id)."""
    sink.script(Reply(500, {"error": "boom"}))
    event_id = served.post(pushed(tag)).json()["event_id"]
    [run] = served.wait_for_runs(event_id, {"dead"})
    return event_id, run["id"]


def test_pages_need_a_login_and_a_wrong_token_is_refused(console: Served):
    anonymous = {"Authorization": ""}
    page = console.http.get("/ui/runs?status=dead", headers=anonymous, follow_redirects=False)
    assert page.status_code == 303
    assert page.headers["location"] == "/ui/login?next=/ui/runs%3Fstatus%3Ddead"
    wrong = console.http.post("/ui/login", data={"token": "not-a-token-at-all"}, headers=anonymous)
    assert wrong.status_code == 401
    assert "That token is not one of" in wrong.text
    assert "hookwise_session" not in wrong.headers.get("set-cookie", "")
    sent_away = console.http.post(
        "/ui/login",
        data={"token": OPERATOR, "next": "https://evil.example/"},
        follow_redirects=False,
    )
    assert sent_away.headers["location"] == "/ui"  # only pages of this console


def test_an_event_page_tells_the_whole_story(console: Served, sink: Sink):
    event_id, run_id = dead_run(console, sink, "1.0")
    login(console, VIEWER)
    page = console.http.get(f"/ui/events/{event_id}")
    assert page.status_code == 200
    text = page.text
    assert "Received and verified" in text and "artifactory" in text
    assert "Normalized</b> as docker / pushed" in text
    # every rule: the match with what its action is given, the miss with its reason
    missed = text[text.index("builds-only") :]
    assert "missed" in missed
    assert "domain &#39;docker&#39; does not match &#39;build&#39;" in missed
    assert "&#34;tag&#34;: &#34;1.0&#34;" in text  # the rendered parameters
    assert f"/ui/runs/{run_id}" in text
    assert "answered 500: {&#34;error&#34;: &#34;boom&#34;}" in text  # why the run died
    # a viewer sees no buttons that act
    assert "Retry from the failed step" not in text
    assert page.headers["content-security-policy"].startswith("default-src 'none'")


def test_an_operator_retries_a_dead_run_from_the_console_and_it_succeeds(
    console: Served, sink: Sink
):
    event_id, run_id = dead_run(console, sink, "2.0")
    login(console, OPERATOR)
    page = console.http.get(f"/ui/runs/{run_id}")
    assert "Retry from the failed step" in page.text
    done = console.http.post(
        f"/ui/runs/{run_id}/retry", data={"csrf": csrf(page.text)}, follow_redirects=False
    )
    assert done.status_code == 303 and done.headers["location"] == f"/ui/runs/{run_id}"
    wait_until(lambda: console.event(event_id)["runs"][0]["status"] == "succeeded")
    run = console.event(event_id)["runs"][0]
    retry = next(e for e in run["history"] if e["action"] == "retry")
    assert retry["output"] == {"by": "olivia", "via": "console", "reason": None}
    assert [r.body for r in sink.received][-1] == {"tag": "2.0"}
    shown = console.http.get(f"/ui/runs/{run_id}")
    assert "retried by olivia" in shown.text  # the note, shown once
    assert "retried by olivia" not in console.http.get(f"/ui/runs/{run_id}").text


def test_a_post_without_the_form_token_or_from_another_site_is_refused(console: Served, sink: Sink):
    _, run_id = dead_run(console, sink, "3.0")
    login(console, OPERATOR)
    forged = console.http.post(f"/ui/runs/{run_id}/retry", data={"csrf": "0" * 64})
    assert forged.status_code == 403 and "expired or came from another site" in forged.text
    token = csrf(console.http.get(f"/ui/runs/{run_id}").text)
    elsewhere = console.http.post(
        f"/ui/runs/{run_id}/retry",
        data={"csrf": token},
        headers={"Origin": "https://evil.example"},
    )
    assert elsewhere.status_code == 403
    run = console.get(f"/api/runs/{run_id}", headers=bearer(VIEWER)).json()["run"]
    assert run["status"] == "dead"  # nothing happened


def test_a_viewer_cannot_act(console: Served, sink: Sink):
    _, run_id = dead_run(console, sink, "4.0")
    login(console, VIEWER)
    token = csrf(console.http.get("/ui/rules").text)  # the dry-run form is open to viewers
    refused = console.http.post(f"/ui/runs/{run_id}/retry", data={"csrf": token})
    assert refused.status_code == 403
    assert "victor is a viewer: only operators may do this." in refused.text
    by_api = console.http.post(f"/api/runs/{run_id}/retry", headers=bearer(VIEWER), json={})
    assert by_api.status_code == 403 and by_api.json()["reason"] == "forbidden"
    assert console.get(f"/api/runs/{run_id}", headers=bearer(VIEWER)).json()["run"]["status"] == (
        "dead"
    )


def test_bulk_retry_counts_first_then_retries_what_the_filter_picks(console: Served, sink: Sink):
    dead = [dead_run(console, sink, f"5.{n}")[1] for n in range(3)]
    login(console, OPERATOR)
    token = csrf(console.http.get("/ui/runs?status=dead").text)
    asked = console.http.post("/ui/runs/retry", data={"csrf": token, "rule": "deploy"})
    assert asked.status_code == 200 and "Retry 3 dead runs?" in asked.text
    assert len(sink.received) == 3  # only counted so far
    confirmed = console.http.post(
        "/ui/runs/retry",
        data={"csrf": token, "rule": "deploy", "confirm": "3"},
        follow_redirects=False,
    )
    assert confirmed.status_code == 303
    for run_id in dead:
        wait_until(
            lambda run_id=run_id: (
                console.get(f"/api/runs/{run_id}", headers=bearer(VIEWER)).json()["run"]["status"]
                == "succeeded"
            )
        )
    assert len(sink.received) == 6
    assert "Retried 3 of 3 dead runs." in console.http.get("/ui/runs?status=dead").text


def test_a_filter_it_cannot_read_is_shown_back_with_the_reason(console: Served):
    login(console, VIEWER)
    page = console.http.get("/ui/runs?status=bogus&rule=deploy")
    assert page.status_code == 400
    assert "Filter status: one or more of pending, running," in page.text
    assert 'name="rule" value="deploy"' in page.text  # what was typed stays


def test_hostile_payload_text_is_shown_inert(console: Served):
    body = pushed("<script>alert(1)</script>", name='"><img src=x onerror=alert(2)>')
    event_id = console.post(body).json()["event_id"]
    login(console, VIEWER)
    for path in (f"/ui/events/{event_id}", "/ui/events", "/ui/runs"):
        text = console.http.get(path).text
        assert "<script>alert" not in text and "<img src=x" not in text
    assert (
        "&lt;script&gt;alert(1)&lt;/script&gt;" in console.http.get(f"/ui/events/{event_id}").text
    )


def test_the_dry_run_form_shows_verdicts_and_rendered_parameters(console: Served):
    login(console, VIEWER)
    token = csrf(console.http.get("/ui/rules").text)
    headers = "X-JFrog-Event-Auth: " + "wrong"
    refused = console.http.post(
        "/ui/try",
        data={"csrf": token, "source": "artifactory", "headers": headers,
              "body": pushed("6.0").decode()},
    )  # fmt: skip
    assert refused.status_code == 400 and "Refused (" in refused.text
    tried = console.http.post(
        "/ui/try",
        data={"csrf": token, "source": "artifactory",
              "headers": f"X-JFrog-Event-Auth: {SECRET}", "body": pushed("6.0").decode()},
    )  # fmt: skip
    assert tried.status_code == 200
    assert "MATCH" in tried.text and "&#34;tag&#34;: &#34;6.0&#34;" in tried.text
    assert console.get("/api/events", headers=bearer(VIEWER)).json()["events"] == []  # not stored


def test_find_opens_an_event_or_a_run_from_the_start_of_its_id(console: Served, sink: Sink):
    event_id, run_id = dead_run(console, sink, "7.0")
    login(console, VIEWER)
    found = console.http.get(f"/ui/find?id={run_id[:-4].lower()}", follow_redirects=False)
    assert found.headers["location"] == f"/ui/runs/{run_id}"
    found = console.http.get(f"/ui/find?id={event_id}", follow_redirects=False)
    assert found.headers["location"] == f"/ui/events/{event_id}"
    missing = console.http.get("/ui/find?id=ZZZZZZ")
    assert missing.status_code == 404 and "no event or run id begins with ZZZZZZ" in missing.text


def test_overview_and_rules_pages_count_what_happened(console: Served, sink: Sink):
    dead_run(console, sink, "8.0")
    login(console, VIEWER)
    overview = console.http.get("/ui").text
    assert re.search(r"<b>1</b>dead runs", overview)
    metrics = console.get("/metrics").text
    assert "\nhookwise_dead_runs 1.0\n" in metrics  # the same count as the overview
    rules = console.http.get("/ui/rules").text
    assert "rules.yaml:3" in rules  # file:line of the rule
    row = rules[rules.index(">deploy<") :]
    cells = re.findall(r"<td>(\d+)</td>", row)[:2]
    assert cells == ["1", "1"]  # matches, runs
    listed = console.get("/api/rules", headers=bearer(VIEWER)).json()["rules"]
    deploy: dict[str, Any] = listed[0]
    assert (deploy["name"], deploy["runs"], deploy["failures"]) == ("deploy", 1, 1)
    assert deploy["last_error"].endswith('answered 500: {"error": "boom"}')
