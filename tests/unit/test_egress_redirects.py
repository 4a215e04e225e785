"""A redirect from an allowed host to a forbidden one, for every client hookwise uses.

The downstream on 127.0.0.1 (allowed) answers every request with a 302 or a 307 to a
listener on 127.0.0.2, which `egress.allow: [127.0.0.1]` does not cover. Whatever the
client library would do with a redirect (slack-sdk's urllib re-sends as GET, requests
follows it), the forbidden listener must see no connection at all, and the run must
end `dead` naming the status and the refused target.
"""

from __future__ import annotations

import asyncio
import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest

from hookwise.egress import EgressPolicy
from hookwise.errors import PermanentFailure
from hookwise.slack.chat import SlackChat
from hookwise.slack.settings import SlackSettings

TOKEN = "xoxb-redirect-test-token"
PASSWORD = "jira-redirect-password"


class Forbidden:
    """A listener on 127.0.0.2 that counts every connection it accepts."""

    def __init__(self) -> None:
        self.sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self.sock.bind(("127.0.0.2", 0))
        self.sock.listen(16)
        self.sock.settimeout(0.1)
        self.port = self.sock.getsockname()[1]
        self.accepted = 0
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._accept, daemon=True)
        self.thread.start()

    def _accept(self) -> None:
        while not self.stop.is_set():
            try:
                conn, _ = self.sock.accept()
            except OSError:
                continue
            self.accepted += 1
            conn.close()

    def close(self) -> None:
        self.stop.set()
        self.thread.join()
        self.sock.close()


class Redirector:
    """The allowed downstream: every request is answered with `status` to the forbidden one."""

    def __init__(self, status: int, target: str) -> None:
        self.status = status
        self.paths: list[str] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _redirect(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                self.rfile.read(length)
                owner.paths.append(f"{self.command} {self.path}")
                self.send_response(status)
                self.send_header("location", target + self.path)
                self.send_header("content-length", "0")
                self.end_headers()

            do_GET = do_POST = do_PUT = _redirect

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def forbidden() -> Iterator[Forbidden]:
    listener = Forbidden()
    yield listener
    listener.close()


@pytest.fixture(params=[302, 307])
def redirector(request: pytest.FixtureRequest, forbidden: Forbidden) -> Iterator[Redirector]:
    server = Redirector(request.param, f"http://127.0.0.2:{forbidden.port}")
    yield server
    server.close()


def rule(uses: str, params: str, extra: str = "") -> str:
    return f"""
rules:
  - name: redirected
    when: {{source: artifactory, domain: docker, event_type: promoted}}
{extra}
    actions:
      - id: call
        uses: {uses}
        with: {params}
        retry: {{attempts: 3, backoff: 1s}}
"""


SLACK_WEB = "integrations:\n  slack: {token: " + TOKEN + ", base_url: '{url}/api/'}\n"
CASES = {
    "http.post": (rule("http.post", '{url: "{url}/hook", json: {a: 1}}'), ""),
    "slack web api": (
        rule("slack.message", '{channel: C123, text: "deployed"}'),
        SLACK_WEB,
    ),
    "slack incoming webhook": (
        rule("slack.message", '{text: "deployed"}'),
        "integrations:\n  slack: {webhook_url: '{url}/services/T0/B0/secretpath'}\n",
    ),
    "jira": (
        rule("jira.comment", '{key: OPS-1, body: "deployed"}'),
        "integrations:\n  jira: {url: '{url}', username: bot, password: " + PASSWORD + "}\n",
    ),
    "jenkins": (
        rule("jenkins.build", "{job: deploy}"),
        "integrations:\n  jenkins: {url: '{url}', username: bot, api_token: " + PASSWORD + "}\n",
    ),
    "chatops approval": (
        rule(
            "log", '{message: "approved"}', "    approval: {channel: C123, approvers: [U0APPROVER]}"
        ),
        SLACK_WEB,
    ),
}


@pytest.mark.anyio
@pytest.mark.parametrize("case", list(CASES))
async def test_a_redirect_to_a_forbidden_address_is_refused_and_not_retried(
    harness_for: Any, redirector: Redirector, forbidden: Forbidden, case: str
):
    rules, extra = CASES[case]
    flow = await harness_for(
        rules.replace("{url}", redirector.url), extra.replace("{url}", redirector.url)
    )
    event_id = await flow.emit("docker", "promoted", {"image_name": "api", "tag": "1.0"})
    await flow.drain()
    [run] = await flow.runs(event_id)
    # An action dies; an approval request that cannot be posted leaves the run waiting,
    # to be decided from the CLI, the API or the console.
    assert run["status"] == ("waiting_approval" if case == "chatops approval" else "dead"), run
    assert f"answered {redirector.status}, a redirect" in run["error"], run["error"]
    assert f"a redirect to http://127.0.0.2:{forbidden.port}/" in run["error"]
    assert "redirects are never followed" in run["error"]
    assert len(redirector.paths) == 1, redirector.paths  # one request, not retried
    assert forbidden.accepted == 0
    assert TOKEN not in str(run) and PASSWORD not in str(run)
    assert "secretpath" not in str(run)


def test_the_chatops_client_refuses_a_redirect(redirector: Redirector, forbidden: Forbidden):
    settings = SlackSettings.model_validate({"token": TOKEN, "base_url": redirector.url + "/api/"})
    chat = SlackChat(settings, EgressPolicy(["127.0.0.1"]))
    with pytest.raises(PermanentFailure, match="redirects are never followed") as info:
        asyncio.run(chat.post("C123", "hello", []))
    assert f"a redirect to http://127.0.0.2:{forbidden.port}/…" in str(info.value)
    assert redirector.paths == ["POST /api/chat.postMessage"]
    assert forbidden.accepted == 0
