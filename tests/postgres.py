"""PostgreSQL for tests: a fresh database on the shared server, or a private server.

- `fresh_database()` creates `hookwise_t_<random>` on the shared server (127.0.0.1:5432,
  user postgres, trust auth; `HOOKWISE_TEST_POSTGRES` names another admin URL) and drops
  it afterwards, connections and all.
- `PrivateServer` is a PostgreSQL of the test's own, `initdb` into a temp dir and
  `pg_ctl` on a free port, so a test can stop and start it without disturbing others.
  As root it runs as the `postgres` user (the server refuses to run as root).

Where no server can be had the tests skip with the reason, except when
`HOOKWISE_REQUIRE_POSTGRES=1` (`.ci/run` sets it), where they fail: CI must never
silently skip them.
"""

from __future__ import annotations

import contextlib
import functools
import os
import secrets
import shutil
import socket
import subprocess
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import NoReturn
from urllib.parse import urlsplit, urlunsplit

import psycopg
import pytest

ADMIN_URL = os.environ.get(
    "HOOKWISE_TEST_POSTGRES", "postgresql://postgres@127.0.0.1:5432/postgres"
)
REQUIRED = os.environ.get("HOOKWISE_REQUIRE_POSTGRES") == "1"


def unavailable(reason: str) -> NoReturn:
    """Skip, or fail when PostgreSQL is required, where a missing server is a broken set-up."""
    if REQUIRED:
        pytest.fail(f"{reason} (HOOKWISE_REQUIRE_POSTGRES=1: these tests must run)", pytrace=False)
    pytest.skip(reason)


def database_url(base: str, name: str) -> str:
    """`base` (a postgresql:// URL) pointing at database `name` instead."""
    return urlunsplit(urlsplit(base)._replace(path=f"/{name}"))


@functools.cache
def _server_problem() -> str | None:
    """Why the shared server cannot be used; asked once per test session."""
    try:
        with psycopg.connect(ADMIN_URL, connect_timeout=3):
            return None
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return (
            f"no PostgreSQL server answers at {ADMIN_URL} ({first}); start one, e.g. "
            "`pg_ctlcluster $(ls /etc/postgresql) main start`, or set HOOKWISE_TEST_POSTGRES"
        )


@contextlib.contextmanager
def fresh_database(admin_url: str | None = None) -> Iterator[str]:
    """The URL of a new empty database, dropped on exit."""
    admin_url = admin_url or ADMIN_URL
    if admin_url == ADMIN_URL and (problem := _server_problem()):
        unavailable(problem)
    name = f"hookwise_t_{secrets.token_hex(6)}"
    with psycopg.connect(admin_url, autocommit=True) as admin:
        admin.execute(f'CREATE DATABASE "{name}"')
    try:
        yield database_url(admin_url, name)
    finally:
        with psycopg.connect(admin_url, autocommit=True) as admin:
            admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _bin_dir() -> Path:
    found = sorted(Path("/usr/lib/postgresql").glob("*/bin/initdb"), key=lambda p: p.parts)
    if found:
        return found[-1].parent
    if initdb := shutil.which("initdb"):
        return Path(initdb).parent
    unavailable("no PostgreSQL server binaries (initdb, pg_ctl); install the postgresql package")


class PrivateServer:
    """A throw-away PostgreSQL server on 127.0.0.1:<free port>, trust auth, user postgres."""

    def __init__(self) -> None:
        self.bin = _bin_dir()
        self.root = Path(tempfile.mkdtemp(prefix="hookwise-pg-"))
        self.data = self.root / "data"
        self.log = self.root / "server.log"
        self.port = free_port()
        self.url = f"postgresql://postgres@127.0.0.1:{self.port}/postgres"
        # The server refuses to run as root; `runuser` switches to its own account.
        self.prefix = ["runuser", "-u", "postgres", "--"] if os.geteuid() == 0 else []
        if self.prefix:
            shutil.chown(self.root, "postgres", "postgres")
        self._run("initdb", "-D", str(self.data), "-U", "postgres", "--auth=trust", "--no-sync")
        with (self.data / "postgresql.conf").open("a") as conf:
            conf.write(
                f"port = {self.port}\nlisten_addresses = '127.0.0.1'\n"
                f"unix_socket_directories = '{self.root}'\nfsync = off\n"
            )

    def _run(self, tool: str, *args: str) -> None:
        done = subprocess.run(
            [*self.prefix, str(self.bin / tool), *args], capture_output=True, text=True, timeout=60
        )
        if done.returncode != 0:
            log = self.log.read_text()[-800:] if self.log.exists() else ""
            unavailable(f"{tool} {' '.join(args)} failed: {done.stderr.strip()[-800:]} {log}")

    def start(self) -> None:
        self._run("pg_ctl", "-D", str(self.data), "-l", str(self.log), "-w", "-t", "30", "start")

    def stop(self) -> None:
        """A fast shutdown: every client connection is cut, as when the server goes away."""
        self._run("pg_ctl", "-D", str(self.data), "-m", "fast", "-w", "-t", "30", "stop")

    def destroy(self) -> None:
        if (self.data / "postmaster.pid").exists():
            with contextlib.suppress(Exception):
                self.stop()
        shutil.rmtree(self.root, ignore_errors=True)
