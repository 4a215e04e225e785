"""Run operations through the API and the CLI alike: listing runs with filters and pages,
retrying from the failed step or from the start, bulk retry, ids by prefix, roles, and
one status vocabulary. In-process (TestClient, CliRunner) over a real SQLite store.
"""

from __future__ import annotations

import contextlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from tests.cli import invoke
from tests.conftest import SQLITE, Reply, Sink
from tests.postgres import fresh_database
from tests.served import Served
from tests.tokens import ACCESS, OPERATOR, VIEWER, bearer

RULES = """
rules:
  - name: deploy
    when: {source: artifactory, domain: docker}
    concurrency: {key: "{{ data.image_name }}", limit: 5}
    actions:
      - id: build
        uses: http.post
        with: {url: "SINK/build", json: {tag: "{{ data.tag }}"}}
        retry: {attempts: 1}
      - id: ship
        uses: http.post
        with: {url: "SINK/ship", json: {tag: "{{ data.tag }}"}}
        retry: {attempts: 1}
"""


def pushed(tag: str, name: str = "api") -> bytes:
    data = {"repo_key": "docker-local", "image_name": name, "tag": tag,
            "path": f"{name}/{tag}/manifest.json", "name": "manifest.json",
            "sha256": "b" * 64, "size": 1}  # fmt: skip
    return json.dumps({"domain": "docker", "event_type": "pushed", "data": data}).encode()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.slow)])
def served(
    request: pytest.FixtureRequest, served_factory: Callable[..., Served], sink: Sink
) -> Iterator[Served]:
    """The service on each store: the operations are the store's queries."""
    with contextlib.ExitStack() as stack:
        store = SQLITE if request.param == "sqlite" else stack.enter_context(fresh_database())
        served = served_factory(RULES.replace("SINK", sink.url), extra=ACCESS, store=store)
        served.start().http.headers.update(bearer(VIEWER))
        yield served
        served.stop()


def dies_at_ship(served: Served, sink: Sink, tag: str, name: str = "api") -> str:
    """A run whose first action succeeds and second dies; its id."""
    sink.script(Reply(200, {"number": 7}), Reply(500, {"error": "registry down"}))
    event_id = served.post(pushed(tag, name)).json()["event_id"]
    [run] = served.wait_for_runs(event_id, {"dead"})
    return str(run["id"])


def run_of(served: Served, run_id: str) -> dict:
    return served.get(f"/api/runs/{run_id}").json()["run"]


def settled(served: Served, run_id: str) -> dict:
    from tests.conftest import wait_until

    return wait_until(
        lambda: (run := run_of(served, run_id))["status"] in ("succeeded", "dead") and run
    )


def test_runs_are_listed_by_filter_newest_first_a_page_at_a_time(served: Served, sink: Sink):
    dead = [dies_at_ship(served, sink, f"1.{n}") for n in range(3)]
    other = dies_at_ship(served, sink, "9.0", name="web")
    page = served.get("/api/runs", params={"status": "dead", "key": "api", "limit": 2}).json()
    assert [r["id"] for r in page["runs"]] == [dead[2], dead[1]]
    assert page["runs"][0]["error"].endswith('answered 500: {"error": "registry down"}')
    assert page["runs"][0]["action"] == "ship"
    rest = served.get(
        "/api/runs", params={"status": "dead", "key": "api", "before": page["next"]}
    ).json()
    assert ([r["id"] for r in rest["runs"]], rest["next"]) == ([dead[0]], None)
    both = served.get("/api/runs", params={"status": "dead,succeeded", "rule": "deploy"})
    assert {r["id"] for r in both.json()["runs"]} == {*dead, other}
    assert served.get("/api/runs", params={"source": "harbor"}).json()["runs"] == []
    assert served.get("/api/runs", params={"since": "2h"}).json()["runs"][0]["id"] == other
    assert served.get("/api/runs", params={"until": "2000-01-01T00:00:00Z"}).json()["runs"] == []


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"status": "failed"}, "status: one or more of pending, running,"),
        ({"limit": "0"}, "limit: a whole number from 1 to 1000, not '0'"),
        ({"since": "yesterday"}, "since: an ISO 8601 time (2026-12-04T08:00:00Z) or a duration"),
        ({"before": "x' OR 1=1"}, "before: the id of the last item of the previous page"),
    ],
)
def test_a_bad_filter_is_refused_naming_the_parameter(
    served: Served, params: dict[str, str], message: str
):
    answer = served.get("/api/runs", params=params)
    assert answer.status_code == 400
    assert answer.json()["reason"] == "bad_request"
    assert answer.json()["error"].startswith(message)


def test_events_and_runs_share_one_status_vocabulary(served: Served, sink: Sink):
    run_id = dies_at_ship(served, sink, "2.0")
    events = served.get("/api/events", params={"status": "dead"}).json()["events"]
    assert [e["status"] for e in events] == ["dead"]
    assert run_of(served, run_id)["status"] == "dead"
    assert "dead" in invoke("events", "--status", "dead", cwd=served.root).stdout


def test_retry_goes_on_from_the_failed_step_or_starts_over(served: Served, sink: Sink):
    run_id = dies_at_ship(served, sink, "3.0")
    assert [r.path for r in sink.received] == ["/build", "/ship"]
    refused = served.http.post(f"/api/runs/{run_id}/retry", json={})
    assert (refused.status_code, refused.json()["reason"]) == (403, "forbidden")

    answer = served.http.post(f"/api/runs/{run_id}/retry", json={}, headers=bearer(OPERATOR))
    assert answer.status_code == 202
    assert answer.json()["message"] == (
        f"run {run_id} retried by olivia; it goes on from where it failed"
    )
    run = settled(served, run_id)
    assert run["status"] == "succeeded"
    assert [r.path for r in sink.received] == ["/build", "/ship", "/ship"]
    assert run["output"]["build"]["body"] == {"number": 7}  # kept from the first try

    second = dies_at_ship(served, sink, "3.1")
    sink.received.clear()
    again = served.http.post(
        f"/api/runs/{second}/retry", json={"from_start": True}, headers=bearer(OPERATOR)
    )
    assert "it goes on from its first action" in again.json()["message"]
    run = settled(served, second)
    assert run["status"] == "succeeded"
    assert [r.path for r in sink.received] == ["/build", "/ship"]
    entry = next(e for e in run["history"] if e["action"] == "retry")
    assert (entry["status"], entry["output"]["by"]) == ("restarted", "olivia")


def test_retrying_a_run_that_did_not_fail_is_a_conflict(served: Served, sink: Sink):
    run_id = dies_at_ship(served, sink, "4.0")
    served.http.post(f"/api/runs/{run_id}/retry", json={}, headers=bearer(OPERATOR))
    settled(served, run_id)
    answer = served.http.post(f"/api/runs/{run_id}/retry", json={}, headers=bearer(OPERATOR))
    assert (answer.status_code, answer.json()["reason"]) == (409, "conflict")
    assert answer.json()["error"] == (
        f"run {run_id} is succeeded, and only dead or retrying runs can be retried; "
        "replay its event instead"
    )
    unknown = served.http.post("/api/runs/01NOSUCHRUN/cancel", json={}, headers=bearer(OPERATOR))
    assert unknown.status_code == 404


def test_bulk_retry_counts_unless_confirmed_then_retries_what_the_filter_picks(
    served: Served, sink: Sink
):
    picked = [dies_at_ship(served, sink, f"5.{n}") for n in range(2)]
    left = dies_at_ship(served, sink, "5.9", name="web")
    counted = served.http.post(
        "/api/runs/retry", json={"filter": {"key": "api"}}, headers=bearer(OPERATOR)
    )
    assert counted.json() == {"matched": 2, "retried": [], "refused": []}
    done = served.http.post(
        "/api/runs/retry",
        json={"filter": {"key": "api"}, "confirm": True},
        headers=bearer(OPERATOR),
    )
    assert done.json()["matched"] == 2
    assert sorted(done.json()["retried"]) == sorted(picked)
    for run_id in picked:
        assert settled(served, run_id)["status"] == "succeeded"
    assert run_of(served, left)["status"] == "dead"
    bad = served.http.post(
        "/api/runs/retry", json={"filter": {"colour": "red"}}, headers=bearer(OPERATOR)
    )
    assert bad.status_code == 400 and bad.json()["error"].startswith("filter.colour:")


def test_the_cli_lists_retries_and_shows_by_prefix(served: Served, sink: Sink):
    first = dies_at_ship(served, sink, "6.0")
    second = dies_at_ship(served, sink, "6.1")
    served.stop()  # the CLI works on the store; the service acts on what it records
    root: Path = served.root
    listed = invoke("runs", "--status", "dead", cwd=root)
    lines = listed.stdout.splitlines()
    assert [line.split()[0] for line in lines] == [second, first]
    assert "deploy  dead  attempts=2  ship: POST" in lines[0]
    shown = invoke("show", second[:-6].lower(), cwd=root)
    assert shown.returncode == 0, shown.stderr
    assert f"run {second}  rule=deploy  dead" in shown.stdout
    ambiguous = invoke("show", second[:4], cwd=root)
    assert ambiguous.returncode == 1 and "is ambiguous" in ambiguous.stderr

    asked = invoke("retry", "--all", "--key", "api", cwd=root, input="n\n")
    assert asked.returncode == 1 and "retry 2 dead runs?" in asked.stdout
    assert json.loads(invoke("runs", "--json", "--status", "dead", cwd=root).stdout)["runs"]
    done = invoke("retry", "--all", "--key", "api", "--yes", "--by", "carol", cwd=root)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "retried 2 of 2 dead runs; a running service acts on them"
    assert invoke("runs", "--status", "dead", cwd=root).stdout.strip() == "no runs"
    pending = invoke("runs", "--status", "pending", "--json", cwd=root).stdout
    assert sorted(r["id"] for r in json.loads(pending)["runs"]) == sorted([first, second])
    usage = invoke("retry", cwd=root)
    assert usage.returncode == 2 and "give a RUN_ID, or --all" in usage.stderr
    bad = invoke("runs", "--since", "soon", cwd=root)
    assert bad.returncode == 2 and "--since" in bad.stderr
