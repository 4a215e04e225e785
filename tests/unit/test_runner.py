"""`hookwise.runner`: one run executed in-process, action by action, with its retries.

A real SQLite store and the harness's clock: a run that is retrying becomes due when the
test moves the clock, so backoffs and Retry-After are checked to the second.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from collections.abc import Awaitable, Callable
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
from pydantic import BaseModel

from hookwise import retry, runner
from hookwise.errors import StoreError
from hookwise.plugin import ActionContext, ActionSpec, SkipRun, hookimpl
from tests.conftest import Reply, Sink
from tests.inprocess import START, Harness

pytestmark = pytest.mark.anyio
Make = Callable[..., Awaitable[Harness]]


# -- actions of this test module, installed through `plugins_dir` ----------------------------


class Note(BaseModel):
    note: str = ""


CALLS: list[dict[str, Any]] = []
RELEASE: dict[str, asyncio.Event] = {}


def _seen(params: Note, context: ActionContext) -> None:
    CALLS.append(
        {"note": params.note, "attempt": context.attempt, "resumed": context.resumed,
         "key": context.idempotency_key}
    )  # fmt: skip


def opaque(params: Note, context: ActionContext) -> dict[str, Any]:
    _seen(params, context)
    return {"tags": {"a", "b"}}  # a set: not JSON


def not_a_number(params: Note, context: ActionContext) -> dict[str, Any]:
    _seen(params, context)
    return {"coverage": float("nan")}  # json.dumps writes NaN, which JSON does not have


def flaky(params: Note, context: ActionContext) -> dict[str, Any]:
    _seen(params, context)
    if context.attempt == 1:
        raise ValueError(f"connection pool exhausted for {params.note}")
    return {"note": params.note}


def older(params: Note, context: ActionContext) -> dict[str, Any]:
    _seen(params, context)
    raise SkipRun(f"web: {params.note} is not newer than running 1.5.2")


async def slow(params: Note, context: ActionContext) -> dict[str, Any]:
    _seen(params, context)
    release = RELEASE.setdefault("slow", asyncio.Event())
    await release.wait()
    return {"note": params.note}


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec("testing.opaque", Note, opaque),
        ActionSpec("testing.nan", Note, not_a_number),
        ActionSpec("testing.flaky", Note, flaky),
        ActionSpec("testing.slow", Note, slow),
        ActionSpec("testing.older", Note, older),
    ]


PLUGIN = f"from {__name__} import hookwise_actions  # noqa: F401\n"
WITH_PLUGINS = "plugins_dir: plugins/\n"


@pytest.fixture
def testing_actions(tmp_path: Path) -> str:
    """The config line that installs this module's actions; call records start empty."""
    (tmp_path / "plugins").mkdir()
    (tmp_path / "plugins" / "testing_actions.py").write_text(PLUGIN)
    CALLS.clear()
    RELEASE.clear()
    return WITH_PLUGINS


@pytest.fixture
def no_jitter(monkeypatch: pytest.MonkeyPatch) -> None:
    """Backoff takes the top of its jitter range, so delays are exact."""
    monkeypatch.setattr(retry, "random", SimpleNamespace(uniform=lambda low, high: high))


# -- helpers -------------------------------------------------------------------------------


def rules(text: str, sink: Sink | None = None) -> str:
    return text.replace("SINK", sink.url) if sink else text


async def one_run(harness: Harness, event_id: str) -> dict[str, Any]:
    [run] = await harness.runs(event_id)
    return run


def history(run: dict[str, Any]) -> list[tuple[str, int, str]]:
    return [(h["action"], h["attempt"], h["status"]) for h in run["history"]]


async def due_at(harness: Harness, run_id: str) -> float:
    record = await harness.store.get_run(run_id)
    assert record is not None
    return record.next_attempt_at


# -- steps and outputs ------------------------------------------------------------------------

CHAIN = """
rules:
  - name: release
    when: {source: artifactory}
    actions:
      - id: build
        uses: http.post
        with: {url: "SINK/build", json: {tag: "{{ data.tag }}"}}
      - uses: http.post
        with:
          url: "SINK/deploy"
          json: {build: "{{ steps.build.output.body.number }}", tag: "{{ data.tag }}"}
        retry: {attempts: 2, backoff: 5s}
      - uses: log
        with: {message: "deployed build {{ steps['http.post#2'].output.body.id }}"}
"""


async def test_later_actions_see_earlier_outputs_as_steps_by_id_or_position(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(rules(CHAIN, sink))
    sink.script(Reply(body={"number": 42}), Reply(body={"id": "dep-7"}))
    event = await harness.emit("docker", "promoted", {"tag": "1.4"})
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert [(r.path, r.body) for r in sink.received] == [
        ("/build", {"tag": "1.4"}),
        ("/deploy", {"build": 42, "tag": "1.4"}),  # a single expression keeps its type
    ]
    assert list(run["output"]) == ["build", "http.post#2", "log#3"]
    assert run["output"]["build"]["body"] == {"number": 42}
    assert run["output"]["log#3"] == {"message": "deployed build dep-7"}
    assert history(run) == [("build", 1, "succeeded"), ("http.post#2", 1, "succeeded"),
                            ("log#3", 1, "succeeded")]  # fmt: skip
    assert run["attempts"] == 3


async def test_a_retry_resumes_at_the_failed_action_with_the_earlier_outputs(
    harness_for: Make, sink: Sink, no_jitter: None
):
    harness = await harness_for(rules(CHAIN, sink))
    sink.script(Reply(body={"number": 43}), Reply(status=502), Reply(body={"id": "dep-8"}))
    event = await harness.emit("docker", "promoted", {"tag": "1.5"})
    [run_id] = await harness.drain()
    assert (await one_run(harness, event))["status"] == "retrying"
    assert await due_at(harness, run_id) == START + 5

    harness.advance(5)
    assert await harness.drain() == [run_id]
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert [r.path for r in sink.received] == ["/build", "/deploy", "/deploy"]
    assert sink.received[2].body == {"build": 43, "tag": "1.5"}
    # One idempotency key per action of the run, the same on every attempt.
    keys = [r.headers["idempotency-key"] for r in sink.received]
    assert keys[1] == keys[2] == hashlib.sha256(f"{run_id}:http.post#2".encode()).hexdigest()[:32]
    assert keys[0] != keys[1]
    assert history(run) == [("build", 1, "succeeded"), ("http.post#2", 1, "retry"),
                            ("http.post#2", 2, "succeeded"), ("log#3", 1, "succeeded")]  # fmt: skip
    assert run["output"]["log#3"] == {"message": "deployed build dep-8"}


# -- retries -------------------------------------------------------------------------------

POST = """
rules:
  - name: deploy
    when: {source: artifactory}
    actions:
      - id: notify
        uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.tag }}"}}
        retry: RETRY
      - uses: log
        with: {message: "deployed {{ data.tag }}"}
"""


def posting(sink: Sink, retry_policy: str) -> str:
    return rules(POST, sink).replace("RETRY", retry_policy)


async def test_backoff_doubles_per_attempt_up_to_max_backoff(
    harness_for: Make, sink: Sink, no_jitter: None
):
    harness = await harness_for(posting(sink, "{attempts: 4, backoff: 10s, max_backoff: 25s}"))
    sink.script(Reply(status=503), Reply(status=500), Reply(status=503))
    event = await harness.emit("docker", "pushed", {"tag": "2.0"})
    [run_id] = await harness.drain()

    for number, delay in ((1, 10), (2, 20), (3, 25)):
        run = await one_run(harness, event)
        assert (run["status"], len(sink.received)) == ("retrying", number)
        assert await due_at(harness, run_id) == harness.now + delay
        harness.advance(delay - 0.5)
        assert await harness.drain() == []  # not due yet
        harness.advance(0.5)
        assert await harness.drain() == [run_id]

    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert history(run) == [("notify", 1, "retry"), ("notify", 2, "retry"),
                            ("notify", 3, "retry"), ("notify", 4, "succeeded"),
                            ("log#2", 1, "succeeded")]  # fmt: skip
    assert run["history"][1]["error"] == f'POST {sink.url}/deploy answered 500: {{"ok": true}}'
    assert len(sink.received) == 4


async def test_retry_after_of_a_429_or_503_replaces_the_backoff_within_an_hour(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(posting(sink, "{attempts: 3, backoff: 1m}"))
    sink.script(
        Reply(status=429, body={"error": "slow down"}, headers={"Retry-After": "7"}),
        Reply(status=503, headers={"Retry-After": "86400"}),
    )
    event = await harness.emit("docker", "pushed", {"tag": "2.1"})
    [run_id] = await harness.drain()
    run = await one_run(harness, event)
    assert run["status"] == "retrying"
    assert run["error"] == f'POST {sink.url}/deploy answered 429: {{"error": "slow down"}}'
    assert await due_at(harness, run_id) == START + 7

    harness.advance(7)
    assert await harness.drain() == [run_id]
    assert await due_at(harness, run_id) == START + 7 + 3600  # a day asked, an hour at most
    harness.advance(3600)
    assert await harness.drain() == [run_id]
    assert (await one_run(harness, event))["status"] == "succeeded"
    assert len(sink.received) == 3


async def test_the_last_failed_attempt_makes_the_run_dead_with_the_action_and_reason(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(posting(sink, "{attempts: 2, backoff: 1s}"))
    restarting = {"error": "deploy service restarting"}
    sink.script(Reply(status=503, body=restarting), Reply(status=503, body=restarting))
    event = await harness.emit("docker", "pushed", {"tag": "2.2"})
    [run_id] = await harness.drain()
    harness.advance(1)
    assert await harness.drain() == [run_id]

    run = await one_run(harness, event)
    assert run["status"] == "dead"
    assert run["error"] == (
        f'notify: POST {sink.url}/deploy answered 503: {{"error": "deploy service restarting"}}'
    )
    assert history(run) == [("notify", 1, "retry"), ("notify", 2, "retry")]
    assert run["output"] == {}  # the log action never ran
    assert len(sink.received) == 2
    harness.advance(3600)
    assert await harness.drain() == []


async def test_a_permanent_failure_is_dead_at_once_despite_attempts_left(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(posting(sink, "{attempts: 5}"))
    sink.script(Reply(status=404, body={"error": "no such job"}))
    event = await harness.emit("docker", "pushed", {"tag": "2.3"})
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "dead"
    assert (
        run["error"] == f'notify: POST {sink.url}/deploy answered 404: {{"error": "no such job"}}'
    )
    assert history(run) == [("notify", 1, "dead")]
    assert run["attempts"] == 1
    assert len(sink.received) == 1


async def test_a_lost_attempt_counts_against_the_attempts(harness_for: Make, sink: Sink):
    harness = await harness_for(posting(sink, "{attempts: 1}"))
    event = await harness.emit("docker", "pushed", {"tag": "2.4"})
    [claimed] = await harness.store.claim("crashed-worker", 1, 60)  # and never executed
    harness.advance(61)
    assert await harness.drain() == [claimed.id]

    run = await one_run(harness, event)
    assert run["status"] == "dead"
    assert run["error"] == "notify: gave up after 1 attempts (lost)"
    assert history(run) == [("notify", 1, "lost")]
    assert sink.received == []


async def test_an_unexpected_exception_is_retried_and_the_next_attempt_knows_it_resumes(
    harness_for: Make, testing_actions: str, no_jitter: None
):
    text = """
rules:
  - name: sync
    when: {source: artifactory}
    actions:
      - uses: testing.flaky
        with: {note: "{{ data.tag }}"}
        retry: {attempts: 2, backoff: 3s}
"""
    harness = await harness_for(text, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "3.0"})
    [run_id] = await harness.drain()
    run = await one_run(harness, event)
    assert run["status"] == "retrying"
    assert run["error"] == "ValueError: connection pool exhausted for 3.0"
    assert await due_at(harness, run_id) == START + 3

    harness.advance(3)
    await harness.drain()
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert run["output"] == {"testing.flaky#1": {"note": "3.0"}}
    assert [(c["attempt"], c["resumed"]) for c in CALLS] == [(1, False), (2, True)]
    assert CALLS[0]["key"] == CALLS[1]["key"]


async def test_an_attempt_over_its_timeout_is_retried_saying_so(
    harness_for: Make, testing_actions: str
):
    text = """
rules:
  - name: sync
    when: {source: artifactory}
    actions:
      - uses: testing.slow
        timeout: 50ms
        retry: {attempts: 2, backoff: 1m}
"""
    harness = await harness_for(text, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "3.1"})
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "retrying"
    assert run["error"] == "timed out after 0.05s"
    assert history(run) == [("testing.slow#1", 1, "retry")]
    assert len(CALLS) == 1


# -- failures that retrying cannot heal --------------------------------------------------------


async def test_an_action_no_longer_installed_makes_the_run_dead(harness_for: Make, sink: Sink):
    harness = await harness_for(posting(sink, "{attempts: 3}"))
    event = await harness.emit("docker", "pushed", {"tag": "4.0"})
    del harness.service.registry.actions["http.post"]  # the plugin went away meanwhile
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "dead"
    assert run["error"] == "notify: action 'http.post' is not installed any more"
    assert history(run) == [("notify", 1, "dead")]
    assert sink.received == []


async def test_output_that_is_not_json_makes_the_run_dead(harness_for: Make, testing_actions: str):
    text = """
rules:
  - name: sync
    when: {source: artifactory}
    actions:
      - uses: testing.opaque
        with: {note: "{{ data.tag }}"}
        retry: {attempts: 3}
      - uses: log
        with: {message: never}
"""
    harness = await harness_for(text, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "4.1"})
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "dead"
    assert run["error"] == (
        "testing.opaque#1: testing.opaque returned output that is not JSON: "
        "Object of type set is not JSON serializable"
    )
    assert history(run) == [("testing.opaque#1", 1, "dead")]
    assert run["output"] == {}
    assert len(CALLS) == 1


async def test_an_action_with_nothing_to_do_ends_the_run_skipped_saying_why(
    harness_for: Make, testing_actions: str
):
    text = """
rules:
  - name: deploy
    when: {source: artifactory}
    actions:
      - id: rollout
        uses: testing.older
        with: {note: "{{ data.tag }}"}
        retry: {attempts: 3}
      - uses: log
        with: {message: never}
"""
    harness = await harness_for(text, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "1.4.0"})
    await harness.drain()

    run = await one_run(harness, event)
    assert run["status"] == "skipped"
    assert run["error"] == "rollout: web: 1.4.0 is not newer than running 1.5.2"
    assert history(run) == [("rollout", 1, "skipped")]
    assert len(CALLS) == 1, "a skipped run is not retried"
    harness.advance(3600)
    assert await harness.drain() == []


async def test_output_with_nan_is_not_json_and_makes_the_run_dead(
    harness_for: Make, testing_actions: str
):
    text = """
rules:
  - name: sync
    when: {source: artifactory}
    actions:
      - uses: testing.nan
"""
    harness = await harness_for(text, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "4.1"})
    await harness.drain()

    run = await one_run(harness, event)
    assert (run["status"], run["output"]) == ("dead", {})
    assert "testing.nan returned output that is not JSON" in run["error"]


MISTAKES = """
rules:
  - name: typo
    when: {source: artifactory}
    actions:
      - id: notify
        uses: http.post
        with: {url: "SINK/deploy", json: {tag: "{{ data.release.tag }}"}}
        retry: {attempts: 3}
  - name: bad-url
    when: {source: artifactory}
    actions:
      - uses: http.post
        with: {url: "{{ data.target }}/deploy"}
        retry: {attempts: 3}
"""


async def test_with_that_cannot_be_rendered_or_validated_is_dead_without_a_request(
    harness_for: Make, sink: Sink
):
    harness = await harness_for(rules(MISTAKES, sink))
    event = await harness.emit("docker", "pushed", {"tag": "4.2", "target": "ftp://files"})
    await harness.drain()

    typo, bad_url = sorted(await harness.runs(event), key=lambda r: r["rule"] != "typo")
    assert typo["status"] == bad_url["status"] == "dead"
    assert typo["error"].startswith(
        "notify: rule typo, notify.json.tag: template '{{ data.release.tag }}' failed: "
        "'dict object' has no attribute 'release'"
    )
    assert bad_url["error"].startswith("http.post#1: parameters invalid after rendering: url: ")
    assert "url must start with http:// or https://, got 'ftp://files/deploy'" in bad_url["error"]
    assert history(typo) == [("notify", 1, "dead")]
    assert history(bad_url) == [("http.post#1", 1, "dead")]
    assert sink.received == []


# -- secrets ---------------------------------------------------------------------------------

SECRET_RULES = """
rules:
  - name: deploy
    when: {source: artifactory}
    actions:
      - id: notify
        uses: http.post
        with:
          url: "SINK/deploy?pin=${DEPLOY_PIN}"
          headers: {Authorization: "Bearer ${DEPLOY_TOKEN}"}
          json: {tag: "{{ data.tag }}"}
        retry: {attempts: 2, backoff: 1s}
"""
TOKEN_VALUE = "dpl-7c1e9b5a42f0"
PIN_VALUE = "Q9z"  # too short to mask everywhere, still masked in this run's records


async def test_secret_values_are_masked_in_the_attempts_output_error_and_log(
    harness_for: Make, sink: Sink, monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setenv("DEPLOY_TOKEN", TOKEN_VALUE)
    monkeypatch.setenv("DEPLOY_PIN", PIN_VALUE)
    harness = await harness_for(rules(SECRET_RULES, sink))
    sink.script(Reply(status=503, echo=True), Reply(echo=True))
    event = await harness.emit("docker", "pushed", {"tag": "5.0"})
    [run_id] = await harness.drain()
    harness.advance(1)
    await harness.drain()

    # The downstream got the real values...
    assert [r.path for r in sink.received] == [f"/deploy?pin={PIN_VALUE}"] * 2
    assert sink.received[1].headers["authorization"] == f"Bearer {TOKEN_VALUE}"
    # ...and nothing hookwise recorded shows them, though the downstream echoed them.
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    failed, succeeded = run["history"]
    assert failed["error"].startswith(f"POST {sink.url}/deploy?pin=*** answered 503: ")
    echoed = succeeded["output"]["body"]
    assert echoed["path"] == "/deploy?pin=***"
    assert echoed["headers"]["authorization"] == "Bearer ***"
    assert run["output"]["notify"]["body"] == echoed
    assert run["log"][-1]["message"] == f"POST {sink.url}/deploy?pin=*** -> 200"
    stored = json.dumps(await harness.runs(event))
    assert TOKEN_VALUE not in stored and f"pin={PIN_VALUE}" not in stored
    assert run_id in stored


# -- shutdown and store outages --------------------------------------------------------------

SLOW = """
rules:
  - name: sync
    when: {source: artifactory}
    actions:
      - uses: log
        with: {message: "before {{ data.tag }}"}
      - id: upload
        uses: testing.slow
        with: {note: "{{ data.tag }}"}
        retry: {attempts: 2}
"""


async def test_an_attempt_interrupted_by_shutdown_is_recorded_and_the_run_due_again(
    harness_for: Make, testing_actions: str
):
    harness = await harness_for(SLOW, testing_actions)
    event = await harness.emit("docker", "pushed", {"tag": "6.0"})
    [claimed] = await harness.store.claim("worker", 1, 60)
    execution = asyncio.create_task(harness.runner.execute(claimed))
    for _ in range(200):
        if CALLS:
            break
        await asyncio.sleep(0.005)
    assert [c["attempt"] for c in CALLS] == [1]
    execution.cancel()
    with pytest.raises(asyncio.CancelledError):
        await execution

    run = await one_run(harness, event)
    assert run["status"] == "retrying"
    assert run["error"] == runner.INTERRUPTED
    assert history(run) == [("log#1", 1, "succeeded"), ("upload", 1, "interrupted")]
    assert run["history"][1]["error"] == "hookwise stopped during this attempt; it will be retried"
    assert run["output"] == {"log#1": {"message": "before 6.0"}}

    RELEASE["slow"].set()
    assert await harness.drain() == [claimed.id]  # due at once, not after a backoff
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    # The interrupted attempt did not use up the retry; the action is told it may repeat.
    assert [(c["attempt"], c["resumed"]) for c in CALLS] == [(1, False), (1, True)]
    assert history(run)[1:] == [("upload", 1, "interrupted"), ("upload", 1, "succeeded")]
    assert run["output"]["upload"] == {"note": "6.0"}


@pytest.fixture
def instant_sleep(monkeypatch: pytest.MonkeyPatch) -> list[float]:
    """The runner's waits for the store, recorded instead of slept."""
    slept: list[float] = []
    real = asyncio.sleep

    async def sleep(delay: float, *args: Any) -> Any:
        slept.append(delay)
        return await real(0, *args)

    monkeypatch.setattr(runner.asyncio, "sleep", sleep)
    return slept


def failing_record(harness: Harness, failures: int) -> list[str]:
    """The store refuses the next `failures` writes of progress; the calls are counted."""
    calls: list[str] = []
    real = harness.store.record

    async def record(*args: Any) -> bool:
        calls.append("record")
        if len(calls) <= failures:
            raise StoreError("database is locked")
        return await real(*args)

    harness.store.record = record  # type: ignore[method-assign]
    return calls


async def test_a_brief_store_outage_while_recording_does_not_lose_the_outcome(
    harness_for: Make, sink: Sink, instant_sleep: list[float]
):
    harness = await harness_for(posting(sink, "{attempts: 3}"))
    event = await harness.emit("docker", "pushed", {"tag": "7.0"})
    [claimed] = await harness.store.claim("worker", 1, 60)
    calls = failing_record(harness, failures=3)
    await harness.runner.execute(claimed)

    assert instant_sleep == [0.25, 0.5, 1.0]
    assert len(calls) == 5  # 3 refused, then the attempt of notify, then log's
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert history(run) == [("notify", 1, "succeeded"), ("log#2", 1, "succeeded")]
    assert len(sink.received) == 1  # the action was not repeated


async def test_a_store_outage_beyond_record_patience_leaves_the_run_to_its_lease(
    harness_for: Make, sink: Sink, instant_sleep: list[float], monkeypatch: pytest.MonkeyPatch
):
    monkeypatch.setattr(runner, "RECORD_PATIENCE", 3.0)
    harness = await harness_for(posting(sink, "{attempts: 3}"))
    event = await harness.emit("docker", "pushed", {"tag": "7.1"})
    [claimed] = await harness.store.claim("worker", 1, 60)
    real = harness.store.record
    failing_record(harness, failures=1000)
    with pytest.raises(StoreError, match="database is locked"):
        await harness.runner.execute(claimed)
    assert instant_sleep == [0.25, 0.5, 1.0, 2.0]  # 3.75s waited: more than the patience

    harness.store.record = real  # type: ignore[method-assign]
    assert (await one_run(harness, event))["status"] == "running"
    assert await harness.drain() == []  # its lease still holds
    harness.advance(61)
    assert await harness.drain() == [claimed.id]
    run = await one_run(harness, event)
    assert run["status"] == "succeeded"
    assert history(run) == [("notify", 1, "lost"), ("notify", 2, "succeeded"),
                            ("log#2", 1, "succeeded")]  # fmt: skip
    # At least once: the downstream saw it twice, with one idempotency key to deduplicate.
    assert len(sink.received) == 2
    assert len({r.headers["idempotency-key"] for r in sink.received}) == 1
