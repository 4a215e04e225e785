"""A Git repository worked on through the `git` command, behind the egress guard.

Git connects by itself, so the guard is applied the only way it can be: the remote's
host is resolved here, every address is checked against the policy, and git is told
to connect to the checked address (`http.curloptResolve`), so a DNS answer that
changes in between cannot redirect it. Redirects are not followed, no system or user
Git configuration is read, and git never prompts. The token travels in an
`Authorization` header set through the environment, never on a command line, and is
masked in every message.
"""

from __future__ import annotations

import base64
import ipaddress
import os
import re
import shlex
import socket
import subprocess
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import urlsplit

from hookwise.plugin import EgressDenied, EgressPolicy, PermanentFailure, RetryLater, excerpt

DEFAULT_PORTS = {"http": 80, "https": 443}


SCP_LIKE = re.compile(r"^(?:(?P<user>[^@/:]+)@)?(?P<host>[^@/:\[\]]+):(?!//)(?P<path>.+)$")


@dataclass
class Remote:
    url: str
    username: str
    token: str | None
    policy: EgressPolicy
    timeout: float
    ssh_key: str | None = None
    known_hosts: str | None = None

    def ssh_target(self) -> tuple[str, int] | None:
        """(host, port) for an SSH remote; None for HTTP(S)."""
        if self.url.startswith("ssh://"):
            parts = urlsplit(self.url)
            if not parts.hostname:
                raise PermanentFailure(f"repository {self.url!r}: no host")
            return parts.hostname, parts.port or 22
        if "://" not in self.url and (found := SCP_LIKE.match(self.url)):
            return found["host"], 22
        return None

    def ssh_command(self, host: str, port: int) -> str:
        """The ssh that git runs: our key and known hosts only, to the checked address."""
        if not self.ssh_key or not self.known_hosts:
            raise PermanentFailure(
                f"repository {self.url}: an SSH remote needs integrations.git.ssh_key_file "
                "and known_hosts_file"
            )
        for path in (self.ssh_key, self.known_hosts):
            if not os.path.isfile(path):
                raise PermanentFailure(f"integrations.git: {path} does not exist or is not a file")
        address = _checked_address(host, port, self.policy).strip("[]")
        alias = host if port == 22 else f"[{host}]:{port}"  # as ssh-keyscan -p writes it
        options = {
            "IdentitiesOnly": "yes",
            "BatchMode": "yes",
            "StrictHostKeyChecking": "yes",
            "UserKnownHostsFile": self.known_hosts,
            "HostKeyAlias": alias,
            "HostName": address,
            "ConnectTimeout": str(max(1, int(self.timeout))),
        }
        words = ["ssh", "-F", os.devnull, "-i", self.ssh_key]
        for name, value in options.items():
            words += ["-o", f"{name}={value}"]
        return shlex.join(words)

    def settings(self) -> dict[str, str]:
        """Git configuration for every command, as GIT_CONFIG_* environment variables."""
        if self.ssh_target() is not None:
            return {"protocol.allow": "never", "protocol.ssh.allow": "always",
                    "credential.helper": "", "core.askPass": ""}  # fmt: skip
        parts = urlsplit(self.url)
        if parts.scheme not in DEFAULT_PORTS or not parts.hostname:
            raise PermanentFailure(
                f"repository {self.url!r}: use an https://, http:// or ssh:// URL, or git@host:path"
            )
        if parts.username or parts.password:
            raise PermanentFailure(
                "the repository URL carries credentials; put the token in integrations.git.token"
            )
        port = parts.port or DEFAULT_PORTS[parts.scheme]
        address = _checked_address(parts.hostname, port, self.policy)
        config = {
            "http.followRedirects": "false",
            "http.curloptResolve": f"{parts.hostname}:{port}:{address}",
            "credential.helper": "",
            "core.askPass": "",
            "protocol.allow": "never",
            f"protocol.{parts.scheme}.allow": "always",
        }
        if self.token:
            config["http.extraHeader"] = f"Authorization: Basic {self.basic()}"
        return config

    def basic(self) -> str:
        """The token as HTTP basic credentials: a secret in that form too."""
        return base64.b64encode(f"{self.username}:{self.token}".encode()).decode()


def _checked_address(host: str, port: int, policy: EgressPolicy) -> str:
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise RetryLater(f"cannot resolve {host}: {exc.strerror}") from exc
    addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
    for address in addresses:
        if policy.permits(host, ipaddress.ip_address(address)):
            return f"[{address}]" if ":" in address else address
    raise EgressDenied(
        f"refused to connect to {host}:{port} ({', '.join(addresses)}): not a public address "
        "and not in egress.allow"
    )


@dataclass
class Worktree:
    """A fresh clone of one branch, in a folder the caller removes."""

    remote: Remote
    folder: Path
    secrets: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.env = {
            "PATH": os.environ.get("PATH", "/usr/bin:/bin"),
            "HOME": str(self.folder),
            "GIT_CONFIG_NOSYSTEM": "1",
            "GIT_CONFIG_GLOBAL": os.devnull,
            "GIT_TERMINAL_PROMPT": "0",
            "LANG": "C",
            "LC_ALL": "C",
        }
        config = self.remote.settings()
        if target := self.remote.ssh_target():
            self.env["GIT_SSH_COMMAND"] = self.remote.ssh_command(*target)
        self.env["GIT_CONFIG_COUNT"] = str(len(config))
        for number, (key, value) in enumerate(config.items()):
            self.env[f"GIT_CONFIG_KEY_{number}"] = key
            self.env[f"GIT_CONFIG_VALUE_{number}"] = value
        token = self.remote.token
        self.secrets = [token, self.remote.basic()] if token else []
        self.tree = self.folder / "tree"

    def git(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        argv = ["git", *args] if args[0] == "clone" else ["git", "-C", str(self.tree), *args]
        try:
            done = subprocess.run(
                argv,
                env=self.env,
                capture_output=True,
                text=True,
                timeout=self.remote.timeout,
                stdin=subprocess.DEVNULL,
            )
        except subprocess.TimeoutExpired as exc:
            raise RetryLater(
                f"git {args[0]} did not finish within {self.remote.timeout:g}s"
            ) from exc
        if check and done.returncode != 0:
            raise classify(args[0], self.said(done), self.remote.url)
        return done

    def said(self, done: subprocess.CompletedProcess[str]) -> str:
        """What git printed, secrets masked, for messages."""
        text = (done.stderr or done.stdout).strip()
        for secret in self.secrets:
            text = text.replace(secret, "***")
        return excerpt(text, 600)


def classify(command: str, said: str, url: str) -> Exception:
    """A failed git command as a failure a person can act on: retry only what may pass."""
    lower = said.lower()
    where = f"git {command} {url}"
    if "permission denied (publickey" in lower:
        return PermanentFailure(
            f"{where}: the server refused the SSH key; check integrations.git.ssh_key_file "
            f"and that the key may write there ({said})"
        )
    if "host key verification failed" in lower:
        return PermanentFailure(
            f"{where}: the server's host key is not the one in integrations.git.known_hosts_file "
            f"(or is missing there); add it, e.g. with ssh-keyscan ({said})"
        )
    if "authentication failed" in lower or "could not read username" in lower or " 401" in lower:
        return PermanentFailure(
            f"{where}: the server refused the credentials; check integrations.git.token and "
            f"username ({said})"
        )
    if " 403" in lower:
        return PermanentFailure(
            f"{where}: the token may not do this (403); give it write access to the "
            f"repository ({said})"
        )
    if "remote branch" in lower and "not found" in lower:
        return PermanentFailure(f"{where}: the branch does not exist ({said})")
    if ("repository" in lower and "not found" in lower) or " 404" in lower:
        return PermanentFailure(f"{where}: no such repository ({said})")
    if (
        "pre-receive hook declined" in lower
        or "protected branch" in lower
        or "[remote rejected]" in lower
    ):
        return PermanentFailure(
            f"{where}: the server refused the push, as for a protected branch; use "
            f"git.pull_request, or allow the token to push ({said})"
        )
    return RetryLater(f"{where} failed: {said}")
