"""The `audit.append` plugin's tests, written against `hookwise.plugin` only."""

import json
from pathlib import Path

import pytest

from hookwise.plugin import (
    ActionContext,
    ActionSpec,
    EgressPolicy,
    Event,
    PermanentFailure,
    load_registry,
)

PLUGINS = Path(__file__).resolve().parent / "plugins"


@pytest.fixture
def spec() -> ActionSpec:
    """The action exactly as hookwise registers it from plugins_dir."""
    return load_registry(PLUGINS).actions["audit.append"]


def context(attempt: int = 1) -> ActionContext:
    event = Event(
        id="01JTESTEVENT0000000000000",
        source="artifactory",
        kind="artifactory",
        domain="docker",
        event_type="promoted",
        delivery_id=None,
        received_at=0.0,
        data={"image_name": "helloworld", "tag": "latest"},
    )
    return ActionContext(
        event=event,
        rule="audit-promotions",
        action_id="audit",
        attempt=attempt,
        idempotency_key="run-1-audit",
        egress=EgressPolicy(),
    )


def test_appends_one_line_per_run(spec: ActionSpec, tmp_path: Path) -> None:
    target = tmp_path / "audit.jsonl"
    record = {"image": "helloworld:latest"}
    params = spec.params.model_validate({"path": str(target), "record": record})

    first = spec.run(params, context(attempt=1))
    again = spec.run(params, context(attempt=2))  # a retry of the same action in the same run

    assert first == {"written": True, "path": str(target)}
    assert again["written"] is False
    lines = [json.loads(line) for line in target.read_text().splitlines()]
    assert lines == [
        {
            "key": "run-1-audit",
            "rule": "audit-promotions",
            "event_id": "01JTESTEVENT0000000000000",
            "image": "helloworld:latest",
        }
    ]


def test_relative_path_is_a_permanent_failure(spec: ActionSpec) -> None:
    params = spec.params.model_validate({"path": "audit.jsonl"})
    with pytest.raises(PermanentFailure):
        spec.run(params, context())


def test_output_is_json(spec: ActionSpec, tmp_path: Path) -> None:
    params = spec.params.model_validate({"path": str(tmp_path / "a.jsonl")})
    json.dumps(spec.run(params, context()))
