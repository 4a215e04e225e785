"""Jenkins integration: `jenkins.build` triggers a job and can follow it to its result.

Settings (`integrations.jenkins`): `url`, `username`, `api_token`, `timeout`, `token`.

Output of `jenkins.build`:

- always `{"job": "release/deploy", "queue_id": 17, "queue_url": "<url>/queue/item/17/"}`;
- with `wait: true` also `{"number": 42, "url": "<url>/job/release/job/deploy/42/",
  "result": "SUCCESS", "duration_ms": 5230}`.

At least once: hookwise may run an action again (a retry, a crash). Once Jenkins has
accepted the trigger, nothing here asks for a retry: problems while following the build
fail permanently, naming the queue item or build, because a retry would start a second
build. An attempt that finds the trigger of an earlier attempt of the same action (kept
in this process, or found in Jenkins through `idempotency_parameter`) follows that
build instead of starting another one.
"""

from __future__ import annotations

import html
import json
import re
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, Literal, TypeVar
from urllib.parse import quote

import jenkins
import requests
from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator

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
    mask,
    retry_after,
)

T = TypeVar("T")
Result = Literal["FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT"]
NOT_SUCCESS: tuple[Result, ...] = ("FAILURE", "UNSTABLE", "ABORTED", "NOT_BUILT")
Scalar = str | int | float | bool
# Triggers remembered per idempotency key, so a retry in this process follows, not re-triggers.
REMEMBERED = 1000


class JenkinsSettings(BaseModel):
    """`integrations.jenkins` in hookwise.yaml; a rule's `connection:` may override any key."""

    model_config = ConfigDict(extra="forbid")

    url: str = Field(
        description="Jenkins root URL, e.g. https://ci.example.com/ or https://example.com/jenkins/."
    )
    username: str = Field(min_length=1, description="The Jenkins user the API token belongs to.")
    api_token: SecretStr = Field(
        description="That user's API token (user menu > Security > API Token). The user needs "
        "Overall/Read, Job/Read and Job/Build on the jobs it triggers."
    )
    timeout: Duration = Field(default=10.0, gt=0, description="Timeout of each HTTP request.")
    token: SecretStr | None = Field(
        default=None,
        description="Default remote trigger token ('Trigger builds remotely' in the job), "
        "sent as ?token=; a `token` parameter of the action wins.",
    )

    @field_validator("url")
    @classmethod
    def _http_url(cls, url: str) -> str:
        http_url(url, root=True)
        return url if url.endswith("/") else url + "/"

    @field_validator("api_token", "token")
    @classmethod
    def _not_empty(cls, token: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError(f"{info.field_name} is empty: is its ${{VAR}} set?")
        return token


class BuildParams(BaseModel):
    """`with:` of `jenkins.build`."""

    model_config = ConfigDict(extra="forbid")

    job: str = Field(
        description="Full job name; folders separated by /, e.g. release/deploy "
        "(= <url>/job/release/job/deploy/)."
    )
    parameters: dict[str, Scalar | list[Scalar]] = Field(
        default_factory=dict,
        description="Build parameters. Given: POST buildWithParameters (unset ones take their "
        "defaults); empty: POST build, for jobs without parameters. A list repeats the "
        "parameter (multi-select). Booleans are sent as true/false.",
    )
    token: SecretStr | None = Field(
        default=None, description="Remote trigger token; overrides the integration's `token`."
    )
    wait: bool = Field(
        default=False,
        description="Follow the queue item and the build until it finishes; the action fails "
        "when the result is in `fail_on`.",
    )
    timeout: Duration = Field(
        default=240.0,
        gt=0,
        description="With wait: how long to follow queue and build. Keep it below the action's "
        "own timeout (worker.action_timeout, default 5m).",
    )
    poll_interval: Duration = Field(
        default=5.0, gt=0, description="With wait: pause between two looks at Jenkins."
    )
    fail_on: list[Result] = Field(
        default_factory=lambda: list(NOT_SUCCESS),
        description="With wait: build results that fail the action. By default anything but "
        "SUCCESS; use [FAILURE, ABORTED] to accept UNSTABLE builds.",
    )
    idempotency_parameter: str | None = Field(
        default=None,
        description="Name of a string parameter the job defines, e.g. HOOKWISE_KEY: hookwise "
        "sends its idempotency key in it and, before triggering, looks for a queued or recent "
        "build carrying that key, so a repeated attempt (even after a crash) follows that build.",
    )

    @field_validator("job")
    @classmethod
    def _job_path(cls, job: str) -> str:
        job = job.strip().strip("/")
        if not job or any(not part.strip() for part in job.split("/")):
            raise ValueError(f"job must be a job name or folder/job path, got {job!r}")
        return job


@dataclass
class Started:
    """A trigger Jenkins accepted: the queue item, and the build once known."""

    queue_id: int
    number: int | None = None
    url: str | None = None


class _Remembered:
    """Thread-safe, bounded memory of triggers per idempotency key."""

    def __init__(self, size: int) -> None:
        self.size = size
        self.items: OrderedDict[str, Started] = OrderedDict()
        self.lock = threading.Lock()

    def get(self, key: str) -> Started | None:
        with self.lock:
            return self.items.get(key)

    def put(self, key: str, started: Started) -> None:
        with self.lock:
            self.items[key] = started
            self.items.move_to_end(key)
            while len(self.items) > self.size:
                self.items.popitem(last=False)

    def clear(self) -> None:
        with self.lock:
            self.items.clear()


_remembered = _Remembered(REMEMBERED)
# Set on shutdown so a long wait gives its thread back instead of holding up the exit.
_stopping = threading.Event()


class _Jenkins:
    """One action attempt's view of Jenkins: the client, and errors turned into outcomes."""

    def __init__(
        self, settings: JenkinsSettings, params: BuildParams, policy: EgressPolicy
    ) -> None:
        token = params.token or settings.token
        self.settings = settings
        self.token = token.get_secret_value() if token else None
        # A fresh client per attempt: Jenkins binds crumbs to the web session, so a cached
        # client would keep sending a crumb whose session expired; one crumb GET is cheap.
        self.server = jenkins.Jenkins(
            settings.url,
            username=settings.username,
            password=settings.api_token.get_secret_value(),
            timeout=settings.timeout,
        )
        # python-jenkins takes no session argument: guard the one it made.
        guard_session(self.server._session, policy, origin=settings.url)
        self.job = params.job
        self.job_path = "".join(f"job/{quote(part, safe='')}/" for part in params.job.split("/"))
        self.job_url = settings.url + self.job_path

    def queue_url(self, queue_id: int) -> str:
        return f"{self.settings.url}queue/item/{queue_id}/"

    def call(self, what: str, function: Callable[[], T], *, not_found: str) -> T:
        """Run one client call; raise RetryLater or PermanentFailure for what went wrong."""
        try:
            return function()
        except (jenkins.JenkinsException, requests.RequestException) as exc:
            raise self.classify(exc, what, not_found) from None

    def classify(self, exc: Exception, what: str, not_found: str) -> ActionError:
        """Map python-jenkins / requests errors by the HTTP status hidden in their chain."""
        response = _response_of(exc)
        if response is not None:
            return self._http_error(response, what, not_found)
        if isinstance(exc, jenkins.TimeoutException | requests.Timeout):
            return RetryLater(
                self.mask(f"{what}: Jenkins did not answer within {self.settings.timeout:g}s")
            )
        if isinstance(exc, requests.ConnectionError):
            return RetryLater(
                self.mask(f"{what}: cannot connect to {self.settings.url}: {_reason(exc)}")
            )
        if isinstance(exc, jenkins.EmptyResponseException):
            return PermanentFailure(
                self.mask(
                    f"{what}: Jenkins answered without saying which queue item it created "
                    f"({exc}); is {self.settings.url} Jenkins itself and not a proxy page?"
                )
            )
        # e.g. JSON that does not parse: a login page of a proxy, or a half-started Jenkins.
        return RetryLater(self.mask(f"{what}: {exc}"))

    def _http_error(self, response: requests.Response, what: str, not_found: str) -> ActionError:
        status = response.status_code
        said = _server_text(response)
        detail = f": {said}" if said else ""
        if status == 429 or status >= 500:
            delay = retry_after(response.headers.get("retry-after"))
            return RetryLater(self.mask(f"{what}: Jenkins answered {status}{detail}"), delay=delay)
        if status == 401:
            return PermanentFailure(
                self.mask(
                    f"{what}: Jenkins refused the credentials (401){detail}; check "
                    f"integrations.jenkins.username ({self.settings.username!r}) and api_token"
                )
            )
        if status == 403 and "crumb" in said.lower():
            # Crumbs belong to a web session; a new attempt fetches a new one.
            return RetryLater(self.mask(f"{what}: Jenkins refused the CSRF crumb (403){detail}"))
        if status == 403:
            return PermanentFailure(
                self.mask(
                    f"{what}: Jenkins refused it (403){detail}; user "
                    f"{self.settings.username!r} needs Overall/Read, Job/Read and Job/Build on "
                    f"{self.job!r}, or check the remote trigger token"
                )
            )
        if status == 404:
            return PermanentFailure(self.mask(f"{what}: {not_found}"))
        if "Nothing is submitted" in said:
            detail += (
                "; the job has parameters: give at least one in `parameters` so hookwise "
                "calls buildWithParameters (the others take their defaults)"
            )
        return PermanentFailure(self.mask(f"{what}: Jenkins answered {status}{detail}"))

    def mask(self, text: str) -> str:
        return mask(text)


def build(params: BuildParams, context: ActionContext) -> dict[str, Any]:
    """`jenkins.build`: trigger (or find the earlier trigger), then optionally follow it."""
    client = _Jenkins(context.settings, params, context.egress)
    key = context.idempotency_key
    started = _remembered.get(key)
    if started is not None:
        context.log.info(
            f"an earlier attempt already triggered {client.job} (queue item "
            f"{started.queue_id}); following it instead of starting another build"
        )
    elif params.idempotency_parameter:
        started = _find_earlier(client, params.idempotency_parameter, key)
        if started is not None:
            context.log.info(
                f"found the build of an earlier attempt by {params.idempotency_parameter}="
                f"{key} (queue item {started.queue_id}); not triggering again"
            )
    if started is None:
        started = _trigger(client, params, key, context)
        _remembered.put(key, started)
    output: dict[str, Any] = {
        "job": client.job,
        "queue_id": started.queue_id,
        "queue_url": client.queue_url(started.queue_id),
    }
    if not params.wait:
        return output
    info = _follow(client, params, started, context)
    output.update(
        number=started.number,
        url=started.url,
        result=info["result"],
        duration_ms=info.get("duration"),
    )
    if info["result"] in params.fail_on:
        raise PermanentFailure(
            f"Jenkins build {started.url} finished {info['result']} "
            f"(fail_on: {', '.join(params.fail_on)})"
        )
    context.log.info(f"build {started.url} finished {info['result']}")
    return output


def _trigger(client: _Jenkins, params: BuildParams, key: str, context: ActionContext) -> Started:
    pairs = _pairs(params.parameters)
    if params.idempotency_parameter:
        pairs.append((params.idempotency_parameter, key))
    endpoint = "buildWithParameters" if pairs else "build"
    # A copy: python-jenkins appends the trigger token to the list it is given.
    queue_id = client.call(
        f"POST {client.job_url}{endpoint}",
        lambda: client.server.build_job(client.job, list(pairs) or None, client.token),
        not_found=f"job {client.job!r} not found at {client.job_url} (check the folder/job "
        f"path, and that user {client.settings.username!r} has Job/Read on it)",
    )
    names = ", ".join(name for name, _ in pairs) or "no parameters"
    context.log.info(f"triggered {client.job} ({names}): queue item {client.queue_url(queue_id)}")
    return Started(queue_id)


def _pairs(parameters: dict[str, Scalar | list[Scalar]]) -> list[tuple[str, str]]:
    """Query pairs as Jenkins parses them: lists repeat the name, booleans are lower case."""

    def text(value: Scalar) -> str:
        return ("true" if value else "false") if isinstance(value, bool) else str(value)

    pairs: list[tuple[str, str]] = []
    for name, value in parameters.items():
        for item in value if isinstance(value, list) else [value]:
            pairs.append((name, text(item)))
    return pairs


def _find_earlier(client: _Jenkins, name: str, key: str) -> Started | None:
    """A queued or recent build whose `name` parameter carries this action's key."""
    wanted = f"{name}={key}"
    items = client.call(
        f"GET {client.settings.url}queue/api/json",
        client.server.get_queue_info,
        not_found=f"{client.settings.url}queue/api/json not found: is url Jenkins' root URL?",
    )
    for item in items:
        # Jenkins writes its own root URL into task.url, which may differ from ours.
        task_url = (item.get("task") or {}).get("url", "").rstrip("/") + "/"
        sent = (item.get("params") or "").split("\n")
        if task_url.endswith("/" + client.job_path) and wanted in sent:
            return Started(int(item["id"]))
    tree = "builds[number,url,queueId,actions[parameters[name,value]]]{0,50}"
    url = f"{client.job_url}api/json?tree={quote(tree)}"
    text = client.call(
        f"GET {client.job_url}api/json",
        lambda: client.server.jenkins_open(requests.Request("GET", url)),
        not_found=f"job {client.job!r} not found at {client.job_url}",
    )
    try:
        builds = json.loads(text or "{}").get("builds", [])
    except ValueError:
        raise RetryLater(f"GET {client.job_url}api/json: the answer is not JSON") from None
    for entry in builds:
        for action in entry.get("actions") or []:
            for parameter in (action or {}).get("parameters") or []:
                if parameter.get("name") == name and parameter.get("value") == key:
                    return Started(int(entry.get("queueId") or 0), entry["number"], entry["url"])
    return None


def _follow(
    client: _Jenkins, params: BuildParams, started: Started, context: ActionContext
) -> dict[str, Any]:
    """Queue item until it has a build, then the build until it stops; the final build info."""
    deadline = time.monotonic() + params.timeout
    queue_url = client.queue_url(started.queue_id)
    if started.number is None:
        why = None
        while True:
            item = _look(
                client,
                context,
                deadline,
                f"GET {queue_url}api/json",
                lambda: client.server.get_queue_item(started.queue_id),
                not_found=f"queue item {queue_url} is gone (Jenkins keeps it about 5 minutes "
                f"after it leaves the queue); find the build in {client.job_url}",
            )
            if item is not None:
                if item.get("cancelled"):
                    raise PermanentFailure(
                        f"Jenkins cancelled queue item {queue_url} of {client.job!r} "
                        f"before it started{_because(item.get('why'))}"
                    )
                executable = item.get("executable")
                if executable:
                    started.number = int(executable["number"])
                    started.url = executable.get("url") or f"{client.job_url}{started.number}/"
                    context.log.info(f"build {started.url} started")
                    break
                if item.get("why") and item.get("why") != why:
                    why = item["why"]
                    context.log.info(f"queued: {why}")
            _pause(params.poll_interval, deadline, _late(client, params, started, why))
    number, url = started.number, started.url or f"{client.job_url}{started.number}/"
    while True:
        info = _look(
            client,
            context,
            deadline,
            f"GET {url}api/json",
            lambda: client.server.get_build_info(client.job, number),
            not_found=f"build {url} is gone (deleted?)",
        )
        if info is not None and not info.get("building") and info.get("result"):
            return info
        _pause(params.poll_interval, deadline, _late(client, params, started, None))


def _look(
    client: _Jenkins,
    context: ActionContext,
    deadline: float,
    what: str,
    function: Callable[[], dict[str, Any]],
    *,
    not_found: str,
) -> dict[str, Any] | None:
    """One poll. Transient errors are logged and polled through (None), bounded by the
    deadline; the rest fail permanently: the build exists, so a retry would add one."""
    try:
        return client.call(what, function, not_found=not_found)
    except RetryLater as exc:
        context.log.warning(f"{exc}; polling on")
        if exc.delay:
            _pause(exc.delay, deadline, None)
        return None
    except PermanentFailure as exc:
        raise PermanentFailure(
            f"{exc} (the build was triggered; not retried, a retry would start another)"
        ) from None


def _late(client: _Jenkins, params: BuildParams, started: Started, why: str | None) -> str:
    if started.number is None:
        where = f"still queued as {client.queue_url(started.queue_id)}{_because(why)}"
    else:
        where = f"build {started.url} still running"
    return (
        f"{client.job!r} {where} after waiting {params.timeout:g}s; not retried, since that "
        f"would start another build: raise `timeout` (and the action's timeout) to wait longer"
    )


def _pause(seconds: float, deadline: float, late: str | None) -> None:
    """Sleep until the next poll, at most until the deadline (so one last look follows it);
    called again past the deadline, fail with `late` (if given)."""
    remaining = deadline - time.monotonic()
    if remaining <= 0 and late is not None:
        raise PermanentFailure(late)
    if _stopping.wait(max(0.0, min(seconds, remaining))):
        raise RetryLater("hookwise is stopping; the wait for Jenkins was interrupted")


def _because(why: Any) -> str:
    return f" ({why})" if why else ""


def _response_of(exc: BaseException) -> requests.Response | None:
    """python-jenkins re-raises HTTP errors as its own, keeping the original as context."""
    seen: BaseException | None = exc
    for _ in range(10):
        if seen is None:
            return None
        response = getattr(seen, "response", None)
        if isinstance(response, requests.Response):
            return response
        seen = seen.__cause__ or seen.__context__
    return None


def _server_text(response: requests.Response) -> str:
    """What Jenkins said, short: its error pages are HTML or a Java stack trace."""
    text = response.text or ""
    if "json" in response.headers.get("content-type", ""):
        try:
            return excerpt(json.dumps(json.loads(text)), 300)
        except ValueError:
            pass
    text = re.sub(r"(?is)<(script|style|head)\b.*?</\1>", " ", text)
    text = html.unescape(re.sub(r"<[^>]+>", "\n", text))
    lines = [" ".join(line.split()) for line in text.splitlines()]
    kept = [line for line in lines if line and not line.startswith(("at ", "..."))]
    return excerpt(" / ".join(kept[:4]), 300)


def _reason(exc: requests.ConnectionError) -> str:
    reason = getattr(exc.args[0], "reason", exc) if exc.args else exc
    text = str(reason)
    return excerpt(text.split("Failed to establish a new connection: ", 1)[-1], 200)


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [IntegrationSpec("jenkins", JenkinsSettings, "Jenkins: URL, user and API token.")]


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="jenkins.build",
            params=BuildParams,
            run=build,
            description="Trigger a Jenkins job (folders, parameters, crumbs); optionally wait "
            "for its result.",
            integration="jenkins",
        )
    ]


@hookimpl
def hookwise_startup() -> None:
    _stopping.clear()


@hookimpl
def hookwise_shutdown() -> None:
    _stopping.set()
