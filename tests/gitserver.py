"""Git's own smart-HTTP server on loopback, for the `git.commit` tests.

`git http-backend` (Debian's git package) serves bare repositories under a folder as
CGI; this module runs it behind a small threaded WSGI server with HTTP basic auth.
A push goes through `git receive-pack` in the bare repository, so its hooks run: a
`pre-receive` hook is how a test makes a branch protected. `before_push` runs before
a push is handed to git, which is how a test makes the branch move at the worst time;
`after_push` once git has taken it, which is how a test kills hookwise between its
push landing and hookwise recording it.
"""

from __future__ import annotations

import base64
import os
import shutil
import socket
import subprocess
import threading
from collections.abc import Callable, Iterable, Iterator
from pathlib import Path
from socketserver import ThreadingMixIn
from typing import Any
from wsgiref.simple_server import WSGIRequestHandler, WSGIServer, make_server

BACKEND = Path("/usr/lib/git-core/git-http-backend")
SSHD = "/usr/sbin/sshd"
USER = "x-access-token"
TOKEN = "git-token-s3cret"


def run(*args: str, cwd: Path | None = None) -> str:
    env = {**os.environ, "GIT_CONFIG_NOSYSTEM": "1", "HOME": str(cwd or Path.cwd())}
    done = subprocess.run(["git", *args], cwd=cwd, env=env, capture_output=True, text=True)
    assert done.returncode == 0, done.stderr
    return done.stdout


class _Server(ThreadingMixIn, WSGIServer):
    daemon_threads = True


class _Quiet(WSGIRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


class GitServer:
    def __init__(self, root: Path) -> None:
        self.root = root
        self.requests: list[tuple[str, str]] = []
        self.before_push: Callable[[], None] | None = None
        self.after_push: Callable[[], None] | None = None
        self.server = make_server("127.0.0.1", 0, self.app, _Server, _Quiet)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)
        self.thread.start()

    def create(self, name: str, files: dict[str, str], branch: str = "main") -> Path:
        """A bare repository `name`.git whose `branch` holds `files` in one commit."""
        bare = self.root / f"{name}.git"
        run("init", "--quiet", "--bare", f"--initial-branch={branch}", str(bare))
        seed = self.root / f"{name}-seed"
        run("init", "--quiet", f"--initial-branch={branch}", str(seed))
        for path, text in files.items():
            (seed / path).parent.mkdir(parents=True, exist_ok=True)
            (seed / path).write_text(text)
        run("add", ".", cwd=seed)
        run("-c", "user.name=seed", "-c", "user.email=seed@test", "commit", "-qm", "seed", cwd=seed)
        run("push", "--quiet", str(bare), f"HEAD:refs/heads/{branch}", cwd=seed)
        return bare

    def protect(self, name: str, branch: str) -> None:
        hook = self.root / f"{name}.git" / "hooks" / "pre-receive"
        hook.write_text(
            "#!/bin/sh\nwhile read old new ref; do\n"
            f'  if [ "$ref" = "refs/heads/{branch}" ]; then\n'
            f'    echo "GL-HOOK-ERR: {branch} is a protected branch"; exit 1\n'
            "  fi\ndone\n"
        )
        hook.chmod(0o755)

    def commits(self, name: str, branch: str = "main") -> list[str]:
        """Subject lines of `branch`, newest first."""
        out = run("--git-dir", str(self.root / f"{name}.git"), "log", "--format=%s", branch)
        return out.splitlines()

    def show(self, name: str, path: str, branch: str = "main") -> str:
        return run("--git-dir", str(self.root / f"{name}.git"), "show", f"{branch}:{path}")

    def message(self, name: str, ref: str = "main") -> str:
        return self.log_format(name, "%B", ref)

    def log_format(self, name: str, form: str, ref: str = "main") -> str:
        """`git log -1 --format=FORM` of `ref`, stripped."""
        git_dir = str(self.root / f"{name}.git")
        return run("--git-dir", git_dir, "log", "-1", f"--format={form}", ref).strip()

    def commit_directly(self, name: str, path: str, text: str, branch: str = "main") -> None:
        """Someone else's commit on `branch`, pushed straight into the bare repository."""
        other = self.root / f"{name}-other-{len(self.commits(name, branch))}"
        run("clone", "--quiet", "--branch", branch, str(self.root / f"{name}.git"), str(other))
        (other / path).write_text(text)
        run("-c", "user.name=other", "-c", "user.email=o@test", "commit", "-qam", f"other: {path}",
            cwd=other)  # fmt: skip
        run("push", "--quiet", "origin", branch, cwd=other)
        shutil.rmtree(other)

    def app(self, environ: dict[str, Any], start: Callable[..., Any]) -> Iterable[bytes]:
        path, query = environ.get("PATH_INFO", ""), environ.get("QUERY_STRING", "")
        self.requests.append((environ["REQUEST_METHOD"], f"{path}?{query}"))
        expected = base64.b64encode(f"{USER}:{TOKEN}".encode()).decode()
        if environ.get("HTTP_AUTHORIZATION", "") != f"Basic {expected}":
            start("401 Unauthorized", [("WWW-Authenticate", 'Basic realm="git"')])
            return [b"authentication required\n"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        if path.endswith("/git-receive-pack") and self.before_push is not None:
            hook, self.before_push = self.before_push, None
            hook()
        answer = list(self._backend(environ, start, path, query, body))
        if path.endswith("/git-receive-pack") and self.after_push is not None:
            hook, self.after_push = self.after_push, None
            hook()
        return answer

    def _backend(
        self, environ: dict[str, Any], start: Callable[..., Any], path: str, query: str,
        body: bytes,
    ) -> Iterator[bytes]:  # fmt: skip
        env = {
            "PATH": os.environ["PATH"],
            "GIT_PROJECT_ROOT": str(self.root),
            "GIT_HTTP_EXPORT_ALL": "1",
            "GIT_CONFIG_NOSYSTEM": "1",
            "REMOTE_USER": USER,
            "REMOTE_ADDR": "127.0.0.1",
            "PATH_INFO": path,
            "QUERY_STRING": query,
            "REQUEST_METHOD": environ["REQUEST_METHOD"],
            "CONTENT_TYPE": environ.get("CONTENT_TYPE", ""),
            "CONTENT_LENGTH": str(len(body)),
            "HTTP_GIT_PROTOCOL": environ.get("HTTP_GIT_PROTOCOL", ""),
        }
        if environ.get("HTTP_CONTENT_ENCODING"):
            env["HTTP_CONTENT_ENCODING"] = environ["HTTP_CONTENT_ENCODING"]
        done = subprocess.run([str(BACKEND)], input=body, env=env, capture_output=True)
        head, _, payload = done.stdout.partition(b"\r\n\r\n")
        status, headers = "200 OK", []
        for line in head.decode("latin-1").split("\r\n"):
            name, _, value = line.partition(":")
            if name.lower() == "status":
                status = value.strip()
            elif name:
                headers.append((name, value.strip()))
        start(status, headers)
        yield payload

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


class SshServer:
    """OpenSSH's sshd on loopback, serving the bare repositories of a GitServer by path.

    It runs as root (the tests' user under CI), with a fresh host key, one authorized
    client key, and nothing else: no passwords, no PAM.
    """

    def __init__(self, folder: Path) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.folder = folder
        for name in ("host", "client", "stranger"):
            subprocess.run(["ssh-keygen", "-q", "-t", "ed25519", "-N", "", "-f",
                            str(folder / name)], check=True)  # fmt: skip
        (folder / "authorized_keys").write_text((folder / "client.pub").read_text())
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            self.port = probe.getsockname()[1]
        (folder / "sshd_config").write_text(
            f"Port {self.port}\nListenAddress 127.0.0.1\nHostKey {folder / 'host'}\n"
            f"AuthorizedKeysFile {folder / 'authorized_keys'}\nPasswordAuthentication no\n"
            "KbdInteractiveAuthentication no\nPermitRootLogin prohibit-password\n"
            f"StrictModes no\nUsePAM no\nPidFile {folder / 'sshd.pid'}\n"
        )
        Path("/run/sshd").mkdir(exist_ok=True)  # sshd's privilege separation directory
        subprocess.run([SSHD, "-f", str(folder / "sshd_config"), "-E", str(folder / "log")],
                       check=True)  # fmt: skip
        host_key = " ".join((folder / "host.pub").read_text().split()[:2])
        self.known_hosts = folder / "known_hosts"
        self.known_hosts.write_text(f"[127.0.0.1]:{self.port} {host_key}\n")
        self.key = folder / "client"
        self.stranger = folder / "stranger"

    def url(self, bare: Path) -> str:
        return f"ssh://root@127.0.0.1:{self.port}{bare}"

    def close(self) -> None:
        pid = self.folder / "sshd.pid"
        if pid.exists():
            os.kill(int(pid.read_text()), 15)
