"""The PostgreSQL server goes away and comes back: no 202 for anything not stored, and
the work resumes by itself.

The server is a private one (tests/postgres.py's `PrivateServer`), so stopping it
disturbs no other test. A fast shutdown cuts every connection hookwise holds, in the
middle of runs, as a crash or a failover would.
"""

from __future__ import annotations

import time
from collections import Counter
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from tests.conftest import Hookwise, Reply, Sink, wait_until
from tests.faults.conftest import events_by_status, http_post, metric, promotion, rule, rules
from tests.postgres import PrivateServer

BEFORE = 6
HELD = 2
pytestmark = pytest.mark.slow


@pytest.fixture
def database() -> Iterator[PrivateServer]:
    server = PrivateServer()
    try:
        server.start()
        yield server
    finally:
        server.destroy()


def test_deliveries_get_503_while_the_database_is_down_and_work_resumes_after(
    tmp_path: Path, sink: Sink, database: PrivateServer
):
    text = rules(rule("deploy", "{source: artifactory}", http_post("notify", sink.url)))
    server = Hookwise(tmp_path, text, store=database.url, lease="2s")
    try:
        server.start()
        # The first HELD actions are still waiting for the sink when the database goes.
        sink.script(*[Reply(delay=3)] * HELD)
        accepted = [server.post(promotion(f"before-{n}")) for n in range(BEFORE)]
        assert [r.status_code for r in accepted] == [202] * BEFORE
        wait_until(lambda: len(sink.received) == BEFORE)
        held_until = time.monotonic() + 3
        database.stop()

        for n in range(3):
            started = time.monotonic()
            refused = server.post(promotion(f"during-{n}"))
            assert refused.status_code == 503, refused.text
            assert refused.json()["reason"] == "store_unavailable"
            assert time.monotonic() - started < 8, "a delivery must not wait long for a 503"
            assert server.get("/healthz").status_code == 200
        # /metrics answers while the store is down, counting the refusals.
        refused = metric(server, "hookwise_events_rejected_total", reason="store_unavailable")
        assert refused == 3

        # The held actions end while the database is away, and it stays away for longer
        # than a store call waits for a connection (5 s) and than their lease (2 s).
        time.sleep(max(0.0, held_until + 7 - time.monotonic()))
        database.start()
        # Until the pool has reconnected a delivery may still get a 503, never anything else.
        answers: list[int] = []

        def delivered() -> bool:
            answers.append(server.post(promotion("after")).status_code)
            return answers[-1] == 202

        wait_until(delivered, timeout=30, interval=0.5)
        assert set(answers) <= {202, 503}, answers

        # Every run accepted before the outage completes. The held ones finished their
        # action while the database was away: their outcome is recorded once it is back,
        # although their lease ran out meanwhile, so their action is not sent again.
        wait_until(lambda: events_by_status(server) == {"succeeded": BEFORE + 1}, timeout=60)
        tags = Counter(request.body["data"]["tag"] for request in sink.received)
        expected = {f"before-{n}": 1 for n in range(BEFORE)} | {"after": 1}
        assert tags == expected, "a refused delivery was executed, or an action repeated"
        assert server.process is not None and server.process.poll() is None
        assert any("the store answers again" in line for line in server.log), server.log
        assert any("cannot record its progress yet" in line for line in server.log), server.log
    finally:
        server.stop()


def test_a_store_that_cannot_be_reached_at_start_is_reported(tmp_path: Path):
    unreachable = "postgresql://hookwise:s3cret@127.0.0.1:1/hookwise"
    server = Hookwise(tmp_path, "rules: []\n", store=unreachable)
    with pytest.raises(AssertionError, match="did not start") as failed:
        server.start()
    assert "hookwise cannot start: cannot open the PostgreSQL store " in str(failed.value)
    assert "postgresql://hookwise:***@127.0.0.1:1/hookwise" in str(failed.value)
    assert "s3cret" not in str(failed.value)
    with pytest.raises(httpx.HTTPError):
        httpx.get("http://127.0.0.1:1/healthz", timeout=1)
