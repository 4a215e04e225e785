"""A rule rendering for seconds costs its own run, not the service's answers."""

from __future__ import annotations

import json
import threading
import time

import httpx

from tests.unit.test_render_limits import LOOP, rule


def test_the_service_answers_while_a_rule_renders_for_seconds(hookwise_factory):
    server = hookwise_factory(rule(LOOP, timeout="3s")).start()
    latencies: list[float] = []
    done = threading.Event()

    def probe() -> None:
        with httpx.Client(timeout=5) as client:
            while not done.is_set():
                started = time.monotonic()
                assert client.get(f"{server.url}/healthz").status_code == 200
                latencies.append(time.monotonic() - started)
                time.sleep(0.05)

    prober = threading.Thread(target=probe)
    prober.start()
    try:
        body = json.dumps({"domain": "docker", "event_type": "pushed", "data": {}}).encode()
        event_ids = [server.post(body + b" " * n).json()["event_id"] for n in range(2)]
        for event_id in event_ids:
            [run] = server.wait_for_runs(event_id, {"dead"}, timeout=20)
            assert "took longer than 2s and was stopped" in run["error"]  # templates.timeout
    finally:
        done.set()
        prober.join()
    # Probed all along the seconds of rendering (each probe waits 50 ms, so a loaded
    # machine gets fewer in), and never held up behind the template: a blocked event
    # loop would show as one probe taking seconds.
    assert len(latencies) >= 8
    assert max(latencies) < 1.0, sorted(latencies)[-5:]
