"""Jira actions for hookwise: open (or deduplicate) issues, comment, transition.

Settings (`integrations.jira`, overridable per action with `connection:`): `url`, one way
to authenticate — `username` + `password` (Server/Data Center), `token` (a Server/Data
Center personal access token, sent as Bearer) or `email` + `api_token` (Cloud) — plus
`timeout` and `default_project`.

Actions and their outputs:

- `jira.issue` → `{key, url, created, commented, comment_id}`: creates an issue, unless
  an open issue with the same `dedupe_key` exists, which gets a comment instead.
- `jira.comment` → `{key, comment_id}`.
- `jira.transition` → `{key, transition, status, changed}`: the transition by name, as
  Jira spells it, and the status it leads to. When no such transition is available but
  the issue is already in a status of that name (a retry after the transition went
  through, or a workflow where transitions are named after their target), nothing is
  done: `{transition: null, status, changed: false}`.

Labels written by `jira.issue`:

- the dedupe label: `dedupe_key` lower-cased, every run of characters other than
  `a-z 0-9 _ . : -` replaced by `-`, leading and trailing `-` removed; when that is
  longer than 100 characters (or empty) it is `hookwise-` + the first 16 hex digits of
  the SHA-1 of the key as written (UTF-8);
- the run label `hookwise-run-<idempotency key>`: every attempt first searches for it,
  so a retry after a timeout finds the issue the earlier attempt created instead of
  creating a second one. A comment added for a repeat ends with `ref <idempotency key>`,
  which a retry looks for before commenting again.

Failures: 401/403/404 and other 4xx are permanent (with Jira's own error text), 429
retries after its Retry-After, 5xx, time-outs and connection errors retry. The client
library's own retries are switched off so that the rule's `retry:` policy governs.
"""

from __future__ import annotations

import hashlib
import re
import threading
from collections import OrderedDict
from typing import Any

import requests
from jira import JIRA, JIRAError
from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator, model_validator

from hookwise.plugin import (
    ActionContext,
    ActionError,
    ActionSpec,
    Duration,
    EgressPolicy,
    IntegrationSpec,
    PermanentFailure,
    RetryLater,
    excerpt,
    guard_session,
    hookimpl,
    http_url,
    retry_after,
)

MAX_LABEL = 100
MAX_SUMMARY = 255
# Issue keys (`OPS-12`) or numeric ids only: either goes into a URL path.
ISSUE_KEY = r"^(?:[A-Za-z][A-Za-z0-9_]*-[0-9]+|[0-9]+)$"
AUTH_STYLES = "username + password, token, or email + api_token"


class JiraSettings(BaseModel):
    """Where Jira is and how to log in: exactly one of the three ways."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Base URL of Jira, with its context path if any, e.g. https://jira.example.com"
    )
    username: str | None = Field(
        default=None, description="Server/Data Center: user name, with `password`."
    )
    password: SecretStr | None = Field(
        default=None, description="Server/Data Center: that user's password."
    )
    token: SecretStr | None = Field(
        default=None, description="Server/Data Center: a personal access token (Bearer)."
    )
    email: str | None = Field(
        default=None, description="Cloud: the account's email address, with `api_token`."
    )
    api_token: SecretStr | None = Field(
        default=None, description="Cloud: an API token of that account."
    )
    timeout: Duration = Field(
        default=10.0, gt=0, description="Per-request timeout, e.g. 10s; keep it below the action's."
    )
    default_project: str | None = Field(
        default=None, description="Project key `jira.issue` uses when its `project` is not set."
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        http_url(url, root=True)
        return url.rstrip("/")

    @model_validator(mode="after")
    def _one_auth_style(self) -> JiraSettings:
        pairs = (("username", "password"), ("email", "api_token"))
        for first, second in pairs:
            if (getattr(self, first) is None) != (getattr(self, second) is None):
                given, missing = (first, second) if getattr(self, first) else (second, first)
                raise ValueError(f"{given} needs {missing}")
        styles = [
            name
            for name, present in (
                ("username + password", self.username is not None),
                ("token", self.token is not None),
                ("email + api_token", self.email is not None),
            )
            if present
        ]
        if not styles:
            raise ValueError(
                f"no credentials: give {AUTH_STYLES} (Server/Data Center use the first two, "
                "Cloud the last)"
            )
        if len(styles) > 1:
            raise ValueError(f"give one way to authenticate, not {' and '.join(styles)}")
        for name in ("username", "password", "token", "email", "api_token"):
            value = getattr(self, name)
            text = value.get_secret_value() if isinstance(value, SecretStr) else value
            if text is not None and not text.strip():
                raise ValueError(f"{name} is empty (is its environment variable set?)")
        return self

    @property
    def cloud(self) -> bool:
        return self.email is not None

    def account(self) -> str:
        """Who the credentials are, for error messages; never the secret itself."""
        if self.username is not None:
            return f"user {self.username!r} (integrations.jira username/password)"
        if self.token is not None:
            return "the personal access token (integrations.jira token)"
        return f"{self.email!r} with its API token (integrations.jira email/api_token)"


def _labels(labels: list[str]) -> list[str]:
    for label in labels:
        if not label or any(ch.isspace() for ch in label):
            raise ValueError(f"Jira labels cannot be empty or contain spaces, got {label!r}")
    return labels


class IssueParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    project: str | None = Field(
        default=None, description="Project key; defaults to integrations.jira default_project."
    )
    issue_type: str = Field(default="Bug", description="Issue type name (or numeric id).")
    summary: str = Field(min_length=1, description="Title; cut to 255 characters.")
    description: str | None = Field(default=None, description="Body, in Jira wiki markup.")
    labels: list[str] = Field(default_factory=list, description="Labels (no spaces).")
    components: list[str] = Field(default_factory=list, description="Component names.")
    priority: str | None = Field(default=None, description="Priority name, e.g. High.")
    assignee: str | None = Field(
        default=None, description="User name (Server/Data Center) or account id (Cloud)."
    )
    fields: dict[str, Any] = Field(
        default_factory=dict,
        description="More fields merged into the create payload, e.g. customfield_10010; "
        "they win over the ones above, except labels, which are added. Not `project`.",
    )

    @field_validator("fields")
    @classmethod
    def _no_project(cls, fields: dict[str, Any]) -> dict[str, Any]:
        # The duplicate search must look in the project the issue is created in.
        if "project" in fields:
            raise ValueError("give the project as `project`, not inside `fields`")
        return fields

    dedupe_key: str | None = Field(
        default=None,
        description="While an open issue carries this key (as a label), comment on it "
        "instead of opening another, e.g. harbor-scan-{{ artifact.digest }}.",
    )
    repeat_comment: str | None = Field(
        default=None,
        description="Comment for a repeat; default: 'Happened again: <summary>' and the "
        "description.",
    )

    _check_labels = field_validator("labels")(_labels)

    @field_validator("dedupe_key")
    @classmethod
    def _not_blank(cls, key: str | None) -> str | None:
        if key is not None and not key.strip():
            raise ValueError("dedupe_key rendered empty; leave it out to always create")
        return key


class CommentParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=ISSUE_KEY, description="Issue key, e.g. OPS-12.")
    body: str = Field(min_length=1, description="Comment text, in Jira wiki markup.")


class TransitionParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(pattern=ISSUE_KEY, description="Issue key, e.g. OPS-12.")
    transition: str = Field(
        min_length=1, description="Transition name as shown on the issue (any case), or its id."
    )
    comment: str | None = Field(default=None, description="Comment added with the transition.")
    fields: dict[str, Any] = Field(
        default_factory=dict, description="Fields set by the transition, e.g. resolution."
    )


# -- client ------------------------------------------------------------------------

_clients: OrderedDict[tuple[Any, ...], JIRA] = OrderedDict()
_clients_lock = threading.Lock()
MAX_CLIENTS = 16


def client_for(settings: JiraSettings, policy: EgressPolicy) -> JIRA:
    """One client per distinct settings, kept (LRU) so connections are reused.

    Its requests session is guarded: every connection passes the egress policy,
    redirects are refused, and nothing is sent to a host other than `settings.url`.

    No request is made here: `get_server_info=False`, since Cloud is known from the
    credentials (email + api_token) and that is all the library would learn from it.
    `max_retries=0` leaves retrying to hookwise's retry policy.
    """

    def secret(value: SecretStr | None) -> str | None:
        return value.get_secret_value() if value is not None else None

    key = (
        settings.url,
        settings.username,
        secret(settings.password),
        secret(settings.token),
        settings.email,
        secret(settings.api_token),
        settings.timeout,
        policy,
    )
    with _clients_lock:
        client = _clients.get(key)
        if client is not None:
            _clients.move_to_end(key)
            return client
        auth: dict[str, Any] = {}
        if settings.username is not None:
            auth["basic_auth"] = (settings.username, secret(settings.password))
        elif settings.email is not None:
            auth["basic_auth"] = (settings.email, secret(settings.api_token))
        else:
            auth["token_auth"] = secret(settings.token)
        client = JIRA(
            server=settings.url,
            get_server_info=False,
            max_retries=0,
            timeout=settings.timeout,
            logging=False,
            options={"check_update": False},
            **auth,
        )
        if settings.cloud:
            # Makes search use Cloud's /search/jql; the old /search is gone there.
            client.deploymentType = "Cloud"
        # jira takes no session argument: guard the one it made (JIRA._session).
        guard_session(client._session, policy, origin=settings.url)
        _clients[key] = client
        while len(_clients) > MAX_CLIENTS:
            _clients.popitem(last=False)
        return client


def connect(context: ActionContext) -> tuple[JiraSettings, JIRA]:
    settings: JiraSettings = context.settings
    return settings, client_for(settings, context.egress)


def failure(exc: Exception, what: str, settings: JiraSettings) -> ActionError:
    """Classify an error from the client library; never includes credentials."""
    if isinstance(exc, JIRAError):
        status = exc.status_code
        said = jira_text(exc)
        if status == 401:
            return PermanentFailure(
                f"{what}: Jira at {settings.url} did not accept {settings.account()} (401): "
                f"{said}. Check the credentials; Cloud needs email + api_token."
            )
        if status == 403:
            return PermanentFailure(
                f"{what}: {settings.account()} is not allowed to do this (403): {said}. Check "
                "its project permissions (browse, create issues, add comments, transition)."
            )
        if status == 404:
            return PermanentFailure(
                f"{what}: not found (404): {said}. Check the project or issue key, that "
                f"{settings.account()} can browse it, and the url (with any context path)."
            )
        if status == 429:
            headers = exc.response.headers if exc.response is not None else {}
            return RetryLater(
                f"{what}: rate limited by Jira (429): {said}",
                delay=retry_after(headers.get("retry-after")),
            )
        if status is not None and status >= 500:
            return RetryLater(f"{what}: Jira answered {status}: {said}")
        if status is not None and status >= 400:
            return PermanentFailure(f"{what}: Jira refused the request ({status}): {said}")
        return RetryLater(f"{what}: unexpected answer from Jira ({status}): {said}")
    if isinstance(exc, requests.JSONDecodeError):
        return PermanentFailure(
            f"{what}: the answer from {settings.url} is not JSON; is url the Jira base URL "
            "(with any context path), and not behind a login page?"
        )
    if isinstance(exc, requests.Timeout):
        return RetryLater(f"{what}: no answer from {settings.url} within {settings.timeout:g}s")
    if isinstance(exc, requests.ConnectionError):
        return RetryLater(f"{what}: cannot connect to {settings.url}: {reason(exc)}")
    return RetryLater(f"{what}: {type(exc).__name__}: {reason(exc)}")


def jira_text(exc: JIRAError) -> str:
    """Jira's errorMessages and errors ("field: message"), or the body's start."""
    response = exc.response
    if response is None:
        return str(exc.text or "no details")
    denied = response.headers.get("x-authentication-denied-reason")
    if denied:
        return f"authentication denied: {denied}"
    try:
        body = response.json()
    except ValueError:
        return excerpt(response.text, 300) or response.reason or "empty answer"
    if not isinstance(body, dict):
        return excerpt(str(body), 300)
    parts = [str(m) for m in body.get("errorMessages") or []]
    errors = body.get("errors")
    if isinstance(errors, dict):
        parts += [f"{field}: {message}" for field, message in errors.items()]
    for key in ("message", "errorMessage"):
        if isinstance(body.get(key), str):
            parts.append(body[key])
    return excerpt("; ".join(parts), 1000) or excerpt(response.text, 300) or "no details"


def reason(exc: Exception) -> str:
    """The innermost cause of a requests error, short: e.g. 'Connection refused'."""
    text = str(exc)
    match = re.search(r"\] ([^')\]]+)", text)
    return excerpt(match.group(1) if match else text, 300)


def call(what: str, settings: JiraSettings, function: Any, *args: Any, **kwargs: Any) -> Any:
    try:
        return function(*args, **kwargs)
    except (JIRAError, requests.RequestException) as exc:
        raise failure(exc, what, settings) from None


# -- jira.issue ------------------------------------------------------------------------


def dedupe_label(key: str) -> str:
    """The label a dedupe key is stored as; see the module docstring for the exact rule."""
    label = re.sub(r"[^a-z0-9_.:-]+", "-", key.lower()).strip("-")
    if not label or len(label) > MAX_LABEL:
        label = "hookwise-" + hashlib.sha1(key.encode()).hexdigest()[:16]
    return label


def quote(value: str) -> str:
    """A JQL string literal."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"')
    return f'"{escaped}"'


def browse_url(settings: JiraSettings, key: str) -> str:
    return f"{settings.url}/browse/{key}"


def create_issue(params: IssueParams, context: ActionContext) -> dict[str, Any]:
    settings, client = connect(context)
    project = params.project or settings.default_project
    if not project:
        raise PermanentFailure("no project: set `project` or integrations.jira default_project")
    run_label = f"hookwise-run-{context.idempotency_key}"
    ref = f"ref {context.idempotency_key}"
    label = dedupe_label(params.dedupe_key) if params.dedupe_key else None
    # One search answers both questions: did an earlier attempt of this very action
    # create the issue already (run label), and is there an open one to comment on?
    # Newest first: that is the one an earlier attempt created, or the current ticket.
    wanted = f"labels = {quote(run_label)}"
    if label is not None:
        wanted = f"({wanted} OR (labels = {quote(label)} AND statusCategory != Done))"
    jql = f"project = {quote(project)} AND {wanted} ORDER BY created DESC"
    found = call(
        f"searching {project} for an existing issue",
        settings,
        client.search_issues,
        jql,
        maxResults=20,
        fields=["labels", "comment"],
        json_result=True,
    ).get("issues", [])
    ours = next((i for i in found if run_label in labels_of(i)), None)
    if ours is not None:
        context.log.info(f"{ours['key']} was created by an earlier attempt; not creating again")
        return outcome(settings, ours["key"], created=True)
    if found:
        return comment_repeat(params, context, settings, client, found[0], ref, label or "")
    return create(params, context, settings, client, project, [label, run_label])


def labels_of(issue: dict[str, Any]) -> list[str]:
    return list((issue.get("fields") or {}).get("labels") or [])


def outcome(
    settings: JiraSettings,
    key: str,
    *,
    created: bool = False,
    commented: bool = False,
    comment_id: str | None = None,
) -> dict[str, Any]:
    return {
        "key": key,
        "url": browse_url(settings, key),
        "created": created,
        "commented": commented,
        "comment_id": comment_id,
    }


def comment_repeat(
    params: IssueParams,
    context: ActionContext,
    settings: JiraSettings,
    client: JIRA,
    issue: dict[str, Any],
    ref: str,
    label: str,
) -> dict[str, Any]:
    key = issue["key"]
    comments = ((issue.get("fields") or {}).get("comment") or {}).get("comments") or []
    earlier = next((c for c in comments if ref in str(c.get("body", ""))), None)
    if earlier is not None:
        context.log.info(f"{key} already has this run's comment {earlier.get('id')}")
        return outcome(settings, key, commented=True, comment_id=str(earlier.get("id")))
    body = params.repeat_comment or "\n\n".join(
        part for part in (f"Happened again: {params.summary}", params.description) if part
    )
    event = context.event
    footer = (
        f"----\n_hookwise rule {context.rule}, event {event.id} "
        f"({event.source} {event.domain}.{event.event_type}), {ref}_"
    )
    comment = call(f"commenting on {key}", settings, client.add_comment, key, f"{body}\n\n{footer}")
    context.log.info(f"open issue {key} has label {label}: added comment {comment.id}")
    return outcome(settings, key, commented=True, comment_id=str(comment.id))


def create(
    params: IssueParams,
    context: ActionContext,
    settings: JiraSettings,
    client: JIRA,
    project: str,
    extra_labels: list[str | None],
) -> dict[str, Any]:
    summary = params.summary.replace("\n", " ").strip()
    if len(summary) > MAX_SUMMARY:
        context.log.warning(f"summary cut from {len(summary)} to {MAX_SUMMARY} characters")
        summary = summary[: MAX_SUMMARY - 1] + "…"
    labels = [*params.labels, *(params.fields.get("labels") or [])]
    labels += [label for label in extra_labels if label and label not in labels]
    fields: dict[str, Any] = {
        "project": {"id": project} if project.isdigit() else {"key": project},
        "issuetype": (
            {"id": params.issue_type}
            if params.issue_type.isdigit()
            else {"name": params.issue_type}
        ),
        "summary": summary,
    }
    description = params.description or ""
    if context.run_url:  # people follow the ticket back to the run that filed it
        description += f"\n\n----\nFiled by [hookwise run|{context.run_url}]."
    if description.strip():
        fields["description"] = description.strip()
    if params.components:
        fields["components"] = [{"name": name} for name in params.components]
    if params.priority:
        fields["priority"] = {"name": params.priority}
    if params.assignee:
        fields["assignee"] = (
            {"accountId": params.assignee} if settings.cloud else {"name": params.assignee}
        )
    fields.update({k: v for k, v in params.fields.items() if k != "labels"})
    fields["labels"] = list(dict.fromkeys(labels))
    issue = call(
        f"creating a {params.issue_type} in {project}",
        settings,
        client.create_issue,
        fields=fields,
        prefetch=False,
    )
    context.log.info(f"created {issue.key} in {project}")
    return outcome(settings, issue.key, created=True)


# -- jira.comment, jira.transition ----------------------------------------------------


def add_comment(params: CommentParams, context: ActionContext) -> dict[str, Any]:
    settings, client = connect(context)
    comment = call(
        f"commenting on {params.key}", settings, client.add_comment, params.key, params.body
    )
    context.log.info(f"added comment {comment.id} to {params.key}")
    return {"key": params.key, "comment_id": str(comment.id)}


def transition(params: TransitionParams, context: ActionContext) -> dict[str, Any]:
    settings, client = connect(context)
    available = call(
        f"listing the transitions of {params.key}", settings, client.transitions, params.key
    )
    wanted = params.transition.strip().casefold()
    move = next(
        (t for t in available if wanted in (str(t.get("name", "")).casefold(), str(t["id"]))),
        None,
    )
    if move is None:
        status = current_status(settings, client, params.key)
        if status is not None and status.casefold() == wanted:
            # E.g. an earlier attempt did it but timed out: the end state holds already.
            context.log.info(f"{params.key} is already in status {status}")
            return {"key": params.key, "transition": None, "status": status, "changed": False}
        names = ", ".join(repr(t.get("name")) for t in available) or "none"
        raise PermanentFailure(
            f"{params.key} has no transition {params.transition!r} from its status "
            f"{status!r} (available to {settings.account()}: {names})"
        )
    call(
        f"transitioning {params.key} with {move['name']!r}",
        settings,
        client.transition_issue,
        params.key,
        str(move["id"]),
        fields=params.fields,
        comment=params.comment,
    )
    status = (move.get("to") or {}).get("name")
    context.log.info(f"{params.key}: {move['name']} -> {status or '?'}")
    return {"key": params.key, "transition": move["name"], "status": status, "changed": True}


def current_status(settings: JiraSettings, client: JIRA, key: str) -> str | None:
    issue = call(f"reading the status of {key}", settings, client.issue, key, fields="status")
    status = getattr(issue.fields, "status", None)
    return getattr(status, "name", None)


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [
        IntegrationSpec(
            "jira",
            JiraSettings,
            "Jira Server/Data Center or Cloud: URL and one way to authenticate.",
        )
    ]


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="jira.issue",
            params=IssueParams,
            run=create_issue,
            description="Open a Jira issue, or comment on the open one with the same dedupe_key.",
            integration="jira",
        ),
        ActionSpec(
            name="jira.comment",
            params=CommentParams,
            run=add_comment,
            description="Add a comment to a Jira issue.",
            integration="jira",
        ),
        ActionSpec(
            name="jira.transition",
            params=TransitionParams,
            run=transition,
            description="Move a Jira issue through its workflow by transition name.",
            integration="jira",
        ),
    ]
