"""Running actions for real: http.post to a local sink, retries, backoff, dead runs."""

from __future__ import annotations

import itertools
import json
import time

from tests.conftest import Hookwise, Reply, Sink, wait_until

PROMOTION = json.dumps(
    {
        "domain": "docker",
        "event_type": "promoted",
        "data": {"image_name": "helloworld", "tag": "1.4.2", "repo_key": "docker-local-staging"},
    }
).encode()


def post_rules(url: str, retry: str = "{attempts: 3, backoff: 0.3s, max_backoff: 2s}") -> str:
    return f"""\
rules:
  - name: deploy-helloworld
    when:
      source: artifactory
      domain: docker
      event_type: promoted
      match: {{data.image_name: helloworld}}
    actions:
      - id: notify
        uses: http.post
        with:
          url: "{url}/deployed"
          json: {{image: "{{{{ data.image_name }}}}:{{{{ data.tag }}}}", size: "{{{{ data }}}}"}}
          headers: {{X-Deploy-Token: "${{DEPLOY_TOKEN}}"}}
        retry: {retry}
      - uses: log
        with: {{message: "sink answered {{{{ steps.notify.output.status }}}} to ${{DEPLOY_TOKEN}}"}}
"""


def start(hookwise_factory, sink: Sink, **kwargs) -> Hookwise:
    instance = hookwise_factory(post_rules(sink.url, **kwargs))
    instance.env["DEPLOY_TOKEN"] = "tok-123-secret"
    return instance.start()


def test_post_renders_templates_chains_steps_and_keeps_secrets_out(hookwise_factory, sink: Sink):
    # At debug level the run's own log lines reach the process log too, masked there as well.
    instance = hookwise_factory(post_rules(sink.url))
    instance.env.update(DEPLOY_TOKEN="tok-123-secret", HOOKWISE_LOG_LEVEL="debug")
    server = instance.start()
    event_id = server.post(PROMOTION).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["status"] == "succeeded", runs
    assert len(sink.received) == 1
    request = sink.received[0]
    assert request.path == "/deployed"
    assert request.body["image"] == "helloworld:1.4.2"
    # A string that is exactly one expression keeps its type: here the whole data object.
    assert request.body["size"] == {
        "image_name": "helloworld",
        "tag": "1.4.2",
        "repo_key": "docker-local-staging",
    }
    assert request.headers["x-deploy-token"] == "tok-123-secret"
    assert len(request.headers["idempotency-key"]) == 32
    run = runs[0]
    assert run["output"]["notify"]["status"] == 200
    assert run["output"]["notify"]["body"] == {"ok": True}
    assert [line["message"] for line in run["log"]][-1] == "sink answered 200 to ***"
    assert [h["status"] for h in run["history"]] == ["succeeded", "succeeded"]
    assert "tok-123-secret" not in json.dumps(server.event(event_id))
    assert any("sink answered 200 to ***" in line for line in server.log)
    assert not any("tok-123-secret" in line for line in server.log)


def test_5xx_is_retried_with_backoff_then_succeeds_with_one_idempotency_key(
    hookwise_factory, sink: Sink
):
    sink.script(Reply(500, {"error": "busy"}), Reply(502, {"error": "gateway"}))
    server = start(hookwise_factory, sink)
    event_id = server.post(PROMOTION).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["status"] == "succeeded"
    assert len(sink.received) == 3
    assert len({r.headers["idempotency-key"] for r in sink.received}) == 1
    history = runs[0]["history"]
    assert [(h["action"], h["attempt"], h["status"]) for h in history] == [
        ("notify", 1, "retry"),
        ("notify", 2, "retry"),
        ("notify", 3, "succeeded"),
        ("log#2", 1, "succeeded"),
    ]
    assert "answered 500" in history[0]["error"]
    assert runs[0]["attempts"] == 4


def test_backoff_grows_between_attempts(hookwise_factory, sink: Sink):
    sink.script(Reply(500), Reply(500), Reply(500))
    server = start(hookwise_factory, sink, retry="{attempts: 4, backoff: 0.4s, max_backoff: 5s}")
    event_id = server.post(PROMOTION).json()["event_id"]
    server.wait_for_runs(event_id, {"succeeded", "dead"}, timeout=20)
    arrivals = [request.at for request in sink.received]
    gaps = [b - a for a, b in itertools.pairwise(arrivals)]
    # Jittered exponential: attempt n waits between half and all of 0.4 * 2**(n-1) seconds.
    assert len(gaps) == 3
    assert 0.2 <= gaps[0] < 1.4
    assert 0.4 <= gaps[1] < 2.0
    assert 0.8 <= gaps[2] < 3.0


def test_retry_after_on_429_is_honoured(hookwise_factory, sink: Sink):
    sink.script(Reply(429, {"error": "slow down"}, {"Retry-After": "2"}))
    server = start(hookwise_factory, sink, retry="{attempts: 3, backoff: 0.1s, max_backoff: 0.2s}")
    event_id = server.post(PROMOTION).json()["event_id"]
    wait_until(lambda: len(sink.received) >= 1)
    first = time.monotonic()
    wait_until(lambda: len(sink.received) >= 2, timeout=10)
    assert time.monotonic() - first >= 1.8
    runs = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert runs[0]["status"] == "succeeded"


def test_run_goes_dead_after_its_attempts(hookwise_factory, sink: Sink):
    sink.script(*[Reply(503, {"error": "down"})] * 3)
    server = start(hookwise_factory, sink)
    event_id = server.post(PROMOTION).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"dead"}, timeout=20)
    assert len(sink.received) == 3
    assert runs[0]["error"].startswith("notify: POST ")
    assert "answered 503" in runs[0]["error"]
    assert [h["status"] for h in runs[0]["history"]] == ["retry", "retry", "retry"]
    # The action after the failed one never ran.
    assert all(h["action"] == "notify" for h in runs[0]["history"])
    listed = server.get("/api/events", params={"status": "dead"}).json()["events"]
    assert [e["id"] for e in listed] == [event_id]
    logged = "\n".join(server.log)
    assert "rule deploy-helloworld action notify attempt 1/3 failed, retrying in" in logged
    assert "action notify attempt 3/3 failed, run is dead: POST" in logged


def test_4xx_is_permanent_and_not_retried(hookwise_factory, sink: Sink):
    sink.script(Reply(404, {"error": "no such hook"}))
    server = start(hookwise_factory, sink)
    event_id = server.post(PROMOTION).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"dead"})
    assert len(sink.received) == 1
    assert [h["status"] for h in runs[0]["history"]] == ["dead"]
    assert "answered 404" in runs[0]["error"]


def test_egress_to_loopback_is_refused_unless_allowed(hookwise_factory, sink: Sink, tmp_path):
    server = start(hookwise_factory, sink)
    server.config.write_text(server.config.read_text().replace("allow: [127.0.0.1]", "allow: []"))
    server.stop()
    server.start()
    event_id = server.post(PROMOTION).json()["event_id"]
    runs = server.wait_for_runs(event_id, {"dead"})
    assert sink.received == []
    assert "egress to 127.0.0.1" in runs[0]["error"]
    assert "egress.allow" in runs[0]["error"]


def test_slow_action_does_not_slow_accepts_or_other_runs(hookwise_factory, sink: Sink):
    sink.script(Reply(delay=30))
    rules = (
        post_rules(sink.url)
        + """\
  - name: quick-log
    when: {source: artifactory, domain: build}
    actions:
      - uses: log
        with: {message: "build {{ data.build_name }}"}
"""
    )
    server = hookwise_factory(rules)
    server.env["DEPLOY_TOKEN"] = "x"
    server.start()
    server.post(PROMOTION)
    wait_until(lambda: len(sink.received) == 1)
    started = time.monotonic()
    build = json.dumps({"domain": "build", "event_type": "uploaded", "data": {"build_name": "b"}})
    response = server.post(build.encode())
    assert time.monotonic() - started < 2
    runs = server.wait_for_runs(response.json()["event_id"], {"succeeded"}, timeout=5)
    assert runs[0]["log"][0]["message"] == "build b"


def test_numeric_secret_is_masked_without_breaking_the_history(hookwise_factory):
    rules = (
        "rules:\n  - name: chat\n    when: {domain: docker}\n    actions:\n"
        "      - uses: log\n        with: {message: 'chat ${CHAT_ID} at {{ data.size }}'}\n"
    )
    server = hookwise_factory(rules)
    server.env["CHAT_ID"] = "42"
    server.start()
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": {"size": 4242}})
    event_id = server.post(body.encode()).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert run["status"] == "succeeded"
    assert run["attempts"] == 1
    assert run["log"][0]["message"] == "chat *** at ******"
    assert run["log"][0]["at"].endswith("+00:00")  # ISO 8601, like every time in the API
