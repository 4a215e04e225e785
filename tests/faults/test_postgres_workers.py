"""Several hookwise processes on one PostgreSQL database: every run once, none lost.

`hookwise serve` receives a steady stream of deliveries while one or two `hookwise
worker` processes share the execution. The workers poll only every 30 seconds, so they
get their work from the database's notifications (LISTEN/NOTIFY); a sampler watching
the runs table sees every process hold runs. Each run posts twice to a slow sink, which
must see each action's idempotency key exactly once, and never two requests of one
run at the same time.
"""

from __future__ import annotations

import contextlib
import itertools
import threading
import time
from collections import defaultdict
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import psycopg
import pytest

from tests.conftest import Hookwise, Received, Reply, Sink, wait_until
from tests.faults.conftest import client, events_by_status, http_post, promotion, rule, rules
from tests.postgres import fresh_database

EVENTS = 120
POSTERS = 4
STEPS = ("first", "second")
pytestmark = pytest.mark.slow


class Owners(threading.Thread):
    """Samples which processes hold running runs, by the lease owner (`host:pid/token`)."""

    def __init__(self, url: str) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.seen: set[int] = set()
        self.stopping = threading.Event()

    def run(self) -> None:
        with psycopg.connect(self.url, autocommit=True) as conn:
            while not self.stopping.wait(0.02):
                for (owner,) in conn.execute(
                    "SELECT DISTINCT split_part(lease_owner, '/', 1) FROM runs "
                    "WHERE status = 'running'"
                ):
                    self.seen.add(int(owner.rpartition(":")[2]))

    def stop(self) -> set[int]:
        self.stopping.set()
        self.join(timeout=10)
        return self.seen


@contextlib.contextmanager
def processes(root: Path, url: str, sink: Sink, workers: int) -> Iterator[list[Hookwise]]:
    """`hookwise serve` and `workers` times `hookwise worker`, all on the database at `url`."""
    text = rules(rule("deploy", "{source: artifactory}", *(http_post(s, sink.url) for s in STEPS)))
    started: list[Hookwise] = []
    try:
        for n in range(workers + 1):
            command = "serve" if n == 0 else "worker"
            server = Hookwise(root / f"{command}-{n}", text, store=url, command=command)
            # Small enough that the stream needs every process; a poll too slow to matter.
            server.config.write_text(
                server.config.read_text().replace(
                    "  poll_interval: 0.2s\n", "  poll_interval: 30s\n  concurrency: 4\n"
                )
            )
            started.append(server.start())
        yield started
    finally:
        for server in started:
            server.stop()


def overlapping(requests: list[Received]) -> list[tuple[str, str]]:
    """Pairs of one run's requests where the second began before the first was answered."""
    ordered = sorted(requests, key=lambda r: r.at)
    return [
        (earlier.body["step"], later.body["step"])
        for earlier, later in itertools.pairwise(ordered)
        if earlier.ended is None or later.at < earlier.ended
    ]


@pytest.mark.parametrize("workers", [1, 2], ids=["serve+1-worker", "serve+2-workers"])
def test_processes_on_one_database_run_every_run_exactly_once(
    tmp_path: Path, sink: Sink, workers: int
):
    sink.script(*[Reply(delay=0.05)] * (EVENTS * len(STEPS)))
    with fresh_database() as url, processes(tmp_path, url, sink, workers) as started:
        owners = Owners(url)
        owners.start()
        with client(started[0], POSTERS) as http, ThreadPoolExecutor(POSTERS) as pool:

            def post(n: int) -> int:
                time.sleep(0.01)  # a steady stream, not one burst
                return http.post("/hooks/artifactory", content=promotion(f"t{n}")).status_code

            statuses = list(pool.map(post, range(EVENTS)))
        assert statuses == [202] * EVENTS
        wait_until(lambda: events_by_status(started[0]) == {"succeeded": EVENTS}, timeout=90)
        seen = owners.stop()
        assert all(server.process and server.process.poll() is None for server in started)

    requests: dict[str, list[Received]] = defaultdict(list)
    keys: dict[str, list[tuple[str, str]]] = defaultdict(list)
    for request in sink.received:
        requests[request.body["event"]].append(request)
        keys[request.headers["idempotency-key"]].append(
            (request.body["event"], request.body["step"])
        )
    assert len(requests) == EVENTS
    assert sorted(len(sent) for sent in requests.values()) == [len(STEPS)] * EVENTS
    assert len(keys) == EVENTS * len(STEPS), "an idempotency key was sent twice"
    assert all(len(actions) == 1 for actions in keys.values())
    assert {event: overlapping(sent) for event, sent in requests.items()} == {
        event: [] for event in requests
    }
    assert seen == {server.process.pid for server in started if server.process}, (
        "every process should have executed runs"
    )
