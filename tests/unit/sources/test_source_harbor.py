"""The Harbor source: both payload formats, against a real `hookwise serve` process."""

from __future__ import annotations

import json
import uuid
from typing import Any

import httpx
import pytest
from pydantic import ValidationError

from hookwise.builtin.harbor import HarborOptions, event_name, normalize
from hookwise.sources import Delivery
from tests.conftest import FIXTURES, fixture_bytes
from tests.served import Served

AUTH = "Basic aGFyYm9yOndlYmhvb2s="
CLOUDEVENTS = "application/cloudevents+json"
FORMATS = ("default", "cloudevents")
NAMES = sorted(p.name for p in (FIXTURES / "harbor").glob("*.json"))

RULES = """\
rules:
  - name: log-harbor-images
    when:
      source: harbor
      match: {artifact.image: "harbor/*"}
    actions:
      - uses: log
        with: {message: "{{ event.event_type }} {{ artifact.image }}:{{ artifact.tag }}"}
"""

PUSHED_DIGEST = "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4"
DELETED_DIGEST = "sha256:2bb501e6173d9d006e56de5bce2720eb06396803300fe1687b58a7ff32bf4c14"
PUSHED = {
    "registry": "localhost",
    "repository": "harbor/alpine",
    "path": None,
    "name": "alpine",
    "image": "harbor/alpine",
    "tag": None,
    "digest": PUSHED_DIGEST,
    "size": None,
    "url": f"localhost/harbor/alpine@{PUSHED_DIGEST}",
}
DELETED = {
    **PUSHED,
    "tag": "3.8",
    "digest": DELETED_DIGEST,
    "url": "localhost/harbor/alpine:3.8",
}


def alpine(digest: str, *, with_url: bool = True) -> dict[str, Any]:
    """A harbor/alpine artifact known by digest, as scan and quota events describe it."""
    url = f"localhost/harbor/alpine@{digest}" if with_url else None
    return {**PUSHED, "registry": "localhost" if with_url else None, "digest": digest, "url": url}


ARTIFACTS = {
    "artifact.pushed": [PUSHED],
    "artifact.pulled": [PUSHED],
    "artifact.deleted": [DELETED],
    "scan.completed": [alpine(PUSHED_DIGEST)],
    "scan.stopped": [
        alpine("sha256:e802987f152d7826cf929ad4999fb3bb956ce7a30966aeb46c749f9120eaf22c")
    ],
    "scan.failed": [
        alpine("sha256:dabea2944dcc2b86482b4f0b0fb62da80e0673e900c46c0e03b45919881a5d84")
    ],
    "quota.exceeded": [
        alpine(
            "sha256:402d21757a03a114d273bbe372fa4b9eca567e8b6c332fa7ebf982b902207242",
            with_url=False,
        )
    ],
    "quota.warned": [
        alpine(
            "sha256:514ec80ffbe1a2ab1d9a3d5e6082296296a1d8b6870246edf897228e5df2367d",
            with_url=False,
        )
    ],
    "replication.status.changed": [],
    "tag_retention.finished": [],
}


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):
    extra = "  harbor:\n    kind: harbor\n    auth_header: ${HARBOR_AUTH}\n"
    instance = Served(tmp_path_factory.mktemp("harbor"), RULES, extra=extra)
    instance.env["HARBOR_AUTH"] = AUTH
    instance.start()
    yield instance
    instance.stop()


def load(name: str) -> dict[str, Any]:
    return json.loads(fixture_bytes(f"harbor/{name}"))


def fresh_push() -> dict[str, Any]:
    """The Default push example as a new event, by a unique `occur_at`."""
    return {**load("artifact.pushed.default.json"), "occur_at": uuid.uuid4().int % 10**9}


def fresh_cloudevent(name: str = "artifact.pushed.cloudevents.json") -> dict[str, Any]:
    return {**load(name), "id": str(uuid.uuid4())}


def with_tag(payload: dict[str, Any], tag: str, image: str = "harbor/alpine") -> dict[str, Any]:
    data = payload["event_data"]
    resource = {**data["resources"][0], "tag": tag, "resource_url": f"localhost/{image}:{tag}"}
    repository = {**data["repository"], "repo_full_name": image, "name": image.split("/")[-1]}
    return {**payload, "event_data": {**data, "resources": [resource], "repository": repository}}


def send(server: Served, payload: Any, **headers: str) -> httpx.Response:
    body = payload if isinstance(payload, bytes) else json.dumps(payload).encode()
    return server.post(body, source="harbor", headers={"Authorization": AUTH, **headers})


def harbor_events(server: Served) -> list[dict[str, Any]]:
    listed = server.get("/api/events", params={"source": "harbor", "limit": 1000})
    return listed.json()["events"]


@pytest.mark.parametrize("name", NAMES)
def test_every_reference_payload_is_accepted_and_normalized(server: Served, name: str):
    event_key, payload_format, _ = name.rsplit(".", 2)
    payload = load(name)
    content_type = CLOUDEVENTS if payload_format == "cloudevents" else "application/json"
    response = send(server, fixture_bytes(f"harbor/{name}"), **{"Content-Type": content_type})
    assert response.status_code == 202, response.text
    assert response.json()["duplicate"] is False
    event = server.event(response.json()["event_id"])["event"]
    domain, _, event_type = event_key.partition(".")
    assert (event["source"], event["kind"], event["domain"], event["event_type"]) == (
        "harbor",
        "harbor",
        domain,
        event_type,
    )
    if payload_format == "cloudevents":
        assert (event["data"], event["delivery_id"]) == (payload["data"], payload["id"])
    else:
        assert (event["data"], event["delivery_id"]) == (payload["event_data"], None)
    assert event["artifacts"] == ARTIFACTS[event_key]
    assert event["artifact"] == (ARTIFACTS[event_key] or [None])[0]
    assert "authorization" not in event["headers"]


def test_pushed_artifact_has_every_field(server: Served):
    response = send(server, fresh_cloudevent())
    assert server.event(response.json()["event_id"])["event"]["artifact"] == {
        "registry": "localhost",
        "repository": "harbor/alpine",
        "path": None,
        "name": "alpine",
        "image": "harbor/alpine",
        "tag": None,
        "digest": "sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
        "size": None,
        "url": "localhost/harbor/alpine"
        "@sha256:954b378c375d852eb3c63ab88978f640b4348b01c1b3456a024a81536dafbbf4",
    }


OPEN = HarborOptions(allow_unauthenticated=True)


@pytest.mark.parametrize("event_key", sorted(ARTIFACTS))
def test_default_and_cloudevents_of_one_event_normalize_alike(event_key: str):
    default, cloudevent = (
        normalize(Delivery({}, fixture_bytes(f"harbor/{event_key}.{fmt}.json")), OPEN)[0]
        for fmt in FORMATS
    )
    assert (default.domain, default.event_type) == (cloudevent.domain, cloudevent.event_type)
    assert (default.data, default.artifacts) == (cloudevent.data, cloudevent.artifacts)


def test_artifact_glob_rule_fires_for_a_harbor_push(server: Served):
    response = send(server, with_tag(fresh_push(), "1.36", image="harbor/busybox"))
    assert response.status_code == 202
    runs = server.wait_for_runs(response.json()["event_id"], {"succeeded", "dead"})
    assert [(r["rule"], r["status"]) for r in runs] == [("log-harbor-images", "succeeded")]
    assert runs[0]["log"][0]["message"] == "pushed harbor/busybox:1.36"


def test_artifact_glob_rule_ignores_other_projects(server: Served):
    response = send(server, with_tag(fresh_push(), "1.25", image="library/nginx"))
    event = server.event(response.json()["event_id"])
    assert event["event"]["artifact"]["image"] == "library/nginx"
    assert event["runs"] == []


def test_default_redelivery_is_a_duplicate_even_reserialized(server: Served):
    payload = fresh_push()
    first = send(server, payload).json()
    assert first["duplicate"] is False
    again = send(server, payload)
    assert again.status_code == 202
    assert again.json() == {"event_id": first["event_id"], "duplicate": True}
    reordered = json.dumps(payload, indent=4, sort_keys=True).encode()
    assert send(server, reordered).json() == {"event_id": first["event_id"], "duplicate": True}


def test_default_pushes_differing_only_in_tag_are_two_events(server: Served):
    base = fresh_push()
    first = send(server, with_tag(base, "3.18")).json()
    second = send(server, with_tag(base, "3.19")).json()
    assert (first["duplicate"], second["duplicate"]) == (False, False)
    assert first["event_id"] != second["event_id"]
    tags = [server.event(e["event_id"])["event"]["artifact"]["tag"] for e in (first, second)]
    assert tags == ["3.18", "3.19"]


def test_cloudevents_redelivery_with_the_same_id_is_a_duplicate(server: Served):
    payload = fresh_cloudevent("artifact.deleted.cloudevents.json")
    first = send(server, payload, **{"Content-Type": CLOUDEVENTS}).json()
    assert first["duplicate"] is False
    assert server.event(first["event_id"])["event"]["delivery_id"] == payload["id"]
    again = send(server, payload, **{"Content-Type": CLOUDEVENTS})
    assert again.json() == {"event_id": first["event_id"], "duplicate": True}


def test_cloudevents_is_recognised_whatever_the_content_type(server: Served):
    response = send(server, fresh_cloudevent(), **{"Content-Type": "text/plain"})
    assert response.status_code == 202
    event = server.event(response.json()["event_id"])["event"]
    assert (event["domain"], event["event_type"]) == ("artifact", "pushed")


@pytest.mark.parametrize(
    ("headers", "message"),
    [
        ({"Authorization": AUTH + "x"}, "Authorization header does not match"),
        ({"Authorization": "Basic wrong"}, "Authorization header does not match"),
        ({}, "missing Authorization header"),
    ],
)
def test_bad_or_missing_auth_is_401_and_nothing_is_stored(
    server: Served, headers: dict[str, str], message: str
):
    marker = f"unauth/{uuid.uuid4().hex}"
    response = server.post(
        json.dumps(with_tag(fresh_push(), "1", image=marker)).encode(),
        source="harbor",
        headers=headers,
    )
    assert response.status_code == 401
    assert response.json()["reason"] == "unauthorized"
    assert message in response.json()["error"]
    images = [(e["artifact"] or {}).get("image") for e in harbor_events(server)]
    assert marker not in images


@pytest.mark.parametrize(
    ("body", "message"),
    [
        (b"{not json", "not valid JSON"),
        (b"[1, 2]", "must be a JSON object"),
        (b"42", "must be a JSON object"),
        (b'"PUSH_ARTIFACT"', "must be a JSON object"),
    ],
)
def test_unreadable_body_is_400(server: Served, body: bytes, message: str):
    response = send(server, body)
    assert response.status_code == 400
    assert response.json()["reason"] == "bad_payload"
    assert message in response.json()["error"]


def without(payload: dict[str, Any], key: str) -> dict[str, Any]:
    return {k: v for k, v in payload.items() if k != key}


@pytest.mark.parametrize(
    ("payload", "missing"),
    [
        (without(load("artifact.pushed.default.json"), "event_data"), "'event_data'"),
        (without(load("artifact.pushed.default.json"), "type"), "'type'"),
        (without(load("artifact.pushed.cloudevents.json"), "type"), "'type'"),
        (without(load("artifact.pushed.cloudevents.json"), "id"), "'id'"),
        (without(load("artifact.pushed.cloudevents.json"), "source"), "'source'"),
        ({**load("artifact.pushed.cloudevents.json"), "specversion": ""}, "'specversion'"),
        (without(load("artifact.pushed.cloudevents.json"), "specversion"), "'specversion'"),
    ],
)
def test_incomplete_event_is_400_naming_what_is_missing(server: Served, payload, missing):
    response = send(server, payload)
    assert response.status_code == 400
    assert response.json()["reason"] == "bad_payload"
    assert missing in response.json()["error"]


@pytest.mark.parametrize(
    ("payload", "naming"),
    [
        ({**fresh_push(), "type": "UPLOAD_CHART"}, ("harbor", "upload_chart")),
        ({**fresh_cloudevent(), "type": "harbor.artifact.labeled"}, ("artifact", "labeled")),
    ],
)
def test_unknown_future_type_passes_through(server: Served, payload, naming):
    response = send(server, payload)
    assert response.status_code == 202, response.text
    event = server.event(response.json()["event_id"])["event"]
    assert (event["domain"], event["event_type"]) == naming
    assert event["artifact"]["digest"] == PUSHED_DIGEST


@pytest.mark.parametrize(
    ("harbor_type", "naming"),
    [
        ("PUSH_ARTIFACT", ("artifact", "pushed")),
        ("PULL_ARTIFACT", ("artifact", "pulled")),
        ("DELETE_ARTIFACT", ("artifact", "deleted")),
        ("SCANNING_COMPLETED", ("scan", "completed")),
        ("SCANNING_STOPPED", ("scan", "stopped")),
        ("SCANNING_FAILED", ("scan", "failed")),
        ("QUOTA_EXCEED", ("quota", "exceeded")),
        ("QUOTA_WARNING", ("quota", "warned")),
        ("REPLICATION", ("replication", "status.changed")),
        ("TAG_RETENTION", ("tag_retention", "finished")),
        ("harbor.artifact.pushed", ("artifact", "pushed")),
        ("harbor.replication.status.changed", ("replication", "status.changed")),
        ("harbor.tag_retention.finished", ("tag_retention", "finished")),
        ("harbor.artifact.labeled", ("artifact", "labeled")),
        ("UPLOAD_CHART", ("harbor", "upload_chart")),
        ("harbor.robot", ("harbor", "robot")),
    ],
)
def test_event_name(harbor_type: str, naming: tuple[str, str]):
    assert event_name(harbor_type) == naming


def test_options_demand_an_auth_header_unless_unauthenticated_is_allowed():
    with pytest.raises(ValidationError, match="no auth_header configured"):
        HarborOptions()
    with pytest.raises(ValidationError, match="auth_header is empty"):
        HarborOptions(auth_header="")
    with pytest.raises(ValidationError, match="extra"):
        HarborOptions(auth_header="x", secret="y")
    assert HarborOptions(allow_unauthenticated=True).auth_header is None


def test_fixtures_cover_both_formats_of_every_event():
    assert sorted(f"{key}.{fmt}.json" for key in ARTIFACTS for fmt in FORMATS) == NAMES
