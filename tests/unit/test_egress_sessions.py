"""The guard on aiohttp sessions (`http.post`'s client): the same refusals as httpx's."""

from __future__ import annotations

import asyncio
import gzip
import socket
from http.server import BaseHTTPRequestHandler

import aiohttp
import pytest

from hookwise.actions import ActionContext
from hookwise.builtin.http_post import HttpPostParams, http_post
from hookwise.egress import EgressPolicy, guarded_session, read_bounded, shared_sessions
from hookwise.errors import EgressDenied, PermanentFailure, RedirectRefused, RetryLater
from hookwise.event import Event
from tests.conftest import Reply, Sink
from tests.standins.loopback import Loopback

pytestmark = pytest.mark.anyio


def port_of(sink: Sink) -> int:
    return int(sink.url.rsplit(":", 1)[1])


async def test_loopback_is_refused_by_name_and_by_every_spelling_of_its_address(sink: Sink):
    port = port_of(sink)
    urls = [sink.url, f"http://localhost:{port}", f"http://[::ffff:127.0.0.1]:{port}"]
    async with guarded_session(EgressPolicy()) as session:
        for url in urls:
            with pytest.raises(EgressDenied, match=r"egress\.allow"):
                await session.post(url, json={})
        # Legacy IPv4 forms (127.1, 2130706433) never reach a socket either.
        for url in (f"http://127.1:{port}", f"http://2130706433:{port}"):
            with pytest.raises((EgressDenied, aiohttp.InvalidURL)):
                await session.post(url, json={})
    assert sink.received == []


async def test_an_allowed_network_or_host_name_is_reached(sink: Sink):
    port = port_of(sink)
    for allow, url in (("127.0.0.0/8", sink.url), ("localhost", f"http://localhost:{port}")):
        async with (
            guarded_session(EgressPolicy([allow])) as session,
            session.post(f"{url}/ok", json={"via": allow}) as response,
        ):
            assert response.status == 200
    assert [request.body for request in sink.received] == [
        {"via": "127.0.0.0/8"},
        {"via": "localhost"},
    ]


async def test_a_name_in_the_list_admits_only_the_addresses_it_resolves_to(sink: Sink):
    port = port_of(sink)
    async with guarded_session(EgressPolicy(["localhost"])) as session:
        async with session.post(f"http://localhost:{port}/a", json={}) as response:
            assert response.status == 200
        with pytest.raises(EgressDenied, match=r"127\.0\.0\.2"):
            await session.post(f"http://127.0.0.2:{port}/b", json={})
    assert [request.path for request in sink.received] == ["/a"]


async def test_the_address_checked_is_the_address_connected(
    sink: Sink, monkeypatch: pytest.MonkeyPatch
):
    """DNS answers an allowed address first and a forbidden one after: one lookup only."""
    port = port_of(sink)
    answers = iter(["127.0.0.1", "10.0.0.1", "10.0.0.1"])
    lookups: list[str] = []
    real = socket.getaddrinfo

    def getaddrinfo(host: str, *args: object, **kwargs: object) -> list[tuple]:
        if host != "rebinding.test":
            return real(host, *args, **kwargs)
        address = next(answers)
        lookups.append(address)
        return [(socket.AF_INET, socket.SOCK_STREAM, 6, "", (address, port))]

    monkeypatch.setattr(socket, "getaddrinfo", getaddrinfo)
    async with (
        guarded_session(EgressPolicy(["127.0.0.1"])) as session,
        session.post(f"http://rebinding.test:{port}/ok", json={}) as response,
    ):
        assert response.status == 200
    assert lookups == ["127.0.0.1"]
    assert len(sink.received) == 1


async def test_a_redirect_is_refused_even_when_the_caller_asks_to_follow_it(sink: Sink):
    sink.script(Reply(307, {}, {"Location": "http://169.254.169.254/latest/meta-data/"}))
    async with guarded_session(EgressPolicy(["127.0.0.1"])) as session:
        with pytest.raises(RedirectRefused, match=r"answered 307, a redirect to http://169\.254"):
            await session.post(f"{sink.url}/hook", json={}, allow_redirects=True)
    assert len(sink.received) == 1


async def test_cookies_and_proxy_settings_are_ignored(sink: Sink, monkeypatch: pytest.MonkeyPatch):
    monkeypatch.setenv("HTTP_PROXY", "http://10.9.9.9:3128")  # would connect past the check
    sink.script(Reply(200, {}, {"Set-Cookie": "session=admin; Path=/"}), Reply(200, {}))
    async with guarded_session(EgressPolicy(["127.0.0.1"])) as session:
        for path in ("/login", "/next"):
            async with session.post(f"{sink.url}{path}", json={}) as response:
                assert response.status == 200
    assert [request.headers.get("cookie") for request in sink.received] == [None, None]


def answering(body: bytes, coding: str) -> Loopback:
    def handle(request: BaseHTTPRequestHandler) -> None:
        request.rfile.read(int(request.headers.get("content-length") or 0))
        request.send_response(200)
        request.send_header("Content-Encoding", coding)
        request.send_header("Content-Length", str(len(body)))
        request.end_headers()
        request.wfile.write(body)

    return Loopback(handle, ["POST"])


async def test_bodies_are_decoded_here_and_only_as_far_as_asked():
    gzipped, brotli = answering(gzip.compress(b"y" * 300_000), "gzip"), answering(b"z", "br")
    try:
        async with guarded_session(EgressPolicy(["127.0.0.1"])) as session:
            async with session.post(gzipped.url, json={}) as response:
                assert response.request_info.headers["Accept-Encoding"] == "gzip, deflate"
                assert await read_bounded(response, 1000) == b"y" * 1000
            async with session.post(brotli.url, json={}) as response:
                with pytest.raises(PermanentFailure, match="content-encoding 'br'"):
                    await read_bounded(response, 1000)
    finally:
        gzipped.close()
        brotli.close()


async def test_shared_sessions_are_kept_per_policy_and_closed_with_the_service():
    first = shared_sessions.get(EgressPolicy(["127.0.0.1"]))
    assert shared_sessions.get(EgressPolicy(["127.0.0.1"])) is first
    assert shared_sessions.get(EgressPolicy(["10.0.0.0/8"])) is not first
    await shared_sessions.aclose()
    assert first.closed
    assert shared_sessions.get(EgressPolicy(["127.0.0.1"])) is not first
    await shared_sessions.aclose()


def test_a_loop_that_ends_closes_its_sessions():
    """`hookwise test` and other commands run actions in `asyncio.run`: nothing leaks."""
    held: list[aiohttp.ClientSession] = []

    async def act() -> None:
        held.append(shared_sessions.get(EgressPolicy(["127.0.0.1"])))
        await shared_sessions.aclose()  # as the service stops, and then it is used again
        held.append(shared_sessions.get(EgressPolicy(["127.0.0.1"])))

    asyncio.run(act())
    assert held[0] is not held[1]
    assert [session.closed for session in held] == [True, True]


async def test_http_post_says_what_failed_and_whether_trying_again_can_help(sink: Sink):
    event = Event("E1", "artifactory", "artifactory", "docker", "pushed", None, 0.0, {}, {})
    context = ActionContext(event, "r", "notify", 1, "k" * 32, EgressPolicy(["127.0.0.1"]))
    with socket.socket() as closed:
        closed.bind(("127.0.0.1", 0))
        nobody = f"http://127.0.0.1:{closed.getsockname()[1]}/"
    cases = [
        ({"url": nobody, "json": {}}, RetryLater, "failed to connect: .*refused|failed"),
        ({"url": "http://name.invalid/", "json": {}}, RetryLater, "cannot resolve name.invalid"),
        (
            {"url": sink.url, "json": {}, "headers": {"X": "a\r\nb"}},
            PermanentFailure,
            "cannot be sent",
        ),
        ({"url": sink.url, "json": float("nan")}, PermanentFailure, "cannot be sent as JSON"),
    ]
    for params, error, message in cases:
        with pytest.raises(error, match=message):
            await http_post(HttpPostParams.model_validate(params), context)
    assert sink.received == []
