"""`worker.processes`: `serve` starts its own `hookwise worker` children on SQLite.

The children poll only every 30 seconds here, so runs completing within seconds
show that `serve` wakes them through their stdin pipe. A child killed with SIGKILL is
started again; stopping `serve` stops its children; no run is executed twice; what the
children did shows in `serve`'s /metrics.
"""

from __future__ import annotations

import os
import signal
import subprocess
from collections import Counter
from pathlib import Path

import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import Hookwise, Sink, wait_until
from tests.faults.conftest import events_by_status, http_post, promotion, rule, rules

pytestmark = pytest.mark.slow


def children(pid: int) -> set[int]:
    found = subprocess.run(["pgrep", "-P", str(pid)], capture_output=True, text=True)
    return {int(line) for line in found.stdout.split()}


def alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    # A zombie is gone for our purposes: it only waits for its parent to reap it.
    return "Z" not in Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0]


def samples(server: Hookwise) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
    """`serve`'s /metrics by sample name and labels; each family must appear once."""
    families = list(text_string_to_metric_families(server.get("/metrics").text))
    names = [family.name for family in families]
    assert len(names) == len(set(names)), f"a metric family appears twice: {sorted(names)}"
    return {
        (sample.name, tuple(sorted(sample.labels.items()))): sample.value
        for family in families
        for sample in family.samples
    }


def counted(server: Hookwise, runs: int) -> None:
    """What the children did, as `serve` reports it."""
    found = samples(server)
    assert found[("hookwise_action_attempts_total", (("action", "http.post"),
                                                    ("status", "succeeded")))] == runs  # fmt: skip
    assert found[("hookwise_runs_finished_total", (("rule", "deploy"),
                                                  ("status", "succeeded")))] == runs  # fmt: skip
    assert found[("hookwise_action_duration_seconds_count", (("action", "http.post"),))] == runs
    accepted = found[("hookwise_events_accepted_total", (("duplicate", "false"),
                                                        ("source", "artifactory")))]  # fmt: skip
    assert accepted == runs  # counted by `serve` itself, once


def test_serve_runs_actions_in_worker_processes_it_supervises(tmp_path: Path, sink: Sink):
    server = Hookwise(
        tmp_path, rules(rule("deploy", "{source: artifactory}", http_post("go", sink.url)))
    )
    server.config.write_text(
        server.config.read_text().replace(
            "  poll_interval: 0.2s\n", "  poll_interval: 30s\n  processes: 2\n"
        )
    )
    server.start()
    try:
        assert server.process is not None
        workers = wait_until(
            lambda: (found := children(server.process.pid)) and len(found) == 2 and found
        )
        assert all(server.post(promotion(f"t{n}")).status_code == 202 for n in range(30))
        wait_until(lambda: events_by_status(server) == {"succeeded": 30}, timeout=20)
        counted(server, 30)

        victim = min(workers)
        os.kill(victim, signal.SIGKILL)
        wait_until(
            lambda: any("exited with code -9; starting it again" in line for line in server.log)
        )
        replaced = wait_until(
            lambda: (found := children(server.process.pid)) - workers and len(found) == 2 and found
        )
        assert victim not in replaced
        assert server.post(promotion("after")).status_code == 202
        wait_until(lambda: events_by_status(server) == {"succeeded": 31}, timeout=20)
        counted(server, 31)  # a child's death takes nothing from the counts
    finally:
        server.stop()
    assert not any(alive(pid) for pid in workers | replaced), "a worker outlived serve"
    sent = Counter(request.headers["idempotency-key"] for request in sink.received)
    assert len(sent) == 31 and set(sent.values()) == {1}, "a run was executed twice"
