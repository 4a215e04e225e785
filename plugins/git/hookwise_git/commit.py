"""`git.commit`: edit files on a branch, commit, push; once per run, whatever happens.

The commit message ends with two trailers, `Hookwise-Event` and `Hookwise-Run` (the
action's idempotency key). Before editing, the branch's recent history is searched for
that run's trailer: an attempt that pushed but crashed before hookwise recorded it
finds its commit and reports it instead of making a second one. When the push is
refused because the branch moved, the branch is fetched again and the edits reapplied
on top, up to `PUSH_ATTEMPTS` times.
"""

from __future__ import annotations

import contextlib
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, field_validator

from hookwise.plugin import ActionContext, RetryLater
from hookwise_git.edits import Edit, apply
from hookwise_git.repo import Remote, Worktree, classify
from hookwise_git.settings import GitSettings

PUSH_ATTEMPTS = 3
HISTORY = 50  # commits searched for the run's trailer
RUN_TRAILER = "Hookwise-Run"


def usable_branch(branch: str) -> str:
    if "{{" not in branch and (not branch or branch.startswith("-") or ".." in branch):
        raise ValueError(f"branch {branch!r} is not a usable branch name")
    return branch


class ChangeParams(BaseModel):
    """What `git.commit` and `git.pull_request` share: where, what, and the commit."""

    model_config = ConfigDict(extra="forbid")

    repository: str = Field(description="HTTPS (or HTTP) URL of the repository.")
    edits: list[Edit] = Field(min_length=1, description="The changes, applied in order.")
    message: str = Field(
        default="Deploy {{ artifact.image }}:{{ artifact.tag }}",
        description="Commit message, templated; hookwise adds the event and run as trailers.",
    )
    author_name: str | None = Field(default=None, description="Default: integrations.git.")
    author_email: str | None = Field(default=None, description="Default: integrations.git.")


class CommitParams(ChangeParams):
    """`with:` of `git.commit`."""

    branch: str = Field(default="main", description="The branch to commit to.")

    @field_validator("branch")
    @classmethod
    def _branch_name(cls, branch: str) -> str:
        return usable_branch(branch)


def git_commit(params: CommitParams, context: ActionContext) -> dict[str, Any]:
    settings: GitSettings = context.settings or GitSettings()
    with worktree(params.repository, settings, context) as work:
        return commit_edits(work, params, settings, context)


@contextlib.contextmanager
def worktree(repository: str, settings: GitSettings, context: ActionContext) -> Iterator[Worktree]:
    """A clone's folder for one attempt, removed afterwards whatever happened."""
    folder = Path(tempfile.mkdtemp(prefix="hookwise-git-"))
    try:
        yield Worktree(remote_for(repository, settings, context), folder)
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def remote_for(url: str, settings: GitSettings, context: ActionContext) -> Remote:
    token = settings.token.get_secret_value() if settings.token else None
    return Remote(url, settings.username, token, context.egress, settings.timeout,
                  settings.ssh_key_file, settings.known_hosts_file)  # fmt: skip


def commit_edits(
    work: Worktree, params: CommitParams, settings: GitSettings, context: ActionContext
) -> dict[str, Any]:
    """Clone, then edit-commit-push until the push lands or is refused for good."""
    branch = params.branch
    work.git("clone", "--quiet", "--depth", str(HISTORY), "--branch", branch,
             "--single-branch", work.remote.url, str(work.tree))  # fmt: skip
    for attempt in range(1, PUSH_ATTEMPTS + 1):
        if earlier := find_run(work, context.idempotency_key):
            context.log.info(f"commit {earlier[:12]} of this run is already on {branch}")
            return outcome(earlier, branch, changed=False, attempts=attempt, already=True)
        changed = [edit.describe() for edit in params.edits if apply(work.tree, edit)]
        if not changed:
            head = work.git("rev-parse", "HEAD").stdout.strip()
            context.log.info(f"{branch} already holds every value; nothing to commit")
            return outcome(head, branch, changed=False, attempts=attempt)
        sha = make_commit(work, params, settings, context)
        pushed = work.git("push", "--porcelain", "origin", f"HEAD:refs/heads/{branch}", check=False)
        if pushed.returncode == 0:
            context.log.info(f"pushed {sha[:12]} to {branch}: {'; '.join(changed)}")
            return {**outcome(sha, branch, changed=True, attempts=attempt), "edited": changed}
        said = work.said(pushed)
        if not moved_on(said):
            raise classify("push", said, work.remote.url)
        context.log.info(f"{branch} moved while committing; fetching it and trying again")
        work.git("fetch", "--quiet", "--depth", str(HISTORY), "origin", branch)
        work.git("reset", "--quiet", "--hard", "FETCH_HEAD")
    raise RetryLater(f"{branch} kept moving: {PUSH_ATTEMPTS} pushes were refused as out of date")


def find_run(work: Worktree, key: str, ref: str = "HEAD") -> str | None:
    """The commit of this run among `ref`'s recent ones, if an attempt made one."""
    log = work.git(
        "log", f"-{HISTORY}", f"--format=%H%x00%(trailers:key={RUN_TRAILER},valueonly)%x1e", ref
    )
    for entry in log.stdout.split("\x1e"):
        sha, _, trailer = entry.strip().partition("\x00")
        if trailer.strip() == key:
            return sha
    return None


def make_commit(
    work: Worktree, params: ChangeParams, settings: GitSettings, context: ActionContext
) -> str:
    name = params.author_name or settings.author_name
    email = params.author_email or settings.author_email
    message = (
        f"{params.message.strip()}\n\nHookwise-Event: {context.event.id}\n"
        f"Hookwise-Rule: {context.rule}\n{RUN_TRAILER}: {context.idempotency_key}\n"
    )
    identity = ["-c", f"user.name={name}", "-c", f"user.email={email}"]
    work.git(*identity, "commit", "--quiet", "--all", "--no-verify", "-m", message)
    return work.git("rev-parse", "HEAD").stdout.strip()


def moved_on(said: str) -> bool:
    """The push was refused only because the branch has commits we lack, or got them
    while our push was on its way (the server's ref moved under it)."""
    lower = said.lower()
    moved = ("non-fast-forward", "fetch first", "stale info", "cannot lock ref")
    return any(sign in lower for sign in moved)


def outcome(
    sha: str, branch: str, *, changed: bool, attempts: int, already: bool = False
) -> dict[str, Any]:
    return {"sha": sha, "branch": branch, "changed": changed, "attempts": attempts,
            "already_committed": already}  # fmt: skip
