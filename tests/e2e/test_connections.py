"""Slow and numerous senders against a real `hookwise serve`: deadlines, 408s, a cap."""

from __future__ import annotations

import socket
import time
from urllib.parse import urlsplit

import httpx
import pytest

from tests.conftest import SECRET, Hookwise, wait_until

pytestmark = pytest.mark.slow
LIMITS = """\
server:
  header_timeout: 1s
  body_timeout: 1s
  max_connections: 40
"""
RULES = "rules: []\n"


@pytest.fixture
def server(hookwise_factory) -> Hookwise:
    return hookwise_factory(RULES, extra=LIMITS).start()


def connect(server: Hookwise) -> socket.socket:
    parts = urlsplit(server.url)
    sock = socket.create_connection((parts.hostname, parts.port), timeout=5)
    return sock


def read_all(sock: socket.socket, timeout: float = 5) -> bytes:
    """Everything until the server closes the connection ("RESET" when it resets it)."""
    sock.settimeout(timeout)
    chunks = []
    try:
        while chunk := sock.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:  # closed with our bytes unread: the kernel sends a reset
        return b"RESET"
    return b"".join(chunks)


def trickle(sock: socket.socket, data: bytes, every: float, until: float) -> float:
    """Send a byte at a time until the server stops taking them; when that happened."""
    started = time.monotonic()
    for byte in data:
        if time.monotonic() - started > until:
            break
        try:
            sock.send(bytes([byte]))
        except OSError:
            break
        time.sleep(every)
    return time.monotonic() - started


def test_headers_trickled_byte_by_byte_get_a_408_and_the_connection_closed(server: Hookwise):
    sock = connect(server)
    started = time.monotonic()
    request = b"POST /hooks/artifactory HTTP/1.1\r\nHost: x\r\nX-Slow: " + b"a" * 100
    trickle(sock, request, every=0.2, until=2.5)
    answer = read_all(sock)
    elapsed = time.monotonic() - started
    assert answer.startswith(b"HTTP/1.1 408 Request Timeout\r\n"), answer
    assert b"the request headers did not arrive within 1s" in answer
    assert 0.9 < elapsed < 3.5
    sock.close()


def test_a_connection_that_sends_nothing_is_closed(server: Hookwise):
    sock = connect(server)
    started = time.monotonic()
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408")
    assert 0.9 < time.monotonic() - started < 3
    sock.close()


def test_a_body_trickled_byte_by_byte_gets_a_408_and_nothing_is_stored(server: Hookwise):
    sock = connect(server)
    head = (
        f"POST /hooks/artifactory HTTP/1.1\r\nHost: x\r\nX-JFrog-Event-Auth: {SECRET}\r\n"
        "Content-Type: application/json\r\nContent-Length: 200\r\n\r\n"
    ).encode()
    sock.sendall(head)
    started = time.monotonic()
    trickle(sock, b'{"domain": "docker", "event_type": "pushed", "data": {}}' + b" " * 143, 0.2, 3)
    answer = read_all(sock)
    assert answer.startswith(b"HTTP/1.1 408"), answer
    assert b"the request body did not arrive within 1s" in answer
    assert time.monotonic() - started < 4
    sock.close()
    assert server.stored("artifactory") == []


def test_hundreds_of_slow_connections_are_all_let_go(server: Hookwise):
    sockets = []
    for _ in range(200):
        try:
            sock = connect(server)
            sock.send(b"POST /hooks/artifactory HTTP/1.1\r\n")
            sockets.append(sock)
        except OSError:
            pass
    started = time.monotonic()
    answers = [read_all(sock) for sock in sockets]
    assert time.monotonic() - started < 5
    refused = [a for a in answers if a.startswith(b"HTTP/1.1 503")]
    reset = [a for a in answers if a == b"RESET"]  # refused before our bytes were read
    timed_out = [a for a in answers if a.startswith(b"HTTP/1.1 408")]
    assert 0 < len(timed_out) <= 40  # server.max_connections
    assert len(refused) + len(reset) + len(timed_out) == len(sockets)
    assert refused and b"too many open connections" in refused[0]
    for sock in sockets:
        sock.close()
    # Everyone let go: the server answers again.
    assert wait_until(lambda: server.get("/healthz").status_code == 200, timeout=5)


def test_kept_alive_connections_still_serve_request_after_request(server: Hookwise):
    body = b'{"domain": "docker", "event_type": "pushed", "data": {}}'
    with httpx.Client(base_url=server.url, timeout=5) as client:
        for n in range(5):
            response = client.post(
                "/hooks/artifactory",
                content=body + b" " * n,
                headers={"X-JFrog-Event-Auth": SECRET},
            )
            assert response.status_code == 202
            time.sleep(0.3)  # idle between requests, within the keep-alive timeout
    assert len(server.stored("artifactory")) == 5


def test_a_sender_that_never_reads_its_answers_is_dropped(server: Hookwise):
    """Pipelined requests whose 404s echo a long path, never read: the server's buffers
    fill, and the connection must not be held past the deadline."""
    parts = urlsplit(server.url)
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 4096)
    sock.connect((parts.hostname, parts.port))
    request = b"GET /" + b"a" * 15000 + b" HTTP/1.1\r\nHost: x\r\n\r\n"
    sock.settimeout(0.5)
    started = time.monotonic()
    sent = 0
    while time.monotonic() - started < 10:
        try:
            sock.sendall(request)
            sent += 1
        except (TimeoutError, OSError):
            break  # the server stopped reading, or dropped us
    assert sent > 10
    wait_until(lambda: "did not read its answer for 1s" in "\n".join(server.log), timeout=10)
    assert time.monotonic() - started < 15
    sock.close()
    assert server.get("/healthz").status_code == 200
