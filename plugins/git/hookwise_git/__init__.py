"""GitOps write-back for hookwise: `git.commit` edits files in a repository and pushes;
`git.pull_request` proposes the same edits as a GitHub pull or GitLab merge request.

Settings (`integrations.git`): an HTTPS `token` and the `username` sent with it, the
commit author, and a per-command `timeout`. Output of `git.commit`: `{"sha": "…",
"branch": "main", "changed": true, "attempts": 1, "already_committed": false,
"edited": ["apps/web/values.yaml: image.tag"]}`; `changed` is false when every value
was already in place (nothing is committed) or when this run's commit was already on
the branch (`already_committed`).

Failures: refused credentials, a missing repository, branch, file or YAML path, and a
push the server refuses (a protected branch) are permanent; network trouble, timeouts
and a branch that keeps moving retry.
"""

from __future__ import annotations

from hookwise.plugin import ActionSpec, IntegrationSpec, hookimpl
from hookwise_git.commit import CommitParams, git_commit
from hookwise_git.edits import Edit
from hookwise_git.pull_request import PullRequestParams, git_pull_request
from hookwise_git.settings import GitSettings

__all__ = [
    "CommitParams",
    "Edit",
    "GitSettings",
    "PullRequestParams",
    "git_commit",
    "git_pull_request",
]


@hookimpl
def hookwise_integrations() -> list[IntegrationSpec]:
    return [IntegrationSpec("git", GitSettings, "Git: HTTPS token and commit author.")]


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="git.commit",
            params=CommitParams,
            run=git_commit,
            description="Edit files in a Git repository (YAML path, Helm values, Kustomize "
            "image, regex), commit and push; once per run.",
            integration="git",
        ),
        ActionSpec(
            name="git.pull_request",
            params=PullRequestParams,
            run=git_pull_request,
            description="The edits of git.commit on a branch, proposed as a GitHub pull "
            "request or GitLab merge request; one open request per branch, updated after.",
            integration="git",
        ),
    ]
