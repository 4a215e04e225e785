"""The processes the suite measures: `hookwise serve`, the bare baseline and the sink.

Each runs as its own process on 127.0.0.1, as in production, so that its CPU and
memory are its own and can be read from /proc. Each writes its stderr to a log file
in the run's folder, where it announces its URL with a "listening on http://..."
line that `start` waits for.
"""

from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from types import TracebackType

import yaml

ROOT = Path(__file__).resolve().parent.parent
ANNOUNCED = re.compile(r"listening on (http://\S+)")
SECRET_VARIABLE = "BENCH_ARTIFACTORY_SECRET"
SECRET = "bench-secret-0123456789abcdef"
# The sources the benchmark's rules are spread over; the load goes to the first.
SOURCES = ("artifactory", "artifactory-eu", "harbor", "github", "gitlab")


def yaml_config(store: str) -> str:
    """hookwise.yaml: loopback only, egress to the loopback sink, signed sources: the one
    the load goes to, and the others the rule set names (rules may only name configured
    sources), all of one kind."""
    source = {"kind": "artifactory", "secret": f"${{{SECRET_VARIABLE}}}", "signed": True}
    return yaml.safe_dump(
        {
            "listen": "127.0.0.1:0",
            "store": store,
            "rules": "rules/",
            "egress": {"allow": ["127.0.0.1"]},
            "sources": {name: dict(source) for name in SOURCES},
        },
        sort_keys=False,
    )


class Process:
    """A server in its own process, logging to a file; a context manager that stops it."""

    def __init__(self, name: str, argv: list[str], log: Path, cwd: Path | None = None) -> None:
        self.name = name
        self.argv = argv
        self.log = log
        self.cwd = cwd
        path = os.pathsep.join(filter(None, [str(ROOT), os.environ.get("PYTHONPATH")]))
        self.env = {
            **os.environ,
            SECRET_VARIABLE: SECRET,
            "PYTHONUNBUFFERED": "1",
            "PYTHONPATH": path,  # so `-m bench.<module>` imports from any folder
        }
        self.process: subprocess.Popen[bytes] | None = None
        self.url = ""
        self.source = "artifactory"  # the source the load is sent to

    def start(self, timeout: float = 60.0) -> Process:
        """Start, and return once the log announces the URL; fail with the log's tail."""
        self.log.parent.mkdir(parents=True, exist_ok=True)
        with self.log.open("wb") as log:
            self.process = subprocess.Popen(
                self.argv, cwd=self.cwd, env=self.env, stdout=subprocess.DEVNULL, stderr=log
            )
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline and self.process.poll() is None:
            if found := ANNOUNCED.search(self.log.read_text(errors="replace")):
                self.url = found[1]
                return self
            time.sleep(0.05)
        self.stop()
        tail = self.log.read_text(errors="replace").splitlines()[-30:]
        raise RuntimeError(f"{self.name} did not start:\n" + "\n".join(tail))

    @property
    def hooks_url(self) -> str:
        """Where the source the load goes to receives deliveries."""
        return f"{self.url}/hooks/{self.source}"

    @property
    def pid(self) -> int:
        assert self.process is not None
        return self.process.pid

    def rss_bytes(self) -> int:
        """Resident set size now, from /proc (Linux)."""
        for line in Path(f"/proc/{self.pid}/status").read_text().splitlines():
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) * 1024
        raise RuntimeError(f"no VmRSS for {self.name} (pid {self.pid})")

    def cpu_seconds(self) -> float:
        """User plus system CPU time used so far, from /proc (Linux)."""
        stat = Path(f"/proc/{self.pid}/stat").read_text()
        fields = stat.rsplit(")", 1)[1].split()
        return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")

    def stop(self) -> None:
        if self.process is None:
            return
        self.process.terminate()
        try:
            self.process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.process.kill()
            self.process.wait()
        self.process = None

    def __enter__(self) -> Process:
        return self.start()

    def __exit__(
        self,
        kind: type[BaseException] | None,
        value: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.stop()


def helper(module: str, folder: Path) -> Process:
    """`python -m bench.<module>`: the baseline or the sink, logging into `folder`."""
    return Process(module, [sys.executable, "-m", f"bench.{module}"], folder / f"{module}.log")


def hookwise(root: Path, store: str, rules: str) -> Process:
    """`hookwise serve` over a fresh folder with a signed Artifactory source and `rules`."""
    (root / "rules").mkdir(parents=True, exist_ok=True)
    (root / "rules" / "bench.yaml").write_text(rules)
    config = root / "hookwise.yaml"
    config.write_text(yaml_config(store))
    argv = [sys.executable, "-m", "hookwise", "serve", "--config", str(config)]
    return Process("hookwise", argv, root / "hookwise.log", cwd=root)
