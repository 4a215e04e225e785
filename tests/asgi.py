"""The whole HTTP surface in-process: hookwise's ASGI app over a real SQLite store.

One configured source of every kind, Slack's endpoints with a signing secret, and the
API with a token, driven by httpx through its ASGI transport (the app's lifespan runs
as under uvicorn). Used where a test sends many requests (fuzzing, hostile input) and
a process per test would be too slow.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import time
from collections.abc import AsyncIterator
from pathlib import Path
from urllib.parse import urlencode

import httpx
import pytest

from hookwise.app import create_app
from hookwise.service import build_service
from tests.conftest import SECRET, project

API_TOKEN = "asgi-api-token-1"
SIGNING_SECRET = "asgi-slack-signing-secret"
SW_KEY = b"standard-webhooks-key-32-bytes!!"
SW_SECRET = "whsec_" + base64.b64encode(SW_KEY).decode()
SOURCES = """\
  signed:
    kind: artifactory
    secret: ${TEST_ARTIFACTORY_SECRET}
    signed: true
  harbor:
    kind: harbor
    auth_header: harbor-auth-1
  cloudevents:
    kind: cloudevents
    token: ce-token-1
  standard:
    kind: standard-webhooks
    secret: {sw_secret}
  github:
    kind: generic
    event_type: {header: X-GitHub-Event}
    hmac: {header: X-Hub-Signature-256, secret: github-secret-1, prefix: "sha256="}
  shared:
    kind: generic
    token: shared-token-1
    header: X-Shared
    scheme: ""
api_token: {api_token}
integrations:
  slack:
    token: xoxb-asgi-test
    base_url: http://127.0.0.1:9/api/
    signing_secret: {signing_secret}
    operators: [U0OPERATOR]
"""
RULES = """
rules:
  - name: everything
    when: {source: "*"}
    actions:
      - uses: log
        with: {message: "{{ event.source }} {{ event.event_type }}"}
"""


def slack_headers(body: bytes, secret: str = SIGNING_SECRET) -> dict[str, str]:
    """Signed the way Slack signs requests."""
    stamp = str(int(time.time()))
    base = b"v0:" + stamp.encode() + b":" + body
    signature = "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()
    return {
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": signature,
        "content-type": "application/x-www-form-urlencoded",
    }


def slack_form(**fields: str) -> bytes:
    return urlencode(fields).encode()


def sign_standard(body: bytes, msg_id: str = "msg_1", stamp: str | None = None) -> dict[str, str]:
    stamp = stamp or str(int(time.time()))
    digest = hmac.new(SW_KEY, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(digest).decode(),
    }


class App:
    """An httpx client on the app, and what the API says was stored."""

    def __init__(self, client: httpx.AsyncClient) -> None:
        self.client = client
        self.auth = {"authorization": f"Bearer {API_TOKEN}"}

    async def events(self) -> list[dict]:
        response = await self.client.get("/api/events", params={"limit": 1000}, headers=self.auth)
        assert response.status_code == 200, response.text
        return response.json()["events"]


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


@pytest.fixture
async def asgi(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> AsyncIterator[App]:
    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    monkeypatch.chdir(tmp_path)
    extra = SOURCES.replace("{sw_secret}", SW_SECRET).replace("{api_token}", API_TOKEN)
    extra = extra.replace("{signing_secret}", SIGNING_SECRET)
    service = build_service(project(tmp_path, RULES, extra=extra) / "hookwise.yaml")
    app = create_app(service)
    transport = httpx.ASGITransport(app=app)
    async with (
        app.router.lifespan_context(app),
        httpx.AsyncClient(transport=transport, base_url="http://hookwise.test") as client,
    ):
        yield App(client)
