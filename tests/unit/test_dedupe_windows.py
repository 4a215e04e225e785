"""Deduplication windows: an id is a repeat for `dedupe_window`, an identical body only for
`body_dedupe_window`, so re-sending an old Artifactory promotion (a rollback) runs again.
In-process through the engine, with the harness's clock."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable

import pytest

from hookwise.sources import Delivery
from tests.conftest import SECRET
from tests.inprocess import Harness

pytestmark = pytest.mark.anyio
Make = Callable[..., Awaitable[Harness]]
RULES = """
rules:
  - name: deploy
    when: {domain: docker}
    actions: [{uses: log, with: {message: "deploy {{ data.tag }}"}}]
"""
PROMOTION = json.dumps(
    {"domain": "docker", "event_type": "promoted",
     "data": {"repo_key": "docker-local", "image_name": "api", "tag": "1.0",
              "path": "api/1.0/manifest.json", "name": "manifest.json", "sha256": "d" * 64,
              "size": 1}}
).encode()  # fmt: skip
CLOUDEVENTS = """\
  ce:
    kind: cloudevents
    allow_unauthenticated: true
"""


async def delivered(harness: Harness, source: str, body: bytes, **headers: str) -> tuple[str, bool]:
    [result] = await harness.service.receive(source, Delivery(headers, body))
    return result.event_id, result.duplicate


async def test_the_same_body_is_a_repeat_for_minutes_and_a_rollback_later(harness_for: Make):
    harness = await harness_for(RULES)
    auth = {"x-jfrog-event-auth": SECRET}
    first, _ = await delivered(harness, "artifactory", PROMOTION, **auth)
    harness.advance(9 * 60)
    assert await delivered(harness, "artifactory", PROMOTION, **auth) == (first, True)
    harness.advance(2 * 60)  # 11 minutes after the first: a person resent it
    rollback, duplicate = await delivered(harness, "artifactory", PROMOTION, **auth)
    assert (duplicate, rollback != first) == (False, True)
    assert len(await harness.runs(rollback)) == 1


async def test_an_id_stays_a_repeat_for_the_long_window(harness_for: Make):
    harness = await harness_for(RULES, CLOUDEVENTS)
    headers = {"content-type": "application/cloudevents+json"}
    event = {"specversion": "1.0", "id": "evt-1", "source": "/registry",
             "type": "com.example.docker.pushed", "data": {"tag": "1"}}  # fmt: skip
    body = json.dumps(event).encode()
    first, _ = await delivered(harness, "ce", body, **headers)
    harness.advance(71 * 3600)
    assert await delivered(harness, "ce", body, **headers) == (first, True)


async def test_a_source_can_set_its_own_body_window(harness_for: Make):
    harness = await harness_for(RULES, "    body_dedupe_window: 1m\n")  # under artifactory
    auth = {"x-jfrog-event-auth": SECRET}
    assert (await delivered(harness, "artifactory", PROMOTION, **auth))[1] is False
    harness.advance(61)
    assert (await delivered(harness, "artifactory", PROMOTION, **auth))[1] is False
