"""One delivery sent 100 times at once is one event, one set of runs, one downstream call."""

from __future__ import annotations

import time

import pytest

from tests.conftest import Hookwise, Sink
from tests.faults.conftest import (
    client,
    http_post,
    log_action,
    metric,
    promotion,
    rule,
    rules,
    sw_delivery,
    sw_server,
    together,
)

COPIES = 100


@pytest.mark.parametrize("source", ["artifactory", "sw"])
def test_same_delivery_sent_concurrently_is_one_event(hookwise_factory, sink: Sink, source: str):
    # Artifactory deliveries are recognised by their body, Standard Webhooks ones by webhook-id.
    text = rules(
        rule("notify", "{event_type: [promoted, pushed]}", http_post("notify", sink.url)),
        rule("trace", "{}", log_action("seen {{ data.tag }}")),
    )
    server: Hookwise = sw_server(hookwise_factory, text)
    server.start()
    if source == "sw":
        body, sign = sw_delivery("v1", "msg_once")
        headers = sign()
    else:
        body, headers = promotion("v1"), {}

    with client(server, COPIES) as http:
        responses = together(
            COPIES, lambda _: http.post(f"/hooks/{source}", content=body, headers=headers)
        )
    assert [r.status_code for r in responses] == [202] * COPIES
    answers = [r.json() for r in responses]
    assert sorted(a["duplicate"] for a in answers) == [False] + [True] * (COPIES - 1)
    [event_id] = {a["event_id"] for a in answers}

    [stored] = server.stored(source)
    assert (stored["id"], stored["runs"]) == (event_id, 2)
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert sorted((r["rule"], r["status"], r["attempts"]) for r in runs) == [
        ("notify", "succeeded", 1),
        ("trace", "succeeded", 1),
    ]
    # Give a stray second run time to show up (several poll intervals) before counting.
    time.sleep(1)
    assert [(r.body["event"], r.body["data"]["tag"]) for r in sink.received] == [(event_id, "v1")]
    accepted = "hookwise_events_accepted_total"
    assert metric(server, accepted, source=source, duplicate="false") == 1
    assert metric(server, accepted, source=source, duplicate="true") == COPIES - 1
