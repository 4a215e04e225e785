"""A secret a downstream echoes back stays out of the history, the API, the CLI and the
log of a real `hookwise serve`."""

from __future__ import annotations

import json

from tests.conftest import Reply, Sink, run_cli, wait_until
from tests.unit.test_secrets import TOKEN, leaked

ECHO_RULES = """
rules:
  - name: echo
    when: {source: artifactory, domain: docker}
    actions:
      - id: accepted
        uses: http.post
        with:
          url: "{sink}/ok?api_key=${HOOKWISE_TEST_TOKEN}"
          json: {token: "${HOOKWISE_TEST_TOKEN}"}
      - id: refused
        uses: http.post
        with:
          url: "{sink}/fail?api_key=${HOOKWISE_TEST_TOKEN}"
          json: {token: "${HOOKWISE_TEST_TOKEN}", note: "{{ 'x' * 280 }}"}
        retry: {attempts: 1}
"""


def test_a_downstream_echoing_the_secret_leaves_no_trace(hookwise_factory, sink: Sink):
    server = hookwise_factory(ECHO_RULES.replace("{sink}", sink.url))
    server.env["HOOKWISE_TEST_TOKEN"] = TOKEN
    server.start()
    # The first answer echoes the request into the output, the second into the error.
    sink.script(Reply(200, echo=True), Reply(500, echo=True))
    body = json.dumps({"domain": "docker", "event_type": "pushed", "data": {"tag": "1"}})
    event_id = server.post(body.encode()).json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"dead"})
    assert [r.path.startswith(("/ok?api_key=tok", "/fail?api_key=tok")) for r in sink.received] == [
        True,
        True,
    ]  # the downstream did get the token
    shown = server.get(f"/api/events/{event_id}").text
    assert "***" in shown
    assert leaked(shown) == [], shown
    listed = server.get("/api/events", params={"source": "artifactory"}).text
    assert leaked(listed) == []
    cli = run_cli("show", event_id, cwd=server.root, env={"HOOKWISE_TEST_TOKEN": TOKEN})
    assert cli.returncode == 0, cli.stderr
    assert leaked(cli.stdout + cli.stderr) == []
    wait_until(lambda: any("run is dead" in line for line in server.log))
    assert leaked("\n".join(server.log)) == []
    assert run["error"].startswith("refused: POST ")
