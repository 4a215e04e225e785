"""`meta`, the sender's envelope around `data`, for every source kind: what each one puts
there, that rules match on it, and that it is kept in the history."""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import pytest

from hookwise.event import Incoming
from hookwise.sources import Delivery
from tests.conftest import FIXTURES, SECRET
from tests.served import Served

HARBOR_AUTH = "harbor-auth-0123456789"
RULES = """\
rules:
  - name: robot-pulls
    when:
      source: harbor
      match: {meta.operator: "robot$*"}
    actions: [{uses: log, with: {message: "pulled by {{ meta.operator }}"}}]
  - name: anything
    when: {source: "*"}
    actions: [{uses: log, with: {message: "seen"}}]
"""
EXTRA = f"""\
  harbor:
    kind: harbor
    auth_header: {HARBOR_AUTH}
  ce:
    kind: cloudevents
    allow_unauthenticated: true
"""


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    instance = Served(tmp_path_factory.mktemp("meta"), RULES, extra=EXTRA)
    instance.start()
    yield instance
    instance.stop()


def fixture(name: str) -> dict[str, Any]:
    return dict(json.loads((FIXTURES / name).read_text()))


def stored(server: Served, response: Any) -> dict[str, Any]:
    assert response.status_code == 202, response.text
    return server.event(response.json()["event_id"])


def test_harbor_says_who_and_when_in_both_formats(server: Served):
    default = fixture("harbor/artifact.pulled.default.json")
    shown = stored(server, server.post(json.dumps(default).encode(), source="harbor",
                                        headers={"Authorization": HARBOR_AUTH}))  # fmt: skip
    assert shown["event"]["meta"] == {
        "operator": default["operator"],
        "occurred_at": default["occur_at"],
    }
    assert default["operator"].startswith("robot$")
    assert sorted(r["rule"] for r in shown["runs"]) == ["anything", "robot-pulls"]

    cloudevent = fixture("harbor/artifact.pulled.cloudevents.json")
    shown = stored(server, server.post(json.dumps(cloudevent).encode(), source="harbor",
                                        headers={"Authorization": HARBOR_AUTH}))  # fmt: skip
    meta = shown["event"]["meta"]
    assert meta["operator"] == cloudevent["operator"]
    assert meta["request_id"] == meta["requestid"] == cloudevent["requestid"]
    assert (meta["occurred_at"], meta["sender"]) == (cloudevent["time"], cloudevent["source"])
    [robot] = [r for r in shown["runs"] if r["rule"] == "robot-pulls"]
    server.wait_for_runs(shown["event"]["id"], {"succeeded"})
    log = server.get(f"/api/runs/{robot['id']}").json()["run"]["log"]
    assert log[0]["message"] == f"pulled by {cloudevent['operator']}"


def test_cloudevents_extensions_and_time_and_subject(server: Served):
    event = {"specversion": "1.0", "id": "e-1", "source": "/ci", "type": "build.done",
             "time": "2026-12-05T08:00:00Z", "subject": "web", "data": {},
             "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
             "occurred_at": {"not": "plain"}}  # fmt: skip
    headers = {"Content-Type": "application/cloudevents+json"}
    shown = stored(server, server.post(json.dumps(event).encode(), source="ce", headers=headers))
    assert shown["event"]["meta"] == {
        "traceparent": event["traceparent"],
        "occurred_at": "2026-12-05T08:00:00Z",  # the attribute, not a hostile extension
        "subject": "web",
        "sender": "/ci",
    }


def test_artifactory_says_which_platform_and_subscription(server: Served):
    body = fixture("artifactory/artifact.deployed.json")
    body["jpd_origin"] = "https://acme.jfrog.io"
    shown = stored(server, server.post(json.dumps(body).encode()))
    assert shown["event"]["meta"] == {
        "origin": "https://acme.jfrog.io",
        "subscription": "jfddev-agent",
        "sender": body["source"],
    }
    assert SECRET not in json.dumps(shown)


def test_generic_and_standard_webhooks_have_meta_too():
    from hookwise.builtin import generic, standard_webhooks

    options = generic.GenericOptions.model_validate({"allow_unauthenticated": True})
    [item] = generic.normalize(Delivery({}, b'{"type": "x"}'), options)
    assert isinstance(item, Incoming) and item.meta == {}
    sw = standard_webhooks.StandardWebhooksOptions.model_validate({"allow_unauthenticated": True})
    body = b'{"type": "invoice.paid", "timestamp": "2026-12-05T08:00:00Z", "data": {}}'
    [item] = standard_webhooks.normalize(Delivery({}, body), sw)
    assert item.meta == {"occurred_at": "2026-12-05T08:00:00Z"}
