"""A local stand-in for the Jira REST API v2, good enough for the real `jira` library.

It keeps projects, issues, comments and a three-status workflow in memory, checks
credentials the way Jira does (HTTP basic for Server/DC and Cloud, `Bearer` for personal
access tokens), records every request, and can be scripted to fail.

Endpoints (all under /rest/api/2; anything else answers 404 and is kept in `misses`):

| Method | Path | What |
|---|---|---|
| GET | /serverInfo | version and `deploymentType` ("Server" or "Cloud") |
| GET | /myself | the authenticated user |
| GET | /field | field list with JQL clause names (the library caches it before searches) |
| GET | /project/{key or id} | one project with its issue types |
| POST | /issue | create: project by key or id, issue type by name or id, summary required |
| GET | /issue/{key or id} | the issue with status, labels and comments |
| GET, POST | /search | JQL search (Server/DC), `startAt`/`maxResults` |
| GET, POST | /search/jql | JQL search (Cloud's enhanced search, `nextPageToken`) |
| GET, POST | /issue/{key}/comment | list or add comments |
| GET, POST | /issue/{key}/transitions | list transitions from the current status, or do one |

JQL: `field = value`, `field != value` and `field in (a, b)` on `project`, `labels`,
`status`, `statusCategory`, `key` and `issuetype`, combined with AND, OR and parentheses,
with an optional `ORDER BY created ASC|DESC` (anything else is a 400, as in Jira).

Workflow: To Do --Start Progress--> In Progress --Done--> Done --Reopen--> To Do, and
To Do --Done--> Done; In Progress --Stop Progress--> To Do.
"""

from __future__ import annotations

import base64
import json
import re
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler
from typing import Any
from urllib.parse import parse_qs, urlsplit

from tests.standins.loopback import Loopback

API = "/rest/api/2"
NOT_AUTHENTICATED = "You are not authenticated. Authentication required to perform this operation."

STATUSES = {
    "To Do": {"id": "1", "key": "new", "name": "To Do"},
    "In Progress": {"id": "3", "key": "indeterminate", "name": "In Progress"},
    "Done": {"id": "10001", "key": "done", "name": "Done"},
}
# (transition id, name, from statuses, to status)
WORKFLOW = [
    ("11", "Stop Progress", {"In Progress"}, "To Do"),
    ("21", "Start Progress", {"To Do"}, "In Progress"),
    ("31", "Done", {"To Do", "In Progress"}, "Done"),
    ("41", "Reopen", {"Done"}, "To Do"),
]
ISSUE_TYPES = [{"id": "10004", "name": "Bug"}, {"id": "10002", "name": "Task"}]
FIELDS = [
    ("summary", "Summary"),
    ("description", "Description"),
    ("labels", "Labels"),
    ("status", "Status"),
    ("comment", "Comment"),
    ("project", "Project"),
    ("issuetype", "Issue Type"),
    ("created", "Created"),
    ("priority", "Priority"),
    ("components", "Component/s"),
    ("assignee", "Assignee"),
]


@dataclass
class Request:
    method: str
    path: str
    query: dict[str, str]
    headers: dict[str, str]
    body: Any


@dataclass
class Failure:
    """A scripted answer for the next request matching `method` and the `path` regex.

    Status 0 means: answer normally, after `delay` seconds. A `bytes` body is sent as is.
    """

    method: str
    path: str
    status: int
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0


class JiraError(Exception):
    def __init__(self, status: int, messages: list[str] | None = None, errors: Any = None) -> None:
        super().__init__(status)
        self.status = status
        self.body = {"errorMessages": messages or [], "errors": errors or {}}


class JiraStandin:
    """A threaded loopback Jira; `issues`, `comments` and `requests` are for assertions."""

    def __init__(
        self,
        *,
        username: str = "hookwise-bot",
        password: str = "s3cret-pw",
        token: str = "pat-0123456789",
        email: str = "bot@example.com",
        api_token: str = "cloud-api-token",
        deployment: str = "Server",
    ) -> None:
        self.basic = {(username, password), (email, api_token)}
        self.token = token
        self.deployment = deployment
        self.projects = {"OPS": {"id": "10000", "key": "OPS", "name": "Operations"}}
        self.issues: dict[str, dict[str, Any]] = {}
        self.comments: dict[str, list[dict[str, Any]]] = {}
        self.requests: list[Request] = []
        self.misses: list[str] = []
        self.failures: list[Failure] = []
        self.lock = threading.Lock()
        self.release = threading.Event()
        self._next_id = 10100
        methods = ["GET", "POST", "PUT", "DELETE"]
        self.loopback = Loopback(lambda request: self._serve(request, request.command), methods)
        self.url = self.loopback.url

    # -- scripting and inspection ---------------------------------------------------

    def fail(
        self,
        method: str,
        path: str,
        status: int,
        body: Any = None,
        headers: dict[str, str] | None = None,
        delay: float = 0.0,
    ) -> None:
        """Answer the next matching request with `status` (path is a regex on the API path)."""
        if body is None:
            body = {"errorMessages": [f"scripted {status}"], "errors": {}}
        with self.lock:
            self.failures.append(Failure(method, path, status, body, headers or {}, delay))

    def slow(self, method: str, path: str, delay: float) -> None:
        """Handle the next matching request normally, but answer only after `delay` seconds.

        The change is made at once, as when Jira is slow to answer: the client times out
        although the issue or comment exists.
        """
        with self.lock:
            self.failures.append(Failure(method, path, 0, delay=delay))

    def add_issue(self, project: str = "OPS", summary: str = "existing", **fields: Any) -> str:
        """Seed an issue directly (not recorded as a request); returns its key."""
        with self.lock:
            issue = self._new_issue(self.projects[project], ISSUE_TYPES[0], summary, fields)
        return issue["key"]

    def calls(self, method: str | None = None, path: str | None = None) -> list[Request]:
        """Recorded requests, optionally filtered by method and API path (regex, full match)."""
        return [
            r
            for r in self.requests
            if (method is None or r.method == method)
            and (path is None or re.fullmatch(path, r.path.removeprefix(API)))
        ]

    def close(self) -> None:
        self.release.set()
        self.loopback.close()

    # -- HTTP plumbing ------------------------------------------------------------

    def _serve(self, handler: BaseHTTPRequestHandler, method: str) -> None:
        parts = urlsplit(handler.path)
        # A repeated parameter (fields=a&fields=b) means a list, as a comma list does.
        query = {k: ",".join(v) for k, v in parse_qs(parts.query, keep_blank_values=True).items()}
        length = int(handler.headers.get("content-length") or 0)
        raw = handler.rfile.read(length) if length else b""
        try:
            body = json.loads(raw) if raw else None
        except ValueError:
            body = raw.decode(errors="replace")
        headers = {k.lower(): v for k, v in handler.headers.items()}
        request = Request(method, parts.path, query, headers, body)
        with self.lock:
            self.requests.append(request)
        status, payload, extra, delay = self._answer(request)
        if delay:
            self.release.wait(delay)
        raw_body = isinstance(payload, bytes)  # scripted non-JSON, e.g. a proxy's login page
        data = payload if raw_body else b"" if payload is None else json.dumps(payload).encode()
        kind = "text/html" if raw_body else "application/json;charset=UTF-8"
        try:
            handler.send_response(status)
            handler.send_header("content-type", kind)
            handler.send_header("content-length", str(len(data)))
            for key, value in extra.items():
                handler.send_header(key, value)
            handler.end_headers()
            handler.wfile.write(data)
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout), which tests provoke on purpose

    def _answer(self, request: Request) -> tuple[int, Any, dict[str, str], float]:
        with self.lock:
            for failure in self.failures:
                if failure.method == request.method and re.fullmatch(
                    failure.path, request.path.removeprefix(API)
                ):
                    self.failures.remove(failure)
                    if failure.status:
                        return failure.status, failure.body, failure.headers, failure.delay
                    slow = failure.delay
                    break
            else:
                slow = 0.0
        if not self._authenticated(request.headers.get("authorization", "")):
            return 401, {"errorMessages": [NOT_AUTHENTICATED], "errors": {}}, {}, 0.0
        try:
            with self.lock:
                status, payload = self._route(request)
        except JiraError as exc:
            return exc.status, exc.body, {}, slow
        return status, payload, {}, slow

    def _authenticated(self, header: str) -> bool:
        scheme, _, value = header.partition(" ")
        if scheme.lower() == "bearer":
            return value == self.token
        if scheme.lower() == "basic":
            try:
                user, _, password = base64.b64decode(value).decode().partition(":")
            except ValueError:
                return False
            return (user, password) in self.basic
        return False

    def _route(self, request: Request) -> tuple[int, Any]:
        path = request.path.removeprefix(API)
        routes: list[tuple[str, str, Callable[..., tuple[int, Any]]]] = [
            ("GET", r"/serverInfo", self._server_info),
            ("GET", r"/myself", self._myself),
            ("GET", r"/field", self._fields),
            ("GET", r"/project/([^/]+)", self._project),
            ("POST", r"/issue", self._create),
            ("GET", r"/issue/([^/]+)", self._get_issue),
            ("GET", r"/search(/jql)?", self._search),
            ("POST", r"/search(/jql)?", self._search),
            ("GET", r"/issue/([^/]+)/comment", self._list_comments),
            ("POST", r"/issue/([^/]+)/comment", self._add_comment),
            ("GET", r"/issue/([^/]+)/transitions", self._transitions),
            ("POST", r"/issue/([^/]+)/transitions", self._transition),
        ]
        if request.path.startswith(API):
            for method, pattern, view in routes:
                match = re.fullmatch(pattern, path)
                if method == request.method and match:
                    return view(request, *match.groups())
        self.misses.append(f"{request.method} {request.path}")
        raise JiraError(404, ["null for uri: " + request.path])

    # -- resources -------------------------------------------------------------------

    def _server_info(self, request: Request) -> tuple[int, Any]:
        return 200, {
            "baseUrl": self.url,
            "version": "9.12.0",
            "versionNumbers": [9, 12, 0],
            "deploymentType": self.deployment,
            "serverTitle": "Stand-in Jira",
        }

    def _myself(self, request: Request) -> tuple[int, Any]:
        return 200, {"name": "hookwise-bot", "displayName": "hookwise", "active": True}

    def _fields(self, request: Request) -> tuple[int, Any]:
        return 200, [
            {"id": fid, "name": name, "custom": False, "clauseNames": [fid]} for fid, name in FIELDS
        ]

    def _find_project(self, ref: Any) -> dict[str, Any] | None:
        if isinstance(ref, dict):
            ref = ref.get("key") or ref.get("id")
        for project in self.projects.values():
            if str(ref) in (project["key"], project["id"]):
                return project
        return None

    def _project(self, request: Request, ref: str) -> tuple[int, Any]:
        project = self._find_project(ref)
        if project is None:
            raise JiraError(404, [f"No project could be found with key '{ref}'."])
        return 200, {**project, "self": f"{self.url}{API}/project/{project['id']}"} | {
            "issueTypes": ISSUE_TYPES
        }

    def _issue(self, ref: str) -> dict[str, Any]:
        for issue in self.issues.values():
            if ref in (issue["key"], issue["id"]):
                return issue
        raise JiraError(404, ["Issue Does Not Exist"])

    def _new_issue(
        self,
        project: dict[str, Any],
        issue_type: dict[str, Any],
        summary: str,
        fields: dict[str, Any],
    ) -> dict[str, Any]:
        self._next_id += 1
        number = sum(1 for i in self.issues.values() if i["project"] == project["key"]) + 1
        key = f"{project['key']}-{number}"
        issue = {
            "id": str(self._next_id),
            "key": key,
            "project": project["key"],
            "created": time.time() + self._next_id * 1e-6,  # strictly increasing
            "status": "To Do",
            "fields": {
                **fields,
                "summary": summary,
                "issuetype": issue_type,
                "labels": list(fields.get("labels", [])),
            },
        }
        self.issues[key] = issue
        self.comments[key] = []
        return issue

    def _render(self, issue: dict[str, Any]) -> dict[str, Any]:
        status = STATUSES[issue["status"]]
        comments = self.comments[issue["key"]]
        fields = {
            **issue["fields"],
            "project": self.projects[issue["project"]],
            "status": {
                "id": status["id"],
                "name": status["name"],
                "statusCategory": {"key": status["key"], "name": status["name"]},
            },
            "created": time.strftime("%Y-%m-%dT%H:%M:%S.000+0000", time.gmtime(issue["created"])),
            "comment": {
                "comments": comments,
                "startAt": 0,
                "maxResults": len(comments),
                "total": len(comments),
            },
        }
        return {
            "id": issue["id"],
            "key": issue["key"],
            "self": f"{self.url}{API}/issue/{issue['id']}",
            "fields": fields,
        }

    def _create(self, request: Request) -> tuple[int, Any]:
        fields = (request.body or {}).get("fields") if isinstance(request.body, dict) else None
        if not isinstance(fields, dict):
            raise JiraError(400, ["Can not deserialize instance of fields"])
        errors: dict[str, str] = {}
        project = self._find_project(fields.get("project"))
        if project is None:
            errors["project"] = "valid project is required"
        wanted = fields.get("issuetype") or {}
        issue_type = next(
            (
                t
                for t in ISSUE_TYPES
                if wanted.get("name") == t["name"] or wanted.get("id") == t["id"]
            ),
            None,
        )
        if issue_type is None:
            errors["issuetype"] = "valid issue type is required"
        if not fields.get("summary"):
            errors["summary"] = "You must specify a summary of the issue."
        for label in fields.get("labels", []):
            if " " in label:
                errors["labels"] = f"The label '{label}' contains spaces which is invalid."
        if errors:
            raise JiraError(400, [], errors)
        assert project is not None and issue_type is not None
        rest = {k: v for k, v in fields.items() if k not in ("project", "issuetype", "summary")}
        issue = self._new_issue(project, issue_type, fields["summary"], rest)
        return 201, {
            "id": issue["id"],
            "key": issue["key"],
            "self": f"{self.url}{API}/issue/{issue['id']}",
        }

    def _get_issue(self, request: Request, ref: str) -> tuple[int, Any]:
        return 200, self._render(self._issue(ref))

    def _search(self, request: Request, jql_suffix: str | None = None) -> tuple[int, Any]:
        params = request.body if request.method == "POST" else request.query
        query = Jql(str(params.get("jql", "")), self)
        found = sorted(
            (i for i in self.issues.values() if query.matches(i)),
            key=lambda i: i["created"],
            reverse=query.descending,
        )
        start = int(params.get("startAt") or 0)
        limit = int(params.get("maxResults") or 50)
        page = [self._render(i) for i in found[start : start + limit]]
        if jql_suffix:  # Cloud's enhanced search: token paging, no total
            return 200, {"issues": page, "isLast": start + limit >= len(found)}
        return 200, {"startAt": start, "maxResults": limit, "total": len(found), "issues": page}

    def _list_comments(self, request: Request, ref: str) -> tuple[int, Any]:
        comments = self.comments[self._issue(ref)["key"]]
        return 200, {
            "comments": comments,
            "startAt": 0,
            "maxResults": len(comments),
            "total": len(comments),
        }

    def _comment(self, issue: dict[str, Any], body: str) -> dict[str, Any]:
        self._next_id += 1
        comment = {
            "id": str(self._next_id),
            "self": f"{self.url}{API}/issue/{issue['id']}/comment/{self._next_id}",
            "body": body,
            "author": {"name": "hookwise-bot"},
        }
        self.comments[issue["key"]].append(comment)
        return comment

    def _add_comment(self, request: Request, ref: str) -> tuple[int, Any]:
        issue = self._issue(ref)
        body = request.body.get("body") if isinstance(request.body, dict) else None
        if not body:
            raise JiraError(400, [], {"comment": "Comment body can not be empty!"})
        return 201, self._comment(issue, body)

    def _available(self, issue: dict[str, Any]) -> list[dict[str, Any]]:
        return [
            {"id": tid, "name": name, "to": {"name": to, **STATUSES[to]}}
            for tid, name, sources, to in WORKFLOW
            if issue["status"] in sources
        ]

    def _transitions(self, request: Request, ref: str) -> tuple[int, Any]:
        return 200, {"expand": "transitions", "transitions": self._available(self._issue(ref))}

    def _transition(self, request: Request, ref: str) -> tuple[int, Any]:
        issue = self._issue(ref)
        body = request.body if isinstance(request.body, dict) else {}
        wanted = str((body.get("transition") or {}).get("id"))
        move = next((t for t in self._available(issue) if t["id"] == wanted), None)
        if move is None:
            raise JiraError(400, [f"Transition id '{wanted}' is not valid for this issue."])
        issue["status"] = move["to"]["name"]
        issue["fields"].update(body.get("fields") or {})
        for change in (body.get("update") or {}).get("comment", []):
            self._comment(issue, change["add"]["body"])
        return 204, None


class Jql:
    """Just enough JQL: comparisons joined by AND/OR with parentheses, and ORDER BY created."""

    TOKEN = re.compile(r'\s*(?:(\()|(\))|(!=|=)|(,)|"((?:[^"\\]|\\.)*)"|([\w.:-]+))')

    def __init__(self, text: str, standin: JiraStandin) -> None:
        self.standin = standin
        parts = re.split(r"(?i)\border\s+by\b", text, maxsplit=1)
        where = parts[0]
        order = parts[1].strip() if len(parts) > 1 else ""
        if order and not re.fullmatch(r"(?i)created(\s+(asc|desc))?", order):
            raise JiraError(400, [f"Error in the JQL Query: cannot order by '{order}'."])
        self.descending = order.lower().endswith("desc")
        self.tokens = self._tokenize(where)
        self.position = 0
        self.tree = self._or() if self.tokens else ("all",)
        if self.position != len(self.tokens):
            raise JiraError(
                400, [f"Error in the JQL Query: unexpected {self.tokens[self.position]}"]
            )

    def _tokenize(self, text: str) -> list[tuple[str, str]]:
        tokens, index = [], 0
        while index < len(text.rstrip()):
            match = self.TOKEN.match(text, index)
            if not match:
                raise JiraError(400, [f"Error in the JQL Query: cannot parse '{text[index:]}'"])
            index = match.end()
            kinds = ("(", ")", "op", ",", "string", "word")
            kind, value = next(
                (k, v) for k, v in zip(kinds, match.groups(), strict=True) if v is not None
            )
            if kind == "string":
                value = re.sub(r"\\(.)", r"\1", value)
            tokens.append((kind, value))
        return tokens

    def _peek(self) -> tuple[str, str]:
        return self.tokens[self.position] if self.position < len(self.tokens) else ("end", "")

    def _take(self, kind: str) -> str:
        token = self._peek()
        if token[0] != kind:
            raise JiraError(400, [f"Error in the JQL Query: expected {kind}, got '{token[1]}'"])
        self.position += 1
        return token[1]

    def _keyword(self, word: str) -> bool:
        kind, value = self._peek()
        if kind == "word" and value.upper() == word:
            self.position += 1
            return True
        return False

    def _or(self) -> tuple[Any, ...]:
        node = self._and()
        while self._keyword("OR"):
            node = ("or", node, self._and())
        return node

    def _and(self) -> tuple[Any, ...]:
        node = self._atom()
        while self._keyword("AND"):
            node = ("and", node, self._atom())
        return node

    def _atom(self) -> tuple[Any, ...]:
        if self._peek()[0] == "(":
            self._take("(")
            node = self._or()
            self._take(")")
            return node
        name = self._take("word").lower()
        if name not in ("project", "labels", "status", "statuscategory", "key", "issuetype"):
            raise JiraError(400, [f"Field '{name}' does not exist or you do not have permission."])
        if self._keyword("IN"):
            self._take("(")
            values = [self._value()]
            while self._peek()[0] == ",":
                self._take(",")
                values.append(self._value())
            self._take(")")
            return ("in", name, values)
        operator = self._take("op")
        value = self._value()
        if name == "project" and self.standin._find_project(value) is None:
            raise JiraError(400, [f"The value '{value}' does not exist for the field 'project'."])
        return ("cmp", name, operator, value)

    def _value(self) -> str:
        kind, value = self._peek()
        if kind not in ("word", "string"):
            raise JiraError(400, [f"Error in the JQL Query: expected a value, got '{value}'"])
        self.position += 1
        return value

    def matches(self, issue: dict[str, Any], node: tuple[Any, ...] | None = None) -> bool:
        node = node or self.tree
        if node[0] == "all":
            return True
        if node[0] == "and":
            return self.matches(issue, node[1]) and self.matches(issue, node[2])
        if node[0] == "or":
            return self.matches(issue, node[1]) or self.matches(issue, node[2])
        if node[0] == "in":
            return any(self._equals(issue, node[1], v) for v in node[2])
        _, name, operator, value = node
        equal = self._equals(issue, name, value)
        return equal if operator == "=" else not equal

    def _equals(self, issue: dict[str, Any], name: str, value: str) -> bool:
        status = STATUSES[issue["status"]]
        if name == "project":
            project = self.standin.projects[issue["project"]]
            return value.lower() in (project["key"].lower(), project["id"], project["name"].lower())
        if name == "labels":
            return value in issue["fields"]["labels"]
        if name == "status":
            return value.lower() == status["name"].lower()
        if name == "statuscategory":
            return value.lower() in (status["name"].lower(), status["key"])
        if name == "issuetype":
            return value.lower() == issue["fields"]["issuetype"]["name"].lower()
        return value.upper() == issue["key"]
