"""Parts shared by the fault-injection tests.

Every test drives real `hookwise serve` processes (tests/conftest.py's `Hookwise`) over
loopback HTTP and counts what a local `Sink` receives. The rules built here make each
`http.post` send `{event, step}`, so a sink's requests can be tied back to the event and
action that sent them without knowing how hookwise derives its idempotency keys.
"""

from __future__ import annotations

import json
import re
import socket
import threading
import time
from collections import defaultdict
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import httpx
import pytest
from prometheus_client.parser import text_string_to_metric_families

from tests.conftest import SECRET, Hookwise, Received, Sink
from tests.unit.sources.test_source_standard_webhooks import SECRET as SW_SECRET
from tests.unit.sources.test_source_standard_webhooks import signed

T = TypeVar("T")

# A Standard Webhooks source next to the default `artifactory` one: its deliveries carry
# their own id (`webhook-id`), and a sender's retry is signed afresh with a new timestamp.
SW_SOURCE = """\
  sw:
    kind: standard-webhooks
    secret: ${TEST_SW_SECRET}
"""


def http_post(
    step: str,
    url: str,
    *,
    retry: str = "{attempts: 3, backoff: 0.2s}",
    timeout: str | None = None,
    request_timeout: str = "10s",
) -> str:
    """One `http.post` action (YAML) to `<url>/<step>`, sending the event id and the step."""
    action = (
        f"      - id: {step}\n"
        "        uses: http.post\n"
        "        with:\n"
        f'          url: "{url}/{step}"\n'
        f'          json: {{event: "{{{{ event.id }}}}", step: {step}, data: "{{{{ data }}}}"}}\n'
        f"          timeout: {request_timeout}\n"
        f"        retry: {retry}\n"
    )
    return action + (f"        timeout: {timeout}\n" if timeout else "")


def log_action(message: str) -> str:
    return f'      - uses: log\n        with: {{message: "{message}"}}\n'


def rule(name: str, when: str, *actions: str) -> str:
    return f"  - name: {name}\n    when: {when}\n    actions:\n" + "".join(actions)


def rules(*items: str) -> str:
    return "rules:\n" + "".join(items)


def sw_server(hookwise_factory: Callable[..., Hookwise], text: str, **kwargs: Any) -> Hookwise:
    """A server with the `sw` Standard Webhooks source besides `artifactory`; not started."""
    server = hookwise_factory(text, extra=SW_SOURCE, **kwargs)
    server.env["TEST_SW_SECRET"] = SW_SECRET
    return server


def sw_delivery(tag: str, msg_id: str) -> tuple[bytes, Callable[[], dict[str, str]]]:
    """A Standard Webhooks body, and a function signing it afresh under `msg_id` each time."""
    body = json.dumps({"type": "image.pushed", "data": {"tag": tag}}).encode()
    return body, lambda: signed(body, msg_id=msg_id)


def promotion(tag: str, image: str = "app") -> bytes:
    """An Artifactory Docker promotion; distinct tags are distinct deliveries."""
    data = {"image_name": image, "tag": tag, "repo_key": "docker-local"}
    return json.dumps({"domain": "docker", "event_type": "promoted", "data": data}).encode()


def together(count: int, call: Callable[[int], T]) -> list[T]:
    """`call(0)` … `call(count - 1)`, each in its own thread, released at the same moment."""
    barrier = threading.Barrier(count)

    def run(n: int) -> T:
        barrier.wait(timeout=30)
        return call(n)

    with ThreadPoolExecutor(count) as pool:
        return list(pool.map(run, range(count)))


def runs_of(server: Hookwise, event_ids: list[str]) -> dict[str, list[dict[str, Any]]]:
    return {event_id: server.event(event_id)["runs"] for event_id in event_ids}


def events_by_status(server: Hookwise, **filters: str) -> dict[str, int]:
    """How many stored events have each status, among those matching `filters`."""
    events = server.get("/api/events", params={"limit": 1000, **filters}).json()["events"]
    counts: dict[str, int] = defaultdict(int)
    for event in events:
        counts[event["status"]] += 1
    return dict(counts)


def by_action(received: list[Received]) -> dict[tuple[str, str], list[Received]]:
    """A sink's requests grouped by the (event id, step) that sent them."""
    groups: dict[tuple[str, str], list[Received]] = defaultdict(list)
    for request in received:
        groups[request.body["event"], request.body["step"]].append(request)
    return dict(groups)


def check_idempotency(received: list[Received], runs: dict[str, list[dict[str, Any]]]) -> int:
    """Each action's requests share one key of their own, and none came without an attempt.

    Returns how many requests repeated an earlier one of the same action.
    """
    groups = by_action(received)
    keys = {}
    for (event_id, step), requests in groups.items():
        [key] = {request.headers["idempotency-key"] for request in requests}
        keys[event_id, step] = key
        attempts = [h for run in runs[event_id] for h in run["history"] if h["action"] == step]
        assert len(requests) <= len(attempts), (event_id, step, attempts)
        assert [h["status"] for h in attempts].count("succeeded") == 1, attempts
    assert len(set(keys.values())) == len(keys), "two actions sent the same idempotency key"
    return sum(len(requests) - 1 for requests in groups.values())


def metric(server: Hookwise, name: str, **labels: str) -> float:
    """One sample from /metrics, 0 when absent."""
    for family in text_string_to_metric_families(server.get("/metrics").text):
        for sample in family.samples:
            if sample.name == name and labels.items() <= sample.labels.items():
                return sample.value
    return 0.0


def memory_mib(server: Hookwise, field: str = "VmRSS") -> float:
    """A memory figure of the server process from /proc, e.g. VmRSS, or VmHWM (its peak)."""
    assert server.process is not None
    status = Path(f"/proc/{server.process.pid}/status").read_text()
    match = re.search(rf"^{field}:\s+(\d+) kB$", status, re.MULTILINE)
    assert match, status
    return int(match.group(1)) / 1024


def connect(server: Hookwise) -> socket.socket:
    url = httpx.URL(server.url)
    assert url.port is not None
    return socket.create_connection((url.host, url.port), timeout=10)


def request_head(server: Hookwise, length: int) -> bytes:
    """The head of a signed Artifactory delivery whose body is `length` bytes."""
    url = httpx.URL(server.url)
    return (
        "POST /hooks/artifactory HTTP/1.1\r\n"
        f"Host: {url.host}:{url.port}\r\n"
        f"X-JFrog-Event-Auth: {SECRET}\r\n"
        "Content-Type: application/json\r\n"
        f"Content-Length: {length}\r\n\r\n"
    ).encode()


def percentile(values: list[float], fraction: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, int(fraction * len(ordered)))]


def client(server: Hookwise, connections: int = 100, *, keep_alive: bool = True) -> httpx.Client:
    """One client for many deliveries, from many threads.

    A client per request would cost tens of milliseconds of CPU each (its TLS context).
    Without `keep_alive`, every request opens a connection of its own.
    """
    limits = httpx.Limits(
        max_connections=connections, max_keepalive_connections=None if keep_alive else 0
    )
    return httpx.Client(
        base_url=server.url,
        headers={"X-JFrog-Event-Auth": SECRET, "Content-Type": "application/json"},
        timeout=30,
        limits=limits,
    )


def timed_posts(server: Hookwise, bodies: list[bytes], *, keep_alive: bool) -> list[float]:
    """Accept latency of each body, sent one after the other."""
    latencies = []
    with client(server, 1, keep_alive=keep_alive) as http:
        for body in bodies:
            started = time.perf_counter()
            response = http.post("/hooks/artifactory", content=body)
            latencies.append(time.perf_counter() - started)
            assert response.status_code == 202, response.text
    return latencies


def still_serving(server: Hookwise, sink: Sink, tag: str) -> None:
    """A normal signed delivery gets its 202 and its action reaches the sink once."""
    assert server.process is not None and server.process.poll() is None, "hookwise died"
    before = len(sink.received)
    response = server.post(promotion(tag))
    assert response.status_code == 202, response.text
    assert response.json()["duplicate"] is False
    event_id = response.json()["event_id"]
    [run] = server.wait_for_runs(event_id, {"succeeded", "dead"})
    assert run["status"] == "succeeded", run
    arrived = sink.received[before:]
    assert [(r.body["event"], r.body["data"]["tag"]) for r in arrived] == [(event_id, tag)]


@pytest.fixture
def other_sink() -> Iterator[Sink]:
    """A second downstream, scripted separately from `sink`."""
    server = Sink()
    yield server
    server.close()
