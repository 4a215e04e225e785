"""The SSRF guard: which addresses hookwise may reach, checked where it connects."""

from __future__ import annotations

import asyncio
import contextlib
import gzip
import ipaddress
import socket
import threading
import tracemalloc
import zlib
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx
import pytest
import requests

from hookwise.actions import ActionContext
from hookwise.builtin.http_post import HttpPostParams, http_post
from hookwise.egress import (
    EgressPolicy,
    GuardedSyncTransport,
    GuardedWebClient,
    guard_session,
    guarded_client,
    guarded_sync_client,
)
from hookwise.errors import EgressDenied, PermanentFailure, RedirectRefused, ResponseTooLarge
from hookwise.event import Event
from hookwise.retry import retry_after
from tests.conftest import Reply, Sink


@pytest.mark.parametrize(
    ("address", "allowed"),
    [
        ("8.8.8.8", True),
        ("2606:4700:4700::1111", True),
        ("127.0.0.1", False),
        ("10.1.2.3", False),
        ("172.16.0.9", False),
        ("192.168.1.1", False),
        ("169.254.169.254", False),  # cloud metadata
        ("100.64.0.1", False),  # carrier-grade NAT
        ("0.0.0.0", False),
        ("::1", False),
        ("::ffff:127.0.0.1", False),
        ("fd00:ec2::254", False),  # AWS metadata over IPv6
        ("fe80::1", False),
        ("224.0.0.1", False),
        ("64:ff9b::a9fe:a9fe", False),  # NAT64 to the metadata address
        ("64:ff9b::808:808", True),  # NAT64 to a public address
        ("2002:a9fe:a9fe::1", False),  # 6to4 around 169.254.169.254
        ("::127.0.0.1", False),  # IPv4-compatible
        ("::ffff:0:a00:1", False),  # SIIT to 10.0.0.1
        ("fec0::1", False),  # deprecated site-local
    ],
)
def test_default_policy(address: str, allowed: bool):
    assert EgressPolicy().permits("example.test", ipaddress.ip_address(address)) is allowed


def test_allow_list_by_network_and_by_host():
    policy = EgressPolicy(["10.0.0.0/8", "jenkins.internal", "127.0.0.1"])
    assert policy.permits("x", ipaddress.ip_address("10.200.0.1"))
    assert not policy.permits("x", ipaddress.ip_address("192.168.0.1"))
    assert policy.permits("Jenkins.Internal.", ipaddress.ip_address("192.168.0.1"))
    assert policy.permits("x", ipaddress.ip_address("127.0.0.1"))
    assert not policy.permits("x", ipaddress.ip_address("127.0.0.2"))


@pytest.mark.anyio
async def test_guarded_client_refuses_loopback_by_name_and_address(sink: Sink):
    port = sink.url.rsplit(":", 1)[1]
    async with guarded_client(EgressPolicy(), 5) as client:
        for url in (sink.url, f"http://localhost:{port}", f"http://[::ffff:127.0.0.1]:{port}"):
            with pytest.raises(EgressDenied, match=r"egress\.allow"):
                await client.post(url, json={})
    assert sink.received == []


@pytest.mark.anyio
async def test_guarded_client_reaches_allowed_address(sink: Sink):
    async with guarded_client(EgressPolicy(["127.0.0.1"]), 5) as client:
        response = await client.post(f"{sink.url}/ok", json={"a": 1})
    assert response.status_code == 200
    assert sink.received[0].body == {"a": 1}


def context(allow: list[str]) -> ActionContext:
    event = Event("E1", "artifactory", "artifactory", "docker", "promoted", None, 0.0, {}, {})
    return ActionContext(event, "r", "notify", 1, "k" * 32, EgressPolicy(allow))


@pytest.mark.anyio
async def test_redirects_are_not_followed(sink: Sink):
    sink.script(Reply(302, {}, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    params = HttpPostParams.model_validate({"url": f"{sink.url}/hook", "json": {"x": 1}})
    with pytest.raises(RedirectRefused, match=r"answered 302, a redirect to http://169\.254"):
        await http_post(params, context(["127.0.0.1"]))
    assert len(sink.received) == 1


@pytest.mark.anyio
async def test_refusal_is_a_permanent_failure_naming_the_setting(sink: Sink):
    params = HttpPostParams.model_validate({"url": sink.url, "body": "x"})
    with pytest.raises(EgressDenied, match=r"egress to 127\.0\.0\.1 .* egress\.allow"):
        await http_post(params, context([]))


def test_proxy_environment_is_ignored(monkeypatch: pytest.MonkeyPatch):
    # A proxy would connect on our behalf, past the address check.
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")
    client = guarded_client(EgressPolicy(), 5)
    assert client._mounts == {}
    assert isinstance(client._transport, httpx.AsyncHTTPTransport)


@pytest.mark.parametrize(
    ("header", "seconds"),
    [("7", 7.0), ("0", 0.0), (None, None), ("soon", None), ("Wed, 21 Oct 2015 07:28:00 GMT", 0.0)],
)
def test_retry_after_parsing(header, seconds):
    assert retry_after(header) == seconds


def test_guarded_session_refuses_loopback_for_requests_clients(sink: Sink):
    port = sink.url.rsplit(":", 1)[1]
    session = guard_session(requests.Session(), EgressPolicy())
    for url in (sink.url, f"http://localhost:{port}"):
        with pytest.raises(EgressDenied, match=r"egress\.allow"):
            session.get(url)
    assert sink.received == []


def test_a_session_bound_to_its_origin_sends_credentials_nowhere_else(sink: Sink):
    port = sink.url.rsplit(":", 1)[1]
    session = guard_session(requests.Session(), EgressPolicy(["127.0.0.0/8"]), origin=sink.url)
    session.auth = ("bot", "the-password")
    assert session.post(f"{sink.url}/ok", json={"a": 1}).json() == {"ok": True}
    # Allowed by the policy, but not the configured host: a link in an answer, say.
    for url in (f"http://localhost:{port}/x", f"http://127.0.0.2:{port}/x", "https://127.0.0.1/x"):
        with pytest.raises(EgressDenied, match=r"only talks to http://127\.0\.0\.1"):
            session.post(url, json={})
    assert len(sink.received) == 1
    assert sink.received[0].headers["authorization"].startswith("Basic ")


def test_requests_errors_keep_their_types(sink: Sink):
    session = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]))
    port = sink.url.rsplit(":", 1)[1]
    sink.close()
    with pytest.raises(requests.ConnectionError):
        session.get(f"http://127.0.0.1:{port}/gone")


@pytest.mark.parametrize("kind", ["sync", "async"])
def test_the_address_checked_is_the_address_connected(
    sink: Sink, monkeypatch: pytest.MonkeyPatch, kind: str
):
    """DNS answers an allowed address first and a forbidden one after: only one lookup."""
    port = int(sink.url.rsplit(":", 1)[1])
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    lookups: list[str] = []

    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple]:
        if host != "rebinding.test":
            return real(host, *args, **kwargs)  # the connect step, on a checked address
        address = next(answers)
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    url = f"http://rebinding.test:{port}/ok"
    policy = EgressPolicy(["127.0.0.1"])
    if kind == "sync":
        with guarded_sync_client(policy, 5) as client:
            response = client.post(url, json={})
    else:

        async def post() -> httpx.Response:
            async with guarded_client(policy, 5) as client:
                return await client.post(url, json={})

        response = asyncio.run(post())
    assert response.status_code == 200
    assert lookups == ["127.0.0.1"]
    assert len(sink.received) == 1


class Raw:
    """A loopback server answering every request with fixed bytes and headers."""

    def __init__(self, body: bytes, headers: dict[str, str]) -> None:
        self.cookies: list[str | None] = []
        owner = self

        class Handler(BaseHTTPRequestHandler):
            def _answer(self) -> None:
                self.rfile.read(int(self.headers.get("content-length") or 0))
                owner.cookies.append(self.headers.get("cookie"))
                self.send_response(200)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("content-length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            do_GET = do_POST = _answer

            def log_message(self, format: str, *args: object) -> None:
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True).start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def gzip_of(data: bytes, layers: int = 1) -> bytes:
    for _ in range(layers):
        data = gzip.compress(data, compresslevel=9)
    return data


@pytest.mark.parametrize("layers", [1, 2])
def test_a_compressed_answer_cannot_make_hookwise_hold_more_than_the_limit(layers: int):
    bomb = gzip_of(b"\0" * (512 * 1024 * 1024), layers)  # 512 MiB, in a few hundred kB
    encoding = ", ".join(["gzip"] * layers)
    server = Raw(bomb, {"content-encoding": encoding})
    session = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]))
    tracemalloc.start()
    try:
        with pytest.raises(PermanentFailure) as info:
            session.get(server.url)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        server.close()
    if layers == 1:
        assert isinstance(info.value, ResponseTooLarge)
        assert "longer than 33554432 bytes" in str(info.value)
    else:
        assert "content-encoding 'gzip, gzip'" in str(info.value)
    assert peak < 80 * 1024 * 1024


def test_http_post_reads_only_the_start_of_a_compressed_answer(sink: Sink):
    server = Raw(gzip_of(b"x" * (200 * 1024 * 1024)), {"content-encoding": "gzip"})
    params = HttpPostParams.model_validate({"url": server.url, "json": {}})
    tracemalloc.start()
    try:
        output = asyncio.run(http_post(params, context(["127.0.0.1"])))
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
        server.close()
    assert output["status"] == 200
    assert output["body"] == "x" * (64 * 1024)
    assert peak < 16 * 1024 * 1024


def test_gzip_and_deflate_answers_are_read(sink: Sink):
    for encoding, body in (
        ("gzip", gzip.compress(b'{"ok": 1}')),
        ("deflate", zlib.compress(b'{"ok": 1}')),
    ):
        server = Raw(body, {"content-encoding": encoding, "content-type": "application/json"})
        try:
            session = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]))
            assert session.get(server.url).json() == {"ok": 1}
        finally:
            server.close()


def test_cookies_one_session_was_given_are_not_sent_by_another():
    server = Raw(b"{}", {"set-cookie": "JSESSIONID=admin-session; Path=/"})
    try:
        admin = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]), server.url)
        admin.get(server.url)
        admin.get(server.url)  # the session's own cookie goes back to the server
        other = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]), server.url)
        other.get(server.url)  # a new session, same shared connection pool
    finally:
        server.close()
    assert server.cookies == [None, "JSESSIONID=admin-session", None]


def test_a_location_that_is_not_a_url_is_still_refused_as_a_redirect(sink: Sink):
    sink.script(Reply(302, {}, {"Location": "http://[::1"}))
    session = guard_session(requests.Session(), EgressPolicy(["127.0.0.1"]))
    with pytest.raises(RedirectRefused, match="a Location that is not a URL"):
        session.post(f"{sink.url}/x", json={})


def test_a_client_bound_to_a_non_ascii_host_accepts_its_own_urls():
    policy = EgressPolicy(["bücher.example"])
    client = guarded_sync_client(policy, 1, origin="https://bücher.example/api/")
    request = client.build_request("GET", "https://BÜCHER.example/api/x")
    GuardedSyncTransport(policy, "https://bücher.example/api/").origin.check(request)


def test_slack_file_uploads_go_through_the_guard():
    """files_upload_v2 posts to a URL Slack's answer names: a redirect there is refused."""
    policy = EgressPolicy(["127.0.0.1"])
    client = GuardedWebClient(policy=policy, token="xoxb-upload-test")
    with pytest.raises(EgressDenied, match=r"egress to 169\.254\.169\.254"):
        client._upload_file(url="http://169.254.169.254/latest/meta-data/", data=b"x", timeout=2)


async def _keepalive_server(connections: list[int]) -> asyncio.Server:
    """An HTTP/1.1 server that keeps connections open and counts how many were opened."""

    async def serve(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        connections.append(1)
        try:
            with contextlib.suppress(asyncio.IncompleteReadError, ConnectionError):
                await _answer_each(reader, writer)
        finally:
            writer.close()

    async def _answer_each(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        while head := await reader.readuntil(b"\r\n\r\n"):
            length = next(
                (int(line.split(b":")[1]) for line in head.split(b"\r\n")
                 if line.lower().startswith(b"content-length:")),
                0,
            )  # fmt: skip
            await reader.readexactly(length)
            body = b'{"ok": true}'
            head = (
                f"HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: {len(body)}"
            )
            writer.write(head.encode() + b"\r\n\r\n" + body)
            await writer.drain()

    return await asyncio.start_server(serve, "127.0.0.1", 0)


@pytest.mark.anyio
async def test_http_post_reuses_one_connection_across_runs():
    from hookwise.egress import shared_sessions

    connections: list[int] = []
    server = await _keepalive_server(connections)
    port = server.sockets[0].getsockname()[1]
    params = HttpPostParams.model_validate({"url": f"http://127.0.0.1:{port}/h", "json": {}})
    try:
        outputs = [await http_post(params, context(["127.0.0.1"])) for _ in range(3)]
        assert [output["body"] for output in outputs] == [{"ok": True}] * 3
        assert len(connections) == 1
        # Another policy is another client: what one run may reach says nothing of another's.
        await http_post(params, context(["127.0.0.0/8"]))
        assert len(connections) == 2
        with pytest.raises(EgressDenied):
            await http_post(params, context([]))
    finally:
        await shared_sessions.aclose()
        await asyncio.sleep(0.05)  # the server sees the connections close
        server.close()
        await server.wait_closed()
