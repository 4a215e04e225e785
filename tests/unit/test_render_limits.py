"""A pathological template costs its own run, not the service: bounded in size and time,
rendered off the event loop."""

from __future__ import annotations

import json
import time

import pytest

LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}"


def rule(params: str, timeout: str = "30s", condition: str | None = None) -> str:
    when = "{source: artifactory, domain: docker}"
    if condition is not None:
        when = "{source: artifactory, domain: docker, if: " + json.dumps(condition) + "}"
    return f"""
rules:
  - name: heavy
    when: {when}
    actions:
      - id: deploy
        uses: log
        with: {{message: {json.dumps(params)}}}
        timeout: {timeout}
"""


@pytest.mark.anyio
@pytest.mark.parametrize(
    "template", ['{{ "x"|center(200000000) }}', '{{ "x\\nx"|indent(200000000, true) }}']
)
async def test_an_amplifying_template_kills_its_run_within_a_second(harness_for, template: str):
    flow = await harness_for(rule(template))
    event_id = await flow.emit("docker", "promoted", {"tag": "1"})
    started = time.monotonic()
    await flow.drain()
    assert time.monotonic() - started < 1.0
    [run] = await flow.runs(event_id)
    assert run["status"] == "dead"
    assert run["error"].startswith("deploy: rule heavy, deploy.message: template ")
    assert "refused: |" in run["error"] and "templates.max_output" in run["error"]


@pytest.mark.anyio
async def test_the_action_timeout_bounds_rendering(harness_for):
    flow = await harness_for(rule(LOOP, timeout="1s"))
    event_id = await flow.emit("docker", "promoted", {"tag": "1"})
    started = time.monotonic()
    await flow.drain()
    elapsed = time.monotonic() - started
    [run] = await flow.runs(event_id)
    assert run["status"] == "dead"
    assert "rule heavy, deploy.message" in run["error"]
    assert "took longer than 1s and was stopped" in run["error"]
    assert 0.9 < elapsed < 2.5


@pytest.mark.anyio
async def test_an_if_that_takes_too_long_is_a_miss_not_a_stall(harness_for, caplog):
    slow = " and ".join(["range(100000)|map('string')|sort|list|length > 0"] * 40)
    flow = await harness_for(rule("ok", condition=slow))
    flow.engine.templates.timeout = 0.3
    started = time.monotonic()
    event_id = await flow.emit("docker", "promoted", {"tag": "1"})
    assert time.monotonic() - started < 1.0
    assert await flow.runs(event_id) == []
    assert "rule heavy did not match event" in caplog.text
    assert "took longer than 0.3s" in caplog.text
