"""A local Slack: enough of the Web API and of incoming webhooks for slack_sdk to run unmodified.

Implemented, as Slack documents them (every method answers HTTP 200 with `{"ok": ...}`;
the token comes as `Authorization: Bearer xoxb-…` or a `token` parameter; parameters come
from the query string, a form body or a JSON body, merged):

- `POST /api/auth.test`
- `POST /api/chat.postMessage`: channel by ID or name, text and/or blocks, thread_ts,
  reply_broadcast, metadata; answers `channel` (the ID), `ts`, `message`.
- `POST /api/chat.update`: channel by ID only, ts; `blocks` left out keeps the old ones.
- `POST /api/conversations.history`, `POST /api/conversations.replies`: newest first,
  `oldest`, metadata only with `include_all_metadata`.
- `POST /api/chat.postEphemeral`: channel and user required; kept in `ephemerals`.
- `GET /api/usergroups.users.list`: members of a user group from `groups`
  (`no_such_subteam` otherwise; needs usergroups:read).

And Slack's side of interactivity: `signed_headers` signs a request the way Slack
does (v0 HMAC-SHA256 over `v0:{timestamp}:{body}`), and `click` builds the form body
Slack posts to an app's interactivity URL when someone presses a button.
- `POST /services/<team>/<bot>/<secret>`: the incoming webhook; answers the text `ok`, or
  `invalid_payload`/`no_text` with HTTP 400 and `no_service` with HTTP 404 as Slack does.

Errors it produces by itself: `not_authed`, `invalid_auth`, `missing_scope` (with `needed`
and `provided`), `channel_not_found`, `not_in_channel`, `msg_too_long`, `no_text`,
`invalid_blocks`, `message_not_found`, `cant_update_message`. Anything else is scripted
with `fail()`: an HTTP 429 with Retry-After, a 500, a 410 from the webhook, and so on.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import threading
import time
from collections import deque
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qsl, urlencode, urlsplit

from tests.standins.loopback import Loopback

TOKEN = "xoxb-standin-0123456789-secret"
WEBHOOK_PATH = "/services/T0STANDIN/B0STANDIN/standin-webhook-secret"
BOT_USER = "U0HOOKWISE"
BLOCK_TYPES = {"section", "context", "header", "divider", "actions", "image", "rich_text", "input"}
SCOPE_OF = {
    "chat.postMessage": "chat:write",
    "chat.update": "chat:write",
    "conversations.history": "channels:history",
    "conversations.replies": "channels:history",
    "chat.postEphemeral": "chat:write",
    "usergroups.users.list": "usergroups:read",
}


@dataclass
class Call:
    """One request as received: `api` is the Web API method, or `webhook`."""

    api: str
    path: str
    headers: dict[str, str]
    body: Any


@dataclass
class Scripted:
    status: int
    body: Any
    headers: dict[str, str] = field(default_factory=dict)
    after: bool = False  # do the work first, then answer this: a reply lost on the way
    delay: float = 0.0


class SlackStandin:
    def __init__(
        self,
        token: str = TOKEN,
        channels: dict[str, str] | None = None,
        joined: set[str] | None = None,
        scopes: set[str] | None = None,
    ) -> None:
        self.token = token
        self.channels = channels or {"C0DEPLOYS": "deploys", "C0RELEASES": "releases"}
        self.joined = joined if joined is not None else {"C0DEPLOYS"}
        self.scopes = (
            scopes if scopes is not None else {"chat:write", "channels:history", "usergroups:read"}
        )
        self.groups: dict[str, list[str]] = {}
        self.ephemerals: list[dict[str, Any]] = []
        self.webhook_channel = "C0DEPLOYS"
        self.calls: list[Call] = []
        self.messages: dict[str, list[dict[str, Any]]] = {c: [] for c in self.channels}
        self.scripted: dict[str, deque[Scripted]] = {}
        self.lock = threading.Lock()
        self.last_ts = 0.0
        self.release = threading.Event()
        self.loopback = Loopback(self._handle, ["GET", "POST"], http11=False)
        self.url = self.loopback.url
        self.base_url = f"{self.url}/api/"
        self.webhook_url = f"{self.url}{WEBHOOK_PATH}"

    # -- scripting and inspection -----------------------------------------------------

    def fail(
        self,
        api: str,
        status: int = 200,
        body: Any = None,
        headers: dict[str, str] | None = None,
        *,
        after: bool = False,
        delay: float = 0.0,
    ) -> None:
        """Answer the next call of `api` (a method name or `webhook`) like this instead."""
        reply = Scripted(status, body, headers or {}, after, delay)
        self.scripted.setdefault(api, deque()).append(reply)

    def calls_to(self, api: str) -> list[Call]:
        return [call for call in self.calls if call.api == api]

    def post(self, channel: str, text: str, user: str = "U0SOMEONE") -> str:
        """A message someone else wrote, e.g. to test that it cannot be updated."""
        ts = self._next_ts()
        self.messages[channel].append({"type": "message", "user": user, "text": text, "ts": ts})
        return ts

    def close(self) -> None:
        self.release.set()
        self.loopback.close()

    # -- HTTP ---------------------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length).decode("utf-8", errors="replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        if parts.path.startswith("/services/"):
            call = Call("webhook", parts.path, headers, _json_or_text(raw))
            self.calls.append(call)
            status, body, extra = self._scripted_or("webhook", lambda: self._webhook(call))
            return _send(handler, status, body, extra)
        api = parts.path.removeprefix("/api/")
        params: dict[str, Any] = dict(parse_qsl(parts.query))
        content_type = headers.get("content-type", "")
        if content_type.startswith("application/json"):
            params.update(json.loads(raw or "{}"))
        elif raw:
            params.update(parse_qsl(raw))
        for key in ("blocks", "metadata"):  # form bodies carry JSON as text
            if isinstance(params.get(key), str):
                params[key] = json.loads(params[key])
        call = Call(api, parts.path, headers, params)
        self.calls.append(call)
        status, body, extra = self._scripted_or(api, lambda: self._api(api, call))
        _send(handler, status, body, extra)

    def _scripted_or(self, api: str, work: Any) -> tuple[int, Any, dict[str, str]]:
        queue = self.scripted.get(api)
        reply = queue.popleft() if queue else None
        if reply is None:
            return work()
        if reply.after:
            work()
        if reply.delay:
            self.release.wait(reply.delay)
        return reply.status, reply.body, reply.headers

    # -- the Web API ----------------------------------------------------------------------

    def _api(self, api: str, call: Call) -> tuple[int, Any, dict[str, str]]:
        if api not in ("auth.test", *SCOPE_OF):
            return 404, "<html>404 Not Found</html>", {}
        bearer = call.headers.get("authorization", "").removeprefix("Bearer ").strip()
        token = bearer or call.body.get("token")
        if not token:
            return _error("not_authed")
        if token != self.token:
            return _error("invalid_auth")
        scopes = {"x-oauth-scopes": ",".join(sorted(self.scopes))}
        if api == "auth.test":
            body = {"ok": True, "team": "Standin", "user": "hookwise", "user_id": BOT_USER}
            return 200, {**body, "url": f"{self.url}/", "bot_id": "B0HOOKWISE"}, scopes
        needed = SCOPE_OF[api]
        if needed not in self.scopes:
            provided = ",".join(sorted(self.scopes))
            return _error("missing_scope", needed=needed, provided=provided)
        with self.lock:
            return getattr(self, "_" + api.replace(".", "_"))(call.body)

    def _channel(self, given: Any, by_name: bool = True) -> str | None:
        if given in self.channels:
            return str(given)
        if by_name and isinstance(given, str):
            for channel_id, name in self.channels.items():
                if given.lstrip("#") == name:
                    return channel_id
        return None

    def _next_ts(self) -> str:
        # Real time, so `oldest` filters work; strictly increasing, as Slack's are per channel.
        self.last_ts = max(time.time(), self.last_ts + 0.000001)
        return f"{self.last_ts:.6f}"

    def _content_error(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]] | None:
        text, blocks = body.get("text"), body.get("blocks")
        if not text and not blocks:
            return _error("no_text")
        if text and len(text) > 40000:
            return _error("msg_too_long")
        if blocks is not None:
            for index, block in enumerate(blocks if isinstance(blocks, list) else [blocks]):
                if not isinstance(block, dict) or block.get("type") not in BLOCK_TYPES:
                    pointer = f"[json-pointer:/blocks/{index}/type]"
                    return _error("invalid_blocks", errors=[f"must provide a valid type {pointer}"])
        return None

    def _chat_postMessage(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if channel not in self.joined:
            return _error("not_in_channel")
        problem = self._content_error(body)
        if problem:
            return problem
        message = {"type": "message", "user": BOT_USER, "bot_id": "B0HOOKWISE"}
        message.update({"text": body.get("text", ""), "ts": self._next_ts()})
        for key in ("blocks", "thread_ts", "metadata"):
            if body.get(key):
                message[key] = body[key]
        self.messages[channel].append(message)
        shown = {k: v for k, v in message.items() if k != "metadata"}
        return 200, {"ok": True, "channel": channel, "ts": message["ts"], "message": shown}, {}

    def _chat_update(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        channel = self._channel(body.get("channel"), by_name=False)
        if channel is None:
            return _error("channel_not_found")
        found = [m for m in self.messages[channel] if m["ts"] == body.get("ts")]
        if not found:
            return _error("message_not_found")
        message = found[0]
        if message.get("user") != BOT_USER:
            return _error("cant_update_message")
        problem = self._content_error({"text": body.get("text") or message["text"], **body})
        if problem:
            return problem
        if "text" in body:
            message["text"] = body["text"]
        if "blocks" in body:
            message["blocks"] = body["blocks"]
        message["edited"] = {"user": BOT_USER, "ts": self._next_ts()}
        answer = {"ok": True, "channel": channel, "ts": message["ts"], "text": message["text"]}
        return 200, {**answer, "message": message}, {}

    def _chat_postEphemeral(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        channel = self._channel(body.get("channel"))
        if channel is None:
            return _error("channel_not_found")
        if not body.get("user"):
            return _error("user_not_in_channel")
        problem = self._content_error(body)
        if problem:
            return problem
        ts = self._next_ts()
        self.ephemerals.append({"channel": channel, "user": body["user"], "text": body.get("text")})
        return 200, {"ok": True, "message_ts": ts}, {}

    def _usergroups_users_list(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        members = self.groups.get(str(body.get("usergroup")))
        if members is None:
            return _error("no_such_subteam")
        return 200, {"ok": True, "users": members}, {}

    def _history(self, body: dict[str, Any], thread: str | None) -> tuple[int, Any, dict[str, str]]:
        channel = self._channel(body.get("channel"), by_name=False)
        if channel is None:
            return _error("channel_not_found")
        oldest = float(body.get("oldest") or 0)
        metadata = str(body.get("include_all_metadata")).lower() in ("1", "true")
        chosen = [
            m
            for m in self.messages[channel]
            if float(m["ts"]) >= oldest
            and (
                (thread is None and "thread_ts" not in m)
                or (thread is not None and thread in (m["ts"], m.get("thread_ts")))
            )
        ]
        shown = [m if metadata else {k: v for k, v in m.items() if k != "metadata"} for m in chosen]
        return 200, {"ok": True, "messages": shown[::-1], "has_more": False}, {}

    def _conversations_history(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        return self._history(body, None)

    def _conversations_replies(self, body: dict[str, Any]) -> tuple[int, Any, dict[str, str]]:
        return self._history(body, str(body.get("ts")))

    # -- incoming webhook -----------------------------------------------------------------

    def _webhook(self, call: Call) -> tuple[int, Any, dict[str, str]]:
        if call.path != WEBHOOK_PATH:
            return 404, "no_service", {}
        body = call.body
        if not isinstance(body, dict):
            return 400, "invalid_payload", {}
        if not body.get("text") and not body.get("blocks"):
            return 400, "no_text", {}
        with self.lock:
            message = {"type": "message", "bot_id": "B0WEBHOOK", "ts": self._next_ts(), **body}
            self.messages[self.webhook_channel].append(message)
        return 200, "ok", {}


def _error(code: str, **extra: Any) -> tuple[int, Any, dict[str, str]]:
    return 200, {"ok": False, "error": code, **extra}, {}


def _json_or_text(raw: str) -> Any:
    try:
        return json.loads(raw)
    except ValueError:
        return raw


def _send(handler: BaseHTTPRequestHandler, status: int, body: Any, headers: dict[str, str]) -> None:
    if isinstance(body, dict):
        data, content_type = json.dumps(body).encode(), "application/json; charset=utf-8"
    else:
        data, content_type = str(body or "").encode(), "text/html"
    try:
        handler.send_response(status)
        handler.send_header("content-type", content_type)
        handler.send_header("content-length", str(len(data)))
        for key, value in headers.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)
    except (BrokenPipeError, ConnectionResetError):
        pass  # the client gave up (timeout): what tests provoke


def signed_headers(secret: str, body: bytes, timestamp: float | None = None) -> dict[str, str]:
    """What Slack sends with every request to an app: a timestamp and its v0 signature."""
    stamp = str(int(time.time() if timestamp is None else timestamp))
    digest = hmac.new(secret.encode(), f"v0:{stamp}:".encode() + body, hashlib.sha256)
    return {
        "x-slack-request-timestamp": stamp,
        "x-slack-signature": "v0=" + digest.hexdigest(),
        "content-type": "application/x-www-form-urlencoded",
    }


def click(run_id: str, user: str, action_id: str, channel: str = "C0DEPLOYS") -> bytes:
    """The form body of a block_actions interaction: someone pressed a button."""
    payload = {
        "type": "block_actions",
        "user": {"id": user, "username": user.lower()},
        "team": {"id": "T0STANDIN"},
        "channel": {"id": channel},
        "actions": [{"action_id": action_id, "value": run_id, "type": "button"}],
        "response_url": "https://hooks.slack.com/actions/T0STANDIN/1/abc",
        "trigger_id": "1.2.3",
    }
    return urlencode({"payload": json.dumps(payload)}).encode()


def command(text: str, user: str, channel: str = "C0DEPLOYS") -> bytes:
    """The form body of a slash command: `/hookwise <text>`."""
    fields = {"command": "/hookwise", "text": text, "user_id": user, "channel_id": channel}
    return urlencode({**fields, "team_id": "T0STANDIN", "response_url": "https://x/y"}).encode()
