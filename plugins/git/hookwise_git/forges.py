"""Pull requests on GitHub (PyGithub) and merge requests on GitLab (python-gitlab).

Both clients speak through hookwise's egress guard: python-gitlab is handed a guarded
requests session, and PyGithub's connection class, whose session it creates itself, is
replaced for this client by one that guards it the moment it exists. Both are bound to
the forge's API origin, so the token goes nowhere else.

`open_or_update` finds the open request whose source branch is the rule's branch and
updates its title and body; only when there is none is one opened. One branch, one
open request, however many events arrive.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal
from urllib.parse import urlsplit

import github
import gitlab
import requests
from github.Requester import HTTPRequestsConnectionClass, HTTPSRequestsConnectionClass

from hookwise.plugin import EgressPolicy, PermanentFailure, RetryLater, excerpt, guard_session

Forge = Literal["github", "gitlab"]
GITHUB_API = "https://api.github.com"


@dataclass
class Request:
    """What the forge says about the request it opened or updated."""

    number: int
    url: str
    created: bool
    merged: bool = False


@dataclass
class Proposal:
    project: str  # owner/repo, or group/subgroup/project
    base: str
    branch: str
    title: str
    body: str
    auto_merge: bool


def project_of(repository: str) -> str:
    """owner/repo from https://host/owner/repo.git."""
    return urlsplit(repository).path.strip("/").removesuffix(".git")


def api_url(forge: Forge, repository: str, configured: str | None) -> str:
    if configured:
        return configured.rstrip("/")
    if forge == "github":
        return GITHUB_API
    parts = urlsplit(repository)
    return f"{parts.scheme}://{parts.netloc}"


def open_or_update(
    forge: Forge, url: str, token: str | None, policy: EgressPolicy, proposal: Proposal,
    timeout: float,
) -> Request:  # fmt: skip
    try:
        if forge == "github":
            return _github(url, token, policy, proposal, timeout)
        return _gitlab(url, token, policy, proposal, timeout)
    except github.GithubException as exc:
        raise _classified(f"GitHub {proposal.project}", exc.status, str(exc.data)) from exc
    except gitlab.GitlabError as exc:
        code = exc.response_code or 0
        raise _classified(f"GitLab {proposal.project}", code, str(exc.error_message)) from exc
    except requests.RequestException as exc:
        raise RetryLater(f"{forge} {proposal.project}: {exc}") from exc


def _classified(where: str, status: int, said: str) -> Exception:
    said = excerpt(said, 300)
    if status in (401, 403):
        return PermanentFailure(f"{where}: the token was refused ({status}); check it may "
                                f"open requests there: {said}")  # fmt: skip
    if status in (404, 422, 405):
        return PermanentFailure(f"{where}: {status} {said}")
    return RetryLater(f"{where}: {status} {said}")


def _github(
    url: str, token: str | None, policy: EgressPolicy, proposal: Proposal, timeout: float
) -> Request:
    auth = github.Auth.Token(token) if token else None
    client = github.Github(base_url=url, auth=auth, timeout=int(timeout), retry=None, lazy=True)
    _guard_github(client, policy, url)
    try:
        repo = client.get_repo(proposal.project)
        owner = proposal.project.split("/", 1)[0]
        found = list(repo.get_pulls(state="open", head=f"{owner}:{proposal.branch}",
                                    base=proposal.base))  # fmt: skip
        if found:
            pull = found[0]
            pull.edit(title=proposal.title, body=proposal.body)
            created = False
        else:
            pull = repo.create_pull(base=proposal.base, head=proposal.branch,
                                    title=proposal.title, body=proposal.body)  # fmt: skip
            created = True
        merged = proposal.auto_merge and pull.merge(merge_method="squash").merged
        return Request(pull.number, pull.html_url, created, bool(merged))
    finally:
        client.close()


def _guard_github(client: github.Github, policy: EgressPolicy, origin: str) -> None:
    """PyGithub builds its requests session in its connection class: swap in, for this
    client only, a subclass that hands the session to the guard as it is made."""
    secure = origin.startswith("https://")
    base: Any = HTTPSRequestsConnectionClass if secure else HTTPRequestsConnectionClass

    def guarded(*args: Any, **kwargs: Any) -> Any:
        connection = base(*args, **kwargs)
        guard_session(connection.session, policy, origin=origin)
        return connection

    client.requester._Requester__connectionClass = guarded  # type: ignore[attr-defined]


def _gitlab(
    url: str, token: str | None, policy: EgressPolicy, proposal: Proposal, timeout: float
) -> Request:
    session = guard_session(requests.Session(), policy, origin=url)
    client = gitlab.Gitlab(url, private_token=token, session=session, timeout=timeout,
                           retry_transient_errors=False)  # fmt: skip
    try:
        project = client.projects.get(proposal.project, lazy=True)
        found = project.mergerequests.list(state="opened", source_branch=proposal.branch,
                                           target_branch=proposal.base, get_all=False)  # fmt: skip
        if found:
            request = found[0]
            request.title, request.description = proposal.title, proposal.body
            request.save()
            created = False
        else:
            request = project.mergerequests.create(
                {"source_branch": proposal.branch, "target_branch": proposal.base,
                 "title": proposal.title, "description": proposal.body}
            )  # fmt: skip
            created = True
        merged = False
        if proposal.auto_merge:
            answer = request.merge(merge_when_pipeline_succeeds=True)
            merged = isinstance(answer, dict) and answer.get("state") == "merged"
        return Request(int(request.iid), str(request.web_url), created, merged)
    finally:
        session.close()
