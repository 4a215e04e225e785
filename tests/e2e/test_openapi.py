"""`GET /api/openapi.json` against a real `hookwise serve`: schemathesis sends generated
requests to every operation, as a viewer and as an operator, and checks that nothing
answers 5xx and every answer matches the document (body, status code, content type).
Plain tests check that the document covers every `/api/*` route the app serves.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from typing import Any

import httpx
import pytest
import schemathesis
from hypothesis import HealthCheck, Phase, given, settings
from schemathesis.checks import not_a_server_error
from schemathesis.specs.openapi.checks import (
    content_type_conformance,
    response_schema_conformance,
    status_code_conformance,
)
from starlette.routing import Route

from hookwise.app import create_app
from hookwise.service import build_service
from tests.conftest import Hookwise, Reply, Sink
from tests.tokens import ACCESS, OPERATOR, VIEWER, bearer

RULES = """
rules:
  - name: deploy
    when: {source: artifactory, domain: docker}
    actions:
      - uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.tag }}"}}
        retry: {attempts: 1}
"""
CHECKS = [
    not_a_server_error,
    response_schema_conformance,
    status_code_conformance,
    content_type_conformance,
]


def pushed(tag: str) -> bytes:
    data = {"repo_key": "docker-local", "image_name": "api", "tag": tag,
            "path": f"api/{tag}/manifest.json", "name": "manifest.json", "sha256": "f" * 64,
            "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Hookwise]:
    """A server with history to read: a succeeded run and a dead one."""
    sink = Sink()
    root = tmp_path_factory.mktemp("openapi")
    instance = Hookwise(root, RULES.replace("SINK", sink.url), extra=ACCESS)
    instance.start()
    instance.http.headers.update(bearer(VIEWER))
    ok = instance.post(pushed("1.0")).json()["event_id"]
    instance.wait_for_runs(ok, {"succeeded"})
    sink.script(Reply(500, {"error": "down"}))
    failed = instance.post(pushed("2.0")).json()["event_id"]
    instance.wait_for_runs(failed, {"dead"})
    yield instance
    instance.stop()
    sink.close()


BOUNDED = settings(
    max_examples=15,
    deadline=None,
    derandomize=True,
    database=None,
    phases=[Phase.explicit, Phase.generate],
    suppress_health_check=list(HealthCheck),
)


@pytest.mark.parametrize("token", [VIEWER, OPERATOR], ids=["viewer", "operator"])
def test_every_operation_answers_as_documented(server: Hookwise, token: str) -> None:
    """Bounded, repeatable examples per operation; the first failure names its request."""
    document = server.get("/api/openapi.json").json()
    operations = [
        result.ok() for result in schemathesis.openapi.from_dict(document).get_all_operations()
    ]
    assert len(operations) == sum(len(item) for item in document["paths"].values())
    for operation in operations:

        @given(case=operation.as_strategy())
        @BOUNDED
        def exercised(case: Any) -> None:
            case.call_and_validate(base_url=server.url, headers=bearer(token), checks=CHECKS)

        exercised()


def test_the_document_covers_every_api_route(tmp_path: Any, monkeypatch: pytest.MonkeyPatch):
    from tests.conftest import SECRET, project

    monkeypatch.setenv("TEST_ARTIFACTORY_SECRET", SECRET)
    root = project(tmp_path, extra=ACCESS)
    service = build_service(root / "hookwise.yaml")
    app = create_app(service)
    served = {
        (route.path, method.lower())
        for route in app.routes
        if isinstance(route, Route) and route.path.startswith("/api/")
        for method in route.methods or ()
        if method != "HEAD"
    }
    document = service_document(app)
    described = {(path, method) for path, item in document["paths"].items() for method in item}
    assert served == described
    assert document["openapi"] == "3.1.0"
    assert document["components"]["securitySchemes"]["token"]["scheme"] == "bearer"


def service_document(app: Any) -> dict[str, Any]:
    from starlette.testclient import TestClient

    with TestClient(app, client=("127.0.0.1", 5)) as client:
        answer = client.get("/api/openapi.json", headers=bearer(VIEWER))
        assert answer.status_code == 200
        return dict(answer.json())


def test_without_a_token_the_error_has_the_documented_shape(server: Hookwise):
    answer = httpx.get(f"{server.url}/api/runs")
    assert answer.status_code == 401
    assert answer.json() == {
        "error": "send Authorization: Bearer <token>",
        "reason": "unauthorized",
    }
    document = server.get("/api/openapi.json").json()
    error = document["components"]["schemas"]["ErrorBody"]
    assert set(error["required"]) == {"error", "reason"}
