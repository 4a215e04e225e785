"""A local stand-in for Jenkins, close enough that the real python-jenkins works against it.

Endpoints (paths under the root URL; `<job>` is `job/a/job/b/...` for folder a, job b):

- GET  crumbIssuer/api/json          crumbRequestField + crumb, bound to a JSESSIONID cookie;
                                     404 when `csrf` is off (as a Jenkins without CSRF protection)
- GET  api/json, me/api/json         root and whoami
- GET  <job>/api/json                job info, with builds and their parameters
- POST <job>/build                   201, Location: <root>/queue/item/N/ (400 "Nothing is
                                     submitted" on a job with parameters)
- POST <job>/buildWithParameters     same; parameters from query or form body (400 "... is not
                                     parameterized" on a job without)
- GET  queue/api/json                the waiting items
- GET  queue/item/N/api/json         `why` for `Job.queued_polls` looks, then `executable`;
                                     or `cancelled: true` when `Job.cancel`
- GET  <job>/N/api/json              `building` for `Job.building_polls` looks, then the result

Every request needs HTTP basic auth with a known user and API token (401 otherwise); build
POSTs may instead carry the job's remote trigger `?token=`. With `csrf` on, POSTs need the
crumb header and the session cookie it was issued for (403 "No valid crumb" otherwise).
`script()` makes the next matching requests fail with a given status, body and headers.
"""

from __future__ import annotations

import base64
import json
import secrets
import threading
import time
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, quote, unquote, urlsplit

from tests.standins.loopback import Loopback

CRUMB_FIELD = "Jenkins-Crumb"


@dataclass
class Job:
    """A scripted job: its parameters (None: not parameterised) and how its builds go."""

    parameters: dict[str, str] | None = None
    token: str | None = None
    result: str = "SUCCESS"
    duration_ms: int = 1234
    queued_polls: int = 1
    building_polls: int = 1
    cancel: bool = False
    builds: list[dict[str, Any]] = field(default_factory=list)


@dataclass
class Seen:
    method: str
    path: str
    query: dict[str, list[str]]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    method: str
    path: str
    status: int
    body: str
    headers: dict[str, str]
    times: int


class JenkinsStandin:
    def __init__(self, *, csrf: bool = True) -> None:
        self.csrf = csrf
        self.users = {"hookwise": "api-token-1234"}
        self.jobs: dict[str, Job] = {}
        self.requests: list[Seen] = []
        self.queue: dict[int, dict[str, Any]] = {}
        self.sessions: dict[str, str] = {}  # session id -> crumb
        self.failures: list[Failure] = []
        self.next_queue_id = 7
        self.lock = threading.Lock()
        self.loopback = Loopback(lambda request: self._handle(request, request.command),
                                 ["GET", "POST"])  # fmt: skip
        self.url = self.loopback.url + "/"

    # -- scripting and inspection -------------------------------------------------------

    def add_job(self, path: str, **options: Any) -> Job:
        job = self.jobs[path] = Job(**options)
        return job

    def script(
        self,
        method: str,
        path: str,
        status: int,
        body: str = "",
        headers: dict[str, str] | None = None,
        times: int = 1,
    ) -> None:
        """The next `times` requests whose path contains `path` answer `status`."""
        self.failures.append(Failure(method, path, status, body, headers or {}, times))

    def seen(self, method: str | None = None, contains: str = "") -> list[Seen]:
        return [
            r
            for r in self.requests
            if (method is None or r.method == method) and contains in r.path
        ]

    def close(self) -> None:
        self.loopback.close()

    # -- request handling ----------------------------------------------------------------

    def _handle(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        query = parse_qs(parts.query)
        body: Any = raw.decode(errors="replace")
        if handler.headers.get("content-type", "").startswith("application/x-www-form"):
            body = parse_qs(body)
        headers = {k.lower(): v for k, v in handler.headers.items()}
        with self.lock:
            self.requests.append(Seen(method, unquote(parts.path), query, headers, body))
            status, payload, extra = self._answer(method, parts.path, query, headers, body)
        data = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
        handler.send_response(status)
        kind = "application/json" if not isinstance(payload, bytes) else "text/html"
        handler.send_header("Content-Type", extra.pop("Content-Type", kind))
        handler.send_header("Content-Length", str(len(data)))
        for key, value in extra.items():
            handler.send_header(key, value)
        handler.end_headers()
        handler.wfile.write(data)

    def _answer(
        self,
        method: str,
        path: str,
        query: dict[str, list[str]],
        headers: dict[str, str],
        body: Any,
    ) -> tuple[int, Any, dict[str, str]]:
        for failure in self.failures:
            if failure.times > 0 and failure.method == method and failure.path in path:
                failure.times -= 1
                return failure.status, failure.body.encode(), dict(failure.headers)
        user = self._user(headers)
        segments = [unquote(s) for s in path.strip("/").split("/")] if path.strip("/") else []
        job_path, rest = _job_of(segments)
        is_build = method == "POST" and rest in (["build"], ["buildWithParameters"])
        token = (query.get("token") or [None])[0]
        job = self.jobs.get(job_path) if job_path else None
        trigger_by_token = is_build and job is not None and job.token and token == job.token
        if user is False:
            return 401, _page(401, "Invalid password/token for user"), {}
        if user is None and not trigger_by_token:
            return 403, _page(403, "Authentication required"), {}
        if method == "POST" and self.csrf and not trigger_by_token and not self._crumb_ok(headers):
            return 403, _page(403, "No valid crumb was included in the request"), {}
        if method == "GET" and segments == ["crumbIssuer", "api", "json"]:
            return self._crumb()
        if method == "GET" and segments == ["api", "json"]:
            jobs = [{"name": name, "url": self._job_url(name)} for name in self.jobs]
            return 200, {"_class": "hudson.model.Hudson", "useCrumbs": self.csrf, "jobs": jobs}, {}
        if method == "GET" and segments == ["me", "api", "json"]:
            return 200, {"_class": "hudson.model.User", "id": user, "fullName": user}, {}
        if method == "GET" and segments == ["queue", "api", "json"]:
            items = [self._queue_view(i) for i in self.queue.values() if "executable" not in i]
            return 200, {"_class": "hudson.model.Queue", "items": items}, {}
        if (
            method == "GET"
            and segments[:2] == ["queue", "item"]
            and segments[3:] == ["api", "json"]
        ):
            return self._queue_item(int(segments[2]))
        if job is None:
            return 404, _page(404, "Not Found"), {}
        if method == "GET" and rest == ["api", "json"]:
            return 200, self._job_info(job_path, job), {}
        if method == "GET" and len(rest) == 3 and rest[1:] == ["api", "json"]:
            return self._build_info(job_path, job, int(rest[0]))
        if is_build:
            return self._trigger(job_path, job, rest[0], query, body)
        return 404, _page(404, "Not Found"), {}

    def _user(self, headers: dict[str, str]) -> str | bool | None:
        """The user, None for anonymous, False for wrong credentials."""
        auth = headers.get("authorization", "")
        if not auth.startswith("Basic "):
            return None
        name, _, secret = base64.b64decode(auth[6:]).decode().partition(":")
        return name if self.users.get(name) == secret else False

    def _crumb(self) -> tuple[int, Any, dict[str, str]]:
        if not self.csrf:
            return 404, _page(404, "Not Found"), {}
        session, crumb = secrets.token_hex(8), secrets.token_hex(16)
        self.sessions[session] = crumb
        payload = {
            "_class": "hudson.security.csrf.DefaultCrumbIssuer",
            "crumb": crumb,
            "crumbRequestField": CRUMB_FIELD,
        }
        return 200, payload, {"Set-Cookie": f"JSESSIONID.standin={session}; Path=/; HttpOnly"}

    def _crumb_ok(self, headers: dict[str, str]) -> bool:
        cookies = dict(
            part.strip().split("=", 1)
            for part in headers.get("cookie", "").split(";")
            if "=" in part
        )
        crumb = self.sessions.get(cookies.get("JSESSIONID.standin", ""))
        return crumb is not None and headers.get(CRUMB_FIELD.lower()) == crumb

    def _job_url(self, job_path: str) -> str:
        return self.url + "".join(f"job/{quote(p, safe='')}/" for p in job_path.split("/"))

    def _job_info(self, job_path: str, job: Job) -> dict[str, Any]:
        info: dict[str, Any] = {
            "_class": "hudson.model.FreeStyleProject",
            "name": job_path.split("/")[-1],
            "fullName": job_path,
            "url": self._job_url(job_path),
            "buildable": True,
            "nextBuildNumber": len(job.builds) + 1,
            "builds": [
                {k: b[k] for k in ("number", "url", "queueId", "actions")}
                for b in reversed(job.builds)
            ],
            "property": [],
        }
        if job.parameters is not None:
            definitions = [
                {"name": name, "defaultParameterValue": {"value": default}}
                for name, default in job.parameters.items()
            ]
            info["property"].append(
                {
                    "_class": "hudson.model.ParametersDefinitionProperty",
                    "parameterDefinitions": definitions,
                }
            )
        return info

    def _trigger(
        self, job_path: str, job: Job, endpoint: str, query: dict[str, list[str]], body: Any
    ) -> tuple[int, Any, dict[str, str]]:
        if endpoint == "buildWithParameters" and job.parameters is None:
            trace = f"java.io.IOException: {job_path} is not parameterized\n\tat hudson.model.X"
            return 400, trace.encode(), {"Content-Type": "text/plain;charset=UTF-8"}
        if endpoint == "build" and job.parameters is not None:
            return 400, _page(400, "Nothing is submitted"), {}
        sent = {**query, **(body if isinstance(body, dict) else {})}
        # Like Jenkins: defined parameters take the sent value or their default; others drop.
        values = {
            name: (sent.get(name) or [default])[-1]
            for name, default in (job.parameters or {}).items()
        }
        queue_id = self.next_queue_id
        self.next_queue_id += 1
        self.queue[queue_id] = {
            "id": queue_id,
            "job": job_path,
            "params": values,
            "polls": job.queued_polls,
            "cancelled": job.cancel,
        }
        return 201, b"", {"Location": f"{self.url}queue/item/{queue_id}/"}

    def _queue_view(self, item: dict[str, Any]) -> dict[str, Any]:
        job_path = item["job"]
        return {
            "_class": "hudson.model.Queue$WaitingItem",
            "id": item["id"],
            "task": {"name": job_path.split("/")[-1], "url": self._job_url(job_path)},
            "params": "".join(f"\n{k}={v}" for k, v in item["params"].items()),
            "why": "Waiting for next available executor",
            "blocked": False,
            "buildable": True,
            "inQueueSince": 0,
        }

    def _queue_item(self, queue_id: int) -> tuple[int, Any, dict[str, str]]:
        item = self.queue.get(queue_id)
        if item is None:
            return 404, _page(404, "Not Found"), {}
        if item["cancelled"]:
            view = {"_class": "hudson.model.Queue$LeftItem", "id": queue_id, "cancelled": True}
            return 200, {**view, "executable": None, "why": None}, {}
        if "executable" not in item and item["polls"] > 0:
            item["polls"] -= 1
            return 200, self._queue_view(item), {}
        if "executable" not in item:
            job = self.jobs[item["job"]]
            number = len(job.builds) + 1
            url = f"{self._job_url(item['job'])}{number}/"
            parameters = [{"name": k, "value": v} for k, v in item["params"].items()]
            job.builds.append(
                {
                    "number": number,
                    "url": url,
                    "queueId": queue_id,
                    "actions": [
                        {"_class": "hudson.model.ParametersAction", "parameters": parameters}
                    ],
                    "polls": job.building_polls,
                    "started": time.time(),
                }
            )
            item["executable"] = {"_class": "hudson.model.FreeStyleBuild", "number": number}
            item["executable"]["url"] = url
        left = {"_class": "hudson.model.Queue$LeftItem", "id": queue_id, "cancelled": False}
        return 200, {**left, "executable": item["executable"], "why": None}, {}

    def _build_info(self, job_path: str, job: Job, number: int) -> tuple[int, Any, dict]:
        if not 1 <= number <= len(job.builds):
            return 404, _page(404, "Not Found"), {}
        build = job.builds[number - 1]
        building = build["polls"] > 0
        if building:
            build["polls"] -= 1
        info = {
            "_class": "hudson.model.FreeStyleBuild",
            "number": number,
            "url": build["url"],
            "queueId": build["queueId"],
            "fullDisplayName": f"{job_path} #{number}",
            "building": building,
            "result": None if building else job.result,
            "duration": 0 if building else job.duration_ms,
            "actions": build["actions"],
        }
        return 200, info, {}


def _job_of(segments: list[str]) -> tuple[str | None, list[str]]:
    """`job/a/job/b/rest...` -> ("a/b", rest)."""
    names: list[str] = []
    while len(segments) >= 2 and segments[0] == "job":
        names.append(segments[1])
        segments = segments[2:]
    return ("/".join(names) if names else None), segments


def _page(status: int, message: str) -> bytes:
    return (
        f"<html><head><title>Error {status}</title></head><body>"
        f"<h2>HTTP ERROR {status} {message}</h2></body></html>"
    ).encode()
