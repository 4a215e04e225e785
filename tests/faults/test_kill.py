"""`kill -9` in the middle of an action, and right after a 202: nothing lost, nothing doubled."""

from __future__ import annotations

import threading
from concurrent.futures import ThreadPoolExecutor
from functools import partial

import httpx

from tests.conftest import Reply, Sink, wait_until
from tests.faults.conftest import (
    check_idempotency,
    client,
    events_by_status,
    http_post,
    log_action,
    promotion,
    rule,
    rules,
    runs_of,
    sw_delivery,
    sw_server,
    together,
)

HELD = 3
EVENTS = 8


def test_kill_during_actions_completes_every_event_once_per_action(
    hookwise_factory, sink: Sink, other_sink: Sink
):
    # Two actions per run, each to its own downstream. The first holds HELD requests
    # open, so those attempts are in flight when the process dies; all else is recorded.
    text = rules(
        rule(
            "deploy",
            "{source: artifactory}",
            http_post("first", sink.url),
            http_post("second", other_sink.url),
        )
    )
    server = hookwise_factory(text, lease="2s")
    server.start()
    sink.script(*[Reply(delay=60)] * HELD)
    ids = [server.post(promotion(f"t{n}")).json()["event_id"] for n in range(EVENTS)]
    wait_until(lambda: events_by_status(server) == {"succeeded": EVENTS - HELD, "active": HELD})
    assert (len(sink.received), len(other_sink.received)) == (EVENTS, EVENTS - HELD)
    server.kill()

    server.start()
    for event_id in ids:
        server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=20)
    runs = runs_of(server, ids)
    assert {event_id: [r["status"] for r in rs] for event_id, rs in runs.items()} == {
        event_id: ["succeeded"] for event_id in ids
    }
    assert events_by_status(server) == {"succeeded": EVENTS}
    assert server.get("/api/events", params={"status": "active"}).json()["events"] == []
    # Every action reached the sink; only the held attempts were sent again, with the
    # key of their first try, and every action has exactly one successful attempt.
    received = sink.received + other_sink.received
    assert {(r.body["event"], r.body["step"]) for r in received} == {
        (event_id, step) for event_id in ids for step in ("first", "second")
    }
    assert check_idempotency(received, runs) == HELD
    lost = [h for rs in runs.values() for h in rs[0]["history"] if h["status"] == "lost"]
    assert len(lost) == HELD
    assert all("lease expired" in h["error"] for h in lost)
    assert sorted(rs[0]["attempts"] for rs in runs.values()) == [2] * (EVENTS - HELD) + [3] * HELD


def sw_rules(url: str) -> str:
    return rules(
        rule("notify", "{source: sw, domain: image}", http_post("notify", url)),
        rule("trace", "{source: sw}", log_action("pushed {{ data.tag }}")),
    )


def test_kill_right_after_accepting_then_sender_retries(hookwise_factory, sink: Sink):
    server = sw_server(hookwise_factory, sw_rules(sink.url), lease="2s")
    server.start()
    # One delivery answered 202, then the process is killed at once.
    first_body, first_headers = sw_delivery("first", "msg_first")
    answered = server.post(first_body, source="sw", headers=first_headers())
    assert answered.status_code == 202
    assert answered.json()["duplicate"] is False
    server.kill()

    # Ten more sent together; the process is killed as soon as one of them is answered,
    # so the others may or may not have been stored when their connection broke.
    server.start()
    deliveries = [sw_delivery(f"t{n}", f"msg_{n}") for n in range(10)]
    one_answered = threading.Event()

    def send(http: httpx.Client, n: int) -> dict | None:
        body, headers = deliveries[n]
        try:
            response = http.post("/hooks/sw", content=body, headers=headers())
        except httpx.TransportError:
            return None
        one_answered.set()
        assert response.status_code == 202, response.text
        return response.json()

    with client(server) as http, ThreadPoolExecutor(1) as pool:
        sending = pool.submit(together, len(deliveries), partial(send, http))
        assert one_answered.wait(timeout=10)
        server.kill()
        first_answers = sending.result(timeout=30)

    # The sender retries, each retry signed again with a new timestamp: the ones it
    # saw accepted are duplicates of what it was told, and the rest are accepted once.
    server.start()
    retried = server.post(first_body, source="sw", headers=first_headers())
    assert retried.json() == {"event_id": answered.json()["event_id"], "duplicate": True}
    answers = [server.post(body, source="sw", headers=headers()) for body, headers in deliveries]
    assert [a.status_code for a in answers] == [202] * len(deliveries)
    for before, after in zip(first_answers, answers, strict=True):
        if before is not None:
            assert after.json() == {"event_id": before["event_id"], "duplicate": True}

    # One event per delivery, each with one set of runs (one per rule), all completed.
    stored = server.stored("sw")
    assert sorted(e["delivery_id"] for e in stored) == sorted(
        ["msg_first", *(f"msg_{n}" for n in range(len(deliveries)))]
    )
    ids = [e["id"] for e in stored]
    assert {answered.json()["event_id"], *(a.json()["event_id"] for a in answers)} == set(ids)
    for event_id in ids:
        server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=20)
    runs = runs_of(server, ids)
    outcomes = {tuple(sorted((r["rule"], r["status"]) for r in rs)) for rs in runs.values()}
    assert outcomes == {(("notify", "succeeded"), ("trace", "succeeded"))}, runs
    # The downstream heard from every event, one key per run (repeats only after a kill).
    assert {r.body["event"] for r in sink.received} == set(ids)
    check_idempotency(sink.received, runs)
