"""The 202 comes fast, whatever the downstreams do, on new and on kept-alive connections."""

from __future__ import annotations

import json
import statistics

from tests.conftest import Reply, Sink, wait_until
from tests.faults.conftest import (
    events_by_status,
    http_post,
    log_action,
    percentile,
    promotion,
    rule,
    rules,
    timed_posts,
)

ACCEPTS = 200
HANGING = 5
TRACE = rule("trace", "{domain: build}", log_action("build {{ data.number }}"))


def builds(count: int, start: int = 0) -> list[bytes]:
    return [
        json.dumps({"domain": "build", "event_type": "uploaded", "data": {"number": n}}).encode()
        for n in range(start, start + count)
    ]


def test_hanging_downstream_does_not_slow_accepts(hookwise_factory, sink: Sink):
    deploy = http_post("deploy", sink.url, request_timeout="90s", timeout="90s")
    server = hookwise_factory(rules(rule("deploy", "{domain: docker}", deploy), TRACE))
    server.start()
    # Each on a connection of its own: see the kept-alive test below for why.
    before = timed_posts(server, builds(ACCEPTS), keep_alive=False)

    sink.script(*[Reply(delay=60)] * HANGING)
    hanging = [server.post(promotion(f"h{n}")).json()["event_id"] for n in range(HANGING)]
    wait_until(lambda: len(sink.received) == HANGING)
    during = timed_posts(server, builds(ACCEPTS, start=ACCEPTS), keep_alive=False)

    p99_before, p99_during = percentile(before, 0.99), percentile(during, 0.99)
    assert p99_during < 0.25, (p99_before, p99_during)
    assert p99_during < max(5 * p99_before, 0.1), (p99_before, p99_during)
    # The other events' runs complete while the downstream hangs; the hanging ones wait.
    wait_until(lambda: events_by_status(server, domain="build") == {"succeeded": 2 * ACCEPTS})
    assert events_by_status(server, domain="docker") == {"active": HANGING}
    statuses = [r["status"] for event_id in hanging for r in server.event(event_id)["runs"]]
    assert statuses == ["running"] * HANGING
    assert len(sink.received) == HANGING

    sink.release.set()
    for event_id in hanging:
        [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})
        assert (run["status"], run["attempts"]) == ("succeeded", 1)
    assert len(sink.received) == HANGING


def test_accepts_on_a_kept_alive_connection_are_not_held_back(hookwise_factory):
    # Senders keep their connection open between deliveries. A 202 written in two parts
    # (head, then body) by a socket without TCP_NODELAY waits for the sender's delayed
    # ACK, about 40 ms on Linux, on every delivery but the first of a connection.
    server = hookwise_factory(rules(TRACE))
    server.start()
    fresh = statistics.median(timed_posts(server, builds(50), keep_alive=False))
    kept = statistics.median(timed_posts(server, builds(50, start=50), keep_alive=True))
    assert kept < max(2 * fresh, 0.02), f"kept-alive median {kept:.4f}s, fresh {fresh:.4f}s"
    # The last deliveries' runs may still be going: every one of them completes.
    wait_until(lambda: events_by_status(server, domain="build") == {"succeeded": 100})
