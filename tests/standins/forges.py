"""A stand-in for the pull-request APIs of GitHub (REST v3) and GitLab (API v4).

No GitHub or GitLab can run here, so this serves the few calls `git.pull_request`
makes, as the real APIs answer them, to the real clients (PyGithub, python-gitlab):

- GitHub under `/github` (an Enterprise-style base URL): list a repository's pulls
  filtered by `state`, `head` (`owner:branch`) and `base`; create one (201, 422 when an
  open one for that head exists, as GitHub refuses); edit title and body; merge.
- GitLab under `/gitlab/api/v4`: list a project's merge requests filtered by `state`,
  `source_branch` and `target_branch` (the project by id or URL-encoded path); create
  (201, 409 when an open one for that branch exists); update; merge.

Tokens are checked as the real services read them (`Authorization: token|Bearer` and
`PRIVATE-TOKEN`); unknown repositories are 404. Every request is recorded.
"""

from __future__ import annotations

import json
import threading
from dataclasses import dataclass
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from tests.gitserver import TOKEN  # one token for the repository and its forge, as in life
from tests.standins.loopback import Loopback, send_json


@dataclass
class Seen:
    method: str
    path: str
    body: Any


class ForgeStandin:
    def __init__(self, projects: list[str], host: str = "127.0.0.1") -> None:
        self.projects = set(projects)
        self.pulls: dict[str, list[dict[str, Any]]] = {p: [] for p in projects}
        self.requests: list[Seen] = []
        self.lock = threading.Lock()
        self.loopback = Loopback(self._handle, ["GET", "POST", "PATCH", "PUT"], host)
        self.url = self.loopback.url

    def close(self) -> None:
        self.loopback.close()

    def _handle(self, handler: BaseHTTPRequestHandler) -> None:
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        body = json.loads(raw) if raw else None
        parts = urlsplit(handler.path)
        query = {k: v[0] for k, v in parse_qs(parts.query).items()}
        with self.lock:
            self.requests.append(Seen(handler.command, parts.path, body))
            if parts.path.startswith("/github/"):
                status, answer = self._github(handler, parts.path[7:], query, body)
            elif parts.path.startswith("/gitlab/api/v4/"):
                status, answer = self._gitlab(handler, parts.path[14:], query, body)
            else:
                status, answer = 404, {"message": "Not Found"}
        send_json(handler, status, answer)

    # -- GitHub ------------------------------------------------------------------------

    def _github(self, handler: Any, path: str, query: dict, body: Any) -> tuple[int, Any]:
        auth = handler.headers.get("authorization", "")
        if auth not in (f"token {TOKEN}", f"Bearer {TOKEN}"):
            return 401, {"message": "Bad credentials"}
        steps = path.strip("/").split("/")
        if len(steps) < 4 or steps[0] != "repos" or steps[3] != "pulls":
            return 404, {"message": "Not Found"}
        project = f"{steps[1]}/{steps[2]}"
        if project not in self.projects:
            return 404, {"message": "Not Found"}
        pulls = self.pulls[project]
        if len(steps) == 4 and handler.command == "GET":
            owner = steps[1]
            found = [p for p in pulls if p["state"] == query.get("state", "open")
                     and query.get("head", f"{owner}:{p['head']['ref']}") == p["head"]["label"]
                     and query.get("base", p["base"]["ref"]) == p["base"]["ref"]]  # fmt: skip
            return 200, found
        if len(steps) == 4 and handler.command == "POST":
            if any(p["state"] == "open" and p["head"]["ref"] == body["head"] for p in pulls):
                message = f"A pull request already exists for {steps[1]}:{body['head']}."
                return 422, {"message": "Validation Failed", "errors": [{"message": message}]}
            number = len(pulls) + 1
            api = f"{self.url}/github/repos/{project}/pulls/{number}"
            pull = {"number": number, "url": api, "state": "open", "merged": False,
                    "html_url": f"{self.url}/{project}/pull/{number}",
                    "title": body["title"], "body": body.get("body"),
                    "head": {"ref": body["head"], "label": f"{steps[1]}:{body['head']}"},
                    "base": {"ref": body["base"]}}  # fmt: skip
            pulls.append(pull)
            return 201, pull
        number = steps[4] if len(steps) > 4 else ""
        pull = next((p for p in pulls if str(p["number"]) == number), None)
        if pull is None:
            return 404, {"message": "Not Found"}
        if len(steps) == 5 and handler.command == "PATCH":
            pull.update({k: v for k, v in body.items() if k in ("title", "body")})
            return 200, pull
        if len(steps) == 6 and steps[5] == "merge" and handler.command == "PUT":
            pull.update(state="closed", merged=True)
            merged = "Pull Request successfully merged"
            return 200, {"sha": "0" * 40, "merged": True, "message": merged}
        return 404, {"message": "Not Found"}

    # -- GitLab ------------------------------------------------------------------------

    def _gitlab(self, handler: Any, path: str, query: dict, body: Any) -> tuple[int, Any]:
        if handler.headers.get("private-token") != TOKEN:
            return 401, {"message": "401 Unauthorized"}
        steps = path.strip("/").split("/")
        if len(steps) < 3 or steps[0] != "projects" or steps[2] != "merge_requests":
            return 404, {"message": "404 Not Found"}
        project = unquote(steps[1])
        if project not in self.projects:
            return 404, {"message": "404 Project Not Found"}
        requests = self.pulls[project]
        if len(steps) == 3 and handler.command == "GET":
            wanted = ("state", "source_branch", "target_branch")
            found = [r for r in requests if all(query.get(k, r[k]) == r[k] for k in wanted)]
            return 200, found
        if len(steps) == 3 and handler.command == "POST":
            branch = body["source_branch"]
            if any(r["state"] == "opened" and r["source_branch"] == branch for r in requests):
                taken = "Another open merge request already exists for this source branch"
                return 409, {"message": [taken]}
            iid = len(requests) + 1
            request = {"id": 1000 + iid, "iid": iid, "project_id": 7, "state": "opened",
                       "web_url": f"{self.url}/{project}/-/merge_requests/{iid}",
                       "title": body["title"], "description": body.get("description", ""),
                       "source_branch": branch, "target_branch": body["target_branch"]}  # fmt: skip
            requests.append(request)
            return 201, request
        iid = steps[3] if len(steps) > 3 else ""
        request = next((r for r in requests if str(r["iid"]) == iid), None)
        if request is None:
            return 404, {"message": "404 Not found"}
        if len(steps) == 4 and handler.command == "PUT":
            request.update({k: v for k, v in body.items() if k in ("title", "description")})
            return 200, request
        if len(steps) == 5 and steps[4] == "merge" and handler.command == "PUT":
            request["state"] = "merged"
            return 200, request
        return 404, {"message": "404 Not found"}
