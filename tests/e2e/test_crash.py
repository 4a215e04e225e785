"""Killing a real `hookwise serve` with SIGKILL loses no accepted event and no run."""

from __future__ import annotations

import json
import signal

from tests.conftest import Reply, Sink, wait_until

RULES = """\
rules:
  - name: deploy
    when: {{source: artifactory, domain: docker, event_type: promoted}}
    actions:
      - id: hook
        uses: http.post
        with:
          url: "{url}/deploy"
          json: {{tag: "{{{{ data.tag }}}}"}}
        retry: {{attempts: 3, backoff: 0.2s}}
"""


def test_run_killed_mid_action_completes_after_restart(hookwise_factory, sink: Sink):
    # The first delivery to the sink hangs, so the process dies while the action is in flight.
    sink.script(Reply(delay=60))
    server = hookwise_factory(RULES.format(url=sink.url), lease="2s")
    server.start()
    body = json.dumps({"domain": "docker", "event_type": "promoted", "data": {"tag": "v7"}})
    event_id = server.post(body.encode()).json()["event_id"]
    wait_until(lambda: len(sink.received) == 1)
    server.kill()

    server.start()
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=30)
    assert runs[0]["status"] == "succeeded"
    assert len(sink.received) == 2
    assert [r.body for r in sink.received] == [{"tag": "v7"}, {"tag": "v7"}]
    # Same idempotency key for the lost attempt and its retry: downstreams can dedupe.
    assert (
        sink.received[0].headers["idempotency-key"] == sink.received[1].headers["idempotency-key"]
    )
    history = runs[0]["history"]
    assert [(h["attempt"], h["status"]) for h in history] == [(1, "lost"), (2, "succeeded")]
    assert "lease expired" in history[0]["error"]


def test_events_accepted_before_a_kill_are_all_executed(hookwise_factory, sink: Sink):
    server = hookwise_factory(RULES.format(url=sink.url), lease="2s")
    server.start()
    # Hold every action so that nothing completes before the kill.
    sink.script(*[Reply(delay=60)] * 8)
    ids = []
    for n in range(20):
        body = json.dumps({"domain": "docker", "event_type": "promoted", "data": {"tag": f"t{n}"}})
        response = server.post(body.encode())
        assert response.status_code == 202
        ids.append(response.json()["event_id"])
    server.kill()
    sink.release.set()
    server.start()
    for event_id in ids:
        runs = server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=30)
        assert [r["status"] for r in runs] == ["succeeded"]
    delivered = {r.body["tag"] for r in sink.received}
    assert delivered == {f"t{n}" for n in range(20)}


def test_sigterm_hands_running_work_back_for_an_immediate_retry(hookwise_factory, sink: Sink):
    # A long lease: the run must come back because it was released, not because it expired.
    server = hookwise_factory(RULES.format(url=sink.url), lease="5m")
    server.start()
    sink.script(Reply(delay=60))
    body = json.dumps({"domain": "docker", "event_type": "promoted", "data": {"tag": "term"}})
    event_id = server.post(body.encode()).json()["event_id"]
    wait_until(lambda: len(sink.received) == 1)
    server.signal(signal.SIGTERM)
    assert server.process is not None
    # uvicorn re-raises the signal after its graceful shutdown, as a supervisor expects.
    assert server.process.wait(timeout=30) in (0, -signal.SIGTERM)
    wait_until(lambda: any("hookwise stopped" in line for line in server.log))
    sink.release.set()
    server.start()
    runs = server.wait_for_runs(event_id, {"succeeded"}, timeout=30)
    history = [(h["attempt"], h["status"]) for h in runs[0]["history"]]
    assert history == [(1, "interrupted"), (1, "succeeded")]
    assert len(sink.received) == 2
