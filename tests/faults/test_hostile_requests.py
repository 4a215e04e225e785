"""Oversized, malformed, truncated and slow requests neither take hookwise down nor bloat it."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import httpx

from tests.conftest import Hookwise, Sink
from tests.faults.conftest import (
    client,
    connect,
    http_post,
    memory_mib,
    metric,
    promotion,
    request_head,
    rule,
    rules,
    still_serving,
    together,
)

MIB = 1024 * 1024
OVERSIZED = 100
BIG = b'{"domain": "docker", "event_type": "promoted", "data": "' + b"x" * (10 * MIB) + b'"}'


def notify_rules(sink: Sink) -> str:
    return rules(rule("notify", "{source: artifactory}", http_post("notify", sink.url)))


def chunks(body: bytes, size: int = 64 * 1024) -> Iterator[bytes]:
    """The body sent chunked, without a Content-Length: only reading it shows its size."""
    for start in range(0, len(body), size):
        yield body[start : start + size]


def test_concurrent_oversized_bodies_are_refused_in_bounded_memory(hookwise_factory, sink: Sink):
    server = hookwise_factory(notify_rules(sink))
    server.start()
    still_serving(server, sink, "warm-up")
    rss_before = memory_mib(server)

    def send(http: httpx.Client, n: int) -> tuple[int, str]:
        # Half declare their size up front, half are only found out while being read.
        content = BIG if n % 2 else chunks(BIG)
        response = http.post("/hooks/artifactory", content=content)
        return response.status_code, response.json()["reason"]

    with client(server, OVERSIZED) as http:
        answers = together(OVERSIZED, lambda n: send(http, n))
    assert answers == [(413, "too_large")] * OVERSIZED
    growth = memory_mib(server, "VmHWM") - rss_before
    assert growth < 100, f"peak RSS grew by {growth:.0f} MiB for {OVERSIZED} refused bodies"
    assert metric(server, "hookwise_events_rejected_total", reason="too_large") == OVERSIZED
    assert len(server.stored("artifactory")) == 1  # the warm-up delivery only
    still_serving(server, sink, "after-oversized")


MALFORMED = [
    b'{"domain": "docker", "event_type": ',  # cut short
    b'{"domain": "docker", "event_type": "promoted", "data": {"size": NaN}}',
    b"[" * 100_000 + b"]" * 100_000,  # nested far beyond any webhook
    b"\xff\xfe not even UTF-8",
    b'{"domain": "docker", "event_type": "promoted", "data": {}}' * 2,  # trailing garbage
    b'"just a string"',
]
SLOW = 40


def test_malformed_truncated_and_slow_requests_leave_the_server_serving(
    hookwise_factory, sink: Sink
):
    server = hookwise_factory(notify_rules(sink))
    server.start()
    for body in MALFORMED:
        response = server.post(body)
        assert (response.status_code, response.json()["reason"]) == (400, "bad_payload"), body[:60]
    assert metric(server, "hookwise_events_rejected_total", reason="bad_payload") == len(MALFORMED)

    # Bodies shorter than their Content-Length, the connection then closed by the sender.
    body = promotion("truncated")
    for _ in range(5):
        hang_up_mid_body(server, body)

    # Slow loris: dozens of connections dribble their heads, or bodies, a byte at a time.
    # A normal delivery sent meanwhile is answered at once and acted on.
    data = request_head(server, len(body)) + body
    sent = [len(data) // 4 if n % 2 else len(data) - len(body) // 2 for n in range(SLOW)]
    sockets = [connect(server) for _ in range(SLOW)]
    for sock, cut in zip(sockets, sent, strict=True):
        sock.sendall(data[:cut])
    stop = threading.Event()
    dribbler = threading.Thread(target=_dribble, args=(sockets, data, sent, stop))
    dribbler.start()
    try:
        time.sleep(0.5)
        started = time.monotonic()
        still_serving(server, sink, "during-slow-loris")
        assert time.monotonic() - started < 5
    finally:
        stop.set()
        dribbler.join(timeout=10)
        for sock in sockets:
            sock.close()
    assert not dribbler.is_alive()
    assert max(sent) < len(data), "a slow request was completed"

    still_serving(server, sink, "afterwards")
    stored = server.stored("artifactory")
    assert sorted(e["data"]["tag"] for e in stored) == ["afterwards", "during-slow-loris"]
    assert len(sink.received) == 2


def _dribble(
    sockets: list[socket.socket], data: bytes, sent: list[int], stop: threading.Event
) -> None:
    """One more byte on every connection every 0.2 s, never finishing a request."""
    while not stop.wait(0.2):
        for n, sock in enumerate(sockets):
            if sent[n] + 1 < len(data):
                try:
                    sock.send(data[sent[n] : sent[n] + 1])
                except OSError:  # the server may hang up on a slow sender: fair enough
                    continue
                sent[n] += 1


def hang_up_mid_body(server: Hookwise, body: bytes) -> None:
    """Announce 1000 bytes more than `body`, send `body`, and close the sending side."""
    with connect(server) as sock:
        sock.sendall(request_head(server, len(body) + 1000) + body)
        sock.shutdown(socket.SHUT_WR)
        sock.settimeout(5)
        answer = sock.recv(65536)
    assert not answer.startswith(b"HTTP/1.1 202"), answer


def test_a_sender_hanging_up_mid_body_is_not_an_internal_error(hookwise_factory, sink: Sink):
    # `internal_error` means hookwise itself failed (docs/api.md): what operators alert on.
    # A sender that goes away mid-body is the sender's problem, like a bad payload.
    server = hookwise_factory(notify_rules(sink))
    server.start()
    hang_up_mid_body(server, promotion("truncated"))
    still_serving(server, sink, "afterwards")
    assert [e["data"]["tag"] for e in server.stored("artifactory")] == ["afterwards"]
    assert metric(server, "hookwise_events_rejected_total", reason="internal_error") == 0
    assert not [line for line in server.log if "ERROR" in line or "Traceback" in line]
