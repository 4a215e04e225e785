"""`git.pull_request`: the same edits as `git.commit`, proposed on a branch for review.

The rule names the branch (templated, e.g. `hookwise/web`), and the branch is the key:
each run rebuilds it as the base branch plus one commit with the edits, pushes it
(replacing what an earlier run pushed there, but only what it saw, by a lease), and
opens a pull or merge request from it, or updates the one already open. A run whose
commit is already the branch's (found by its trailer) does not push again; it only
opens or updates the request, so a retry after a crash neither duplicates the commit
nor opens a second request.
"""

from __future__ import annotations

from typing import Any

from pydantic import Field, field_validator

from hookwise.plugin import ActionContext, RetryLater
from hookwise_git.commit import (
    HISTORY,
    ChangeParams,
    find_run,
    make_commit,
    usable_branch,
    worktree,
)
from hookwise_git.edits import apply
from hookwise_git.forges import Forge, Proposal, api_url, open_or_update, project_of
from hookwise_git.repo import Worktree, classify
from hookwise_git.settings import GitSettings


class PullRequestParams(ChangeParams):
    """`with:` of `git.pull_request`."""

    forge: Forge = Field(description="github (pull request) or gitlab (merge request).")
    base: str = Field(default="main", description="The branch the request merges into.")
    branch: str = Field(
        description="The request's branch, templated, e.g. hookwise/{{ artifact.image }}: "
        "one open request per branch, updated by later runs."
    )
    title: str = Field(default="Deploy {{ artifact.image }}:{{ artifact.tag }}")
    body: str = Field(default="", description="The request's description, templated.")
    project: str | None = Field(
        default=None, description="owner/repo or group/project; default: from `repository`."
    )
    auto_merge: bool = Field(
        default=False,
        description="Merge at once (GitHub, squash) or when its pipeline succeeds (GitLab).",
    )

    @field_validator("base", "branch")
    @classmethod
    def _branch_name(cls, branch: str) -> str:
        return usable_branch(branch)


def git_pull_request(params: PullRequestParams, context: ActionContext) -> dict[str, Any]:
    settings: GitSettings = context.settings or GitSettings()
    with worktree(params.repository, settings, context) as work:
        sha, edited = _push_branch(work, params, settings, context)
    if sha is None:
        context.log.info(f"{params.base} already holds every value; no request needed")
        return {"changed": False, "branch": params.branch, "sha": None, "number": None,
                "url": None, "created": False, "updated": False, "merged": False}  # fmt: skip
    project = params.project or project_of(params.repository)
    proposal = Proposal(project, params.base, params.branch, params.title.strip(),
                        params.body, params.auto_merge)  # fmt: skip
    token = settings.token.get_secret_value() if settings.token else None
    url = api_url(params.forge, params.repository, settings.api_url)
    found = open_or_update(params.forge, url, token, context.egress, proposal, settings.timeout)
    verb = "opened" if found.created else "updated"
    context.log.info(f"{verb} {params.forge} request {found.number}: {found.url}")
    return {"changed": True, "branch": params.branch, "sha": sha, "number": found.number,
            "url": found.url, "created": found.created, "updated": not found.created,
            "merged": found.merged, "edited": edited}  # fmt: skip


def _push_branch(
    work: Worktree, params: PullRequestParams, settings: GitSettings, context: ActionContext
) -> tuple[str | None, list[str]]:
    """The branch's commit for this run (pushed now or by an earlier attempt), or None
    when the base already holds every value."""
    url = work.remote.url
    work.git("clone", "--quiet", "--depth", str(HISTORY), "--branch", params.base,
             "--single-branch", url, str(work.tree))  # fmt: skip
    listed = work.git("ls-remote", "--heads", "origin", params.branch).stdout.split()
    seen = listed[0] if listed else ""
    if seen:
        work.git("fetch", "--quiet", "--depth", str(HISTORY), "origin", params.branch)
        if earlier := find_run(work, context.idempotency_key, "FETCH_HEAD"):
            context.log.info(f"{params.branch} already has this run's commit {earlier[:12]}")
            return earlier, []
    edited = [edit.describe() for edit in params.edits if apply(work.tree, edit)]
    if not edited:
        return None, []
    sha = make_commit(work, params, settings, context)
    lease = f"--force-with-lease=refs/heads/{params.branch}:{seen}"
    pushed = work.git("push", "--porcelain", lease, "origin", f"HEAD:refs/heads/{params.branch}",
                      check=False)  # fmt: skip
    if pushed.returncode != 0:
        said = work.said(pushed)
        if "stale info" in said.lower():
            raise RetryLater(f"{params.branch} moved while this run rebuilt it; trying again")
        raise classify("push", said, url)
    context.log.info(f"pushed {sha[:12]} to {params.branch}: {'; '.join(edited)}")
    return sha, edited
