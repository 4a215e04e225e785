"""Failing, throttling and hanging downstreams: retries pace themselves and block nothing else."""

from __future__ import annotations

import itertools
import time

from tests.conftest import Reply, Sink, wait_until
from tests.faults.conftest import (
    http_post,
    metric,
    promotion,
    rule,
    rules,
)


def test_5xx_429_and_a_hang_are_paced_then_the_run_ends_dead(hookwise_factory, sink: Sink):
    retry = "{attempts: 4, backoff: 0.2s, max_backoff: 0.4s}"
    text = rules(
        rule(
            "flaky",
            "{source: artifactory}",
            http_post("flaky", sink.url, retry=retry, timeout="1s"),
        )
    )
    server = hookwise_factory(text)
    server.start()
    sink.script(
        Reply(500, {"error": "busy"}),
        Reply(503, {"error": "down"}),
        Reply(429, {"error": "slow down"}, {"Retry-After": "2"}),
        Reply(delay=60),  # past the action's 1s timeout
    )
    event_id = server.post(promotion("v1")).json()["event_id"]
    wait_until(lambda: len(sink.received) == 4, timeout=10)
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=10)
    hung_for = time.monotonic() - sink.received[3].at

    # Jittered backoff: 0.2s * 2^(n-1), at most 0.4s, times 0.5 to 1. Then Retry-After,
    # which the 0.4s max_backoff does not cap. Then the hang ends at the 1s timeout.
    gaps = [b.at - a.at for a, b in itertools.pairwise(sink.received)]
    assert 0.1 <= gaps[0] < 0.9, gaps
    assert 0.2 <= gaps[1] < 1.1, gaps
    assert 1.95 <= gaps[2] < 3.0, gaps
    assert 1000 <= run["history"][3]["duration_ms"] < 2000
    assert hung_for < 3.0, hung_for
    assert run["status"] == "dead"
    assert run["error"] == "flaky: timed out after 1s"
    assert (run["attempts"], run["next_attempt_at"]) == (4, None)
    history = [(h["attempt"], h["status"], h["error"]) for h in run["history"]]
    assert [entry[:2] for entry in history] == [
        (1, "retry"),
        (2, "retry"),
        (3, "retry"),
        (4, "retry"),
    ]
    assert "answered 500" in history[0][2]
    assert "answered 503" in history[1][2]
    assert "answered 429" in history[2][2]
    assert history[3][2] == "timed out after 1s"
    # No attempt beyond the fourth, all four with the run's one idempotency key.
    time.sleep(0.5)
    assert len(sink.received) == 4
    assert len({r.headers["idempotency-key"] for r in sink.received}) == 1
    assert metric(server, "hookwise_runs_finished_total", rule="flaky", status="dead") == 1
    assert metric(server, "hookwise_action_attempts_total", action="http.post", status="retry") == 4


def test_poison_event_does_not_delay_other_events(hookwise_factory, sink: Sink, other_sink: Sink):
    poison = http_post(
        "poison", other_sink.url, retry="{attempts: 3, backoff: 0.2s}", timeout="1.5s"
    )
    text = rules(
        rule("poison", "{match: {data.image_name: poison}}", poison),
        rule("deliver", "{match: {data.image_name: app}}", http_post("deliver", sink.url)),
    )
    server = hookwise_factory(text)
    server.start()
    other_sink.script(*[Reply(delay=60)] * 3)  # the poison event's downstream always hangs
    poison_id = server.post(promotion("p", image="poison")).json()["event_id"]
    wait_until(lambda: len(other_sink.received) == 1)

    # Other events, spread over the poison event's hanging attempts and its retries.
    sent = {}
    for n in range(10):
        started = time.monotonic()
        sent[server.post(promotion(f"a{n}")).json()["event_id"]] = started
        time.sleep(0.3)
    wait_until(lambda: len(sink.received) == len(sent))
    [poison_run] = server.event(poison_id)["runs"]
    assert poison_run["status"] in ("running", "retrying")
    assert len(other_sink.received) >= 2  # it was retried meanwhile

    delays = [r.at - sent[r.body["event"]] for r in sink.received]
    assert sorted(r.body["event"] for r in sink.received) == sorted(sent)
    assert max(delays) < 1.0, delays
    for event_id in sent:
        [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})
        assert (run["status"], run["attempts"]) == ("succeeded", 1)

    [poison_run] = server.wait_for_runs(poison_id, {"succeeded", "dead"}, timeout=15)
    assert poison_run["status"] == "dead"
    assert [(h["status"], h["error"]) for h in poison_run["history"]] == [
        ("retry", "timed out after 1.5s")
    ] * 3
    assert len(other_sink.received) == 3
