"""Shared test parts: a real `hookwise serve` process and a local HTTP sink.

Server tests start hookwise as a separate process and talk to it over loopback
HTTP, the way Artifactory would. The sink stands in for any downstream endpoint
that `http.post` calls; it records what it receives and answers as scripted.
"""

from __future__ import annotations

import json
import os
import queue
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import httpx
import pytest
from hypothesis import HealthCheck, settings

pytest_plugins = ["tests.asgi", "tests.inprocess", "tests.served"]
TESTS = Path(__file__).parent
FIXTURES = TESTS / "fixtures"
SECRET = "test-secret"
# The tiers that start real processes and servers; `make test-fast` leaves them out.
SLOW_TIERS = ("e2e", "faults", "integrations")


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        parts = item.path.relative_to(TESTS).parts if item.path.is_relative_to(TESTS) else ()
        needs_postgres = "pg_url" in getattr(item, "fixturenames", ())
        if (parts and parts[0] in SLOW_TIERS) or needs_postgres:
            item.add_marker(pytest.mark.slow)


def fixture_bytes(name: str) -> bytes:
    return (FIXTURES / name).read_bytes()


def wait_until(predicate: Callable[[], Any], timeout: float = 10.0, interval: float = 0.05) -> Any:
    """Poll until `predicate` returns something truthy; fail the test with the last value."""
    deadline = time.monotonic() + timeout
    last = None
    while time.monotonic() < deadline:
        last = predicate()
        if last:
            return last
        time.sleep(interval)
    raise AssertionError(f"condition not met within {timeout}s (last value: {last!r})")


@dataclass
class Reply:
    status: int = 200
    body: Any = field(default_factory=lambda: {"ok": True})
    headers: dict[str, str] = field(default_factory=dict)
    delay: float = 0.0
    echo: bool = False  # answer with the request itself, as some services' errors do


@dataclass
class Received:
    path: str
    headers: dict[str, str]
    body: Any
    at: float = field(default_factory=time.monotonic)
    ended: float | None = None  # when the reply was sent, to see overlapping requests


class Sink:
    """A loopback HTTP server that records requests and plays back scripted replies."""

    def __init__(self) -> None:
        self.received: list[Received] = []
        self.replies: queue.Queue[Reply] = queue.Queue()
        self.release = threading.Event()
        sink = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                length = int(self.headers.get("content-length") or 0)
                raw = self.rfile.read(length)
                try:
                    body = json.loads(raw)
                except ValueError:
                    body = raw.decode(errors="replace")
                received = Received(
                    self.path, {k.lower(): v for k, v in self.headers.items()}, body
                )
                sink.received.append(received)
                try:
                    reply = sink.replies.get_nowait()
                except queue.Empty:
                    reply = Reply()
                if reply.delay:
                    sink.release.wait(reply.delay)
                answer = reply.body
                if reply.echo:
                    answer = {"path": self.path, "headers": received.headers, "body": raw.decode()}
                data = json.dumps(answer).encode()
                try:
                    self.send_response(reply.status)
                    self.send_header("content-type", "application/json")
                    self.send_header("content-length", str(len(data)))
                    for key, value in reply.headers.items():
                        self.send_header(key, value)
                    self.end_headers()
                    self.wfile.write(data)
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the caller gave up (timeout) or was killed: what tests provoke
                received.ended = time.monotonic()

            def log_message(self, format: str, *args: Any) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def script(self, *replies: Reply) -> None:
        for reply in replies:
            self.replies.put(reply)

    def close(self) -> None:
        self.release.set()
        self.server.shutdown()
        self.server.server_close()


@pytest.fixture
def sink() -> Iterator[Sink]:
    server = Sink()
    yield server
    server.close()


CONFIG = """\
listen: 127.0.0.1:0
store: {store}
rules: rules/
egress:
  allow: [127.0.0.1]
worker:
  poll_interval: 0.2s
  lease: {lease}
sources:
  artifactory:
    kind: artifactory
    secret: ${{TEST_ARTIFACTORY_SECRET}}
{extra}"""


SQLITE = "sqlite:///./hookwise.db"


class Front:
    """What a test does with a running hookwise over HTTP: in its own process (`Hookwise`)
    or in the test's (`tests.served.Served`), through `self.http`, a client on its URL."""

    http: httpx.Client

    def post(
        self, body: bytes, *, source: str = "artifactory", headers: dict[str, str] | None = None
    ) -> httpx.Response:
        sent = {"X-JFrog-Event-Auth": SECRET, "Content-Type": "application/json"}
        sent.update(headers or {})
        return self.http.post(f"/hooks/{source}", content=body, headers=sent)

    def get(self, path: str, **kwargs: Any) -> httpx.Response:
        return self.http.get(path, **kwargs)

    def stored(self, source: str) -> list[dict[str, Any]]:
        """The newest stored events of one source."""
        params = {"source": source, "limit": 1000}
        return self.get("/api/events", params=params).json()["events"]

    def refused(self, body: bytes, headers: dict[str, str], source: str) -> dict[str, Any]:
        """Post a delivery that must be refused; check nothing was stored and the server lives."""
        before = len(self.stored(source))
        response = self.post(body, source=source, headers=headers)
        assert 400 <= response.status_code < 500, response.text
        assert len(self.stored(source)) == before
        assert self.get("/healthz").status_code == 200
        return {"status": response.status_code, **response.json()}

    def event(self, event_id: str) -> dict[str, Any]:
        response = self.get(f"/api/events/{event_id}")
        assert response.status_code == 200, response.text
        return response.json()

    def wait_for_runs(self, event_id: str, statuses: set[str], timeout: float = 15) -> list[dict]:
        """Wait until every run of the event has one of `statuses`; return the runs."""

        def settled() -> list[dict] | None:
            runs = self.event(event_id)["runs"]
            return runs if runs and all(r["status"] in statuses for r in runs) else None

        return wait_until(settled, timeout)


class Hookwise(Front):
    """One real `hookwise serve` (or `hookwise worker`) process over a folder of config and rules.

    `store` is the store URL; `command="worker"` starts a worker-only process, which has
    no URL: it is ready once it logs that it runs.
    """

    def __init__(
        self,
        root: Path,
        rules: str,
        *,
        lease: str = "30s",
        extra: str = "",
        store: str = SQLITE,
        command: str = "serve",
    ) -> None:
        self.root = root
        self.command = command
        (root / "rules").mkdir(parents=True, exist_ok=True)
        self.config = root / "hookwise.yaml"
        self.config.write_text(CONFIG.format(lease=lease, extra=extra, store=store))
        self.write_rules(rules)
        self.env = {**os.environ, "TEST_ARTIFACTORY_SECRET": SECRET, "PYTHONUNBUFFERED": "1"}
        self.process: subprocess.Popen[str] | None = None
        self.log: list[str] = []
        self.url = ""

    def write_rules(self, text: str, name: str = "rules.yaml") -> None:
        (self.root / "rules" / name).write_text(text)

    def start(self) -> Hookwise:
        if self.process is not None:
            self.stop()
        self.log = []
        self.process = subprocess.Popen(
            [sys.executable, "-m", "hookwise", self.command, "--config", str(self.config)],
            cwd=self.root,
            env=self.env,
            stdout=subprocess.DEVNULL,
            stderr=subprocess.PIPE,
            text=True,
        )
        ready: queue.Queue[str] = queue.Queue()

        def drain() -> None:
            assert self.process and self.process.stderr
            for line in self.process.stderr:
                self.log.append(line.rstrip("\n"))
                if "listening on" in line:
                    ready.put(line.split("listening on ", 1)[1].strip())
                elif "hookwise worker running" in line:
                    ready.put("(worker)")
            ready.put("")

        self._drain = threading.Thread(target=drain, daemon=True)
        self._drain.start()
        try:
            self.url = ready.get(timeout=30)
        except queue.Empty:
            self.url = ""
        if not self.url:
            self.stop()
            raise AssertionError(f"hookwise {self.command} did not start:\n" + "\n".join(self.log))
        if self.url.startswith("http"):
            self.http = httpx.Client(base_url=self.url, timeout=10)
        return self

    def signal(self, signum: int) -> None:
        assert self.process is not None
        self.process.send_signal(signum)

    def kill(self) -> None:
        """SIGKILL: no shutdown code runs, as when a machine loses power or OOM strikes."""
        assert self.process is not None
        self.process.kill()
        self.process.wait(timeout=10)
        self._close_pipe()

    def _close_pipe(self) -> None:
        assert self.process is not None
        self._drain.join(timeout=10)
        if self.process.stderr:
            self.process.stderr.close()

    def stop(self) -> None:
        if self.process is None:
            return
        if hasattr(self, "http"):
            self.http.close()
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()
        self._close_pipe()


@pytest.fixture
def hookwise_factory(tmp_path: Path) -> Iterator[Callable[..., Hookwise]]:
    started: list[Hookwise] = []

    def make(rules: str, **kwargs: Any) -> Hookwise:
        instance = Hookwise(tmp_path, rules, **kwargs)
        started.append(instance)
        return instance

    yield make
    for instance in started:
        instance.stop()


def project(
    root: Path,
    rules: str = "rules: []\n",
    *,
    extra: str = "",
    config: str | None = None,
    store: str = SQLITE,
) -> Path:
    """A folder with hookwise.yaml and rules/main.yaml, for CLI tests."""
    (root / "rules").mkdir(exist_ok=True)
    (root / "rules" / "main.yaml").write_text(rules)
    text = config or CONFIG.format(lease="30s", extra=extra, store=store)
    (root / "hookwise.yaml").write_text(text)
    return root


def run_cli(
    *args: str, cwd: Path, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "hookwise", *args],
        cwd=cwd,
        env={**os.environ, "TEST_ARTIFACTORY_SECRET": SECRET, **(env or {})},
        capture_output=True,
        text=True,
        timeout=60,
    )


# Fuzzing (tests/test_fuzz.py): `ci` bounds the examples and fixes the seed, so CI is
# repeatable; `deep` explores for longer (HYPOTHESIS_PROFILE=deep make test).
settings.register_profile(
    "ci",
    max_examples=120,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
    database=None,
)
settings.register_profile(
    "deep",
    max_examples=3000,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci"))
