"""`integrations.git`: who hookwise is to the Git server, and as an author."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

from hookwise.plugin import Duration


class GitSettings(BaseModel):
    """A rule's `connection:` may override any key, e.g. another token per repository."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(
        default=None,
        description="HTTPS access token with write access to the repositories, as "
        "${GIT_TOKEN}. None: the repositories accept pushes without credentials.",
    )
    username: str = Field(
        default="x-access-token",
        min_length=1,
        description="User name sent with the token: anything for GitHub, oauth2 for GitLab "
        "project and group tokens, your user for Gitea and Bitbucket.",
    )
    ssh_key_file: str | None = Field(
        default=None,
        description="For ssh:// or git@host:path repositories: the private key (no "
        "passphrase) hookwise authenticates with.",
    )
    known_hosts_file: str | None = Field(
        default=None,
        description="With ssh_key_file: the servers' host keys (ssh-keyscan output); an "
        "unknown or changed host key fails the run.",
    )
    author_name: str = Field(default="hookwise", min_length=1)
    author_email: str = Field(default="hookwise@localhost", min_length=1)
    timeout: Duration = Field(
        default=60.0, gt=0, description="Longest one git command or forge API call may take."
    )
    api_url: str | None = Field(
        default=None,
        description="git.pull_request: the forge's API, e.g. https://github.example.com/api/v3 "
        "for GitHub Enterprise. Default: https://api.github.com, or the GitLab repository's "
        "own host.",
    )

    @field_validator("token")
    @classmethod
    def _not_empty(cls, token: SecretStr | None) -> SecretStr | None:
        if token is not None and not token.get_secret_value().strip():
            raise ValueError("token is empty: is its ${VAR} set?")
        return token
