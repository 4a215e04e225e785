"""aiohttp sessions behind the guard: the fast way out for async actions.

A request costs its caller about 0.1 ms of CPU through aiohttp and 0.75 ms through
httpx (`bench`, docs/performance.md), and a run that posts once spends most of its time
there. The guard is the same as the httpx transports':

- names resolve through `_GuardedResolver`, which checks every address (and honours
  host names in `egress.allow`); the connection goes to a checked address;
- every socket is opened by `_Guard.open`, which checks the address it is for once more,
  so an IP literal in a URL (which aiohttp never hands to a resolver) is checked too;
- the session's middleware refuses redirects and asks for gzip or deflate only;
- `read_bounded` decodes the body here, a step at a time, up to a limit;
- no cookies are kept and proxy settings in the environment are ignored.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import weakref
from collections.abc import AsyncGenerator
from typing import Any

import aiohttp
from aiohttp.abc import AbstractResolver, ResolveResult

from hookwise.egress.answers import (
    ACCEPTED_ENCODINGS,
    STEP,
    decoded_pieces,
    decoder_for,
    redirect_refusal,
)
from hookwise.egress.policy import EgressPolicy
from hookwise.egress.transports import tls_context


class _Guard:
    """The policy, and the addresses it let through because of their host's name.

    `egress.allow: [ci.internal]` admits whatever ci.internal resolves to; the socket
    factory only sees an address, so the resolver notes the addresses it admitted by name.
    """

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.by_name: set[str] = set()

    def admit(self, host: str, addresses: list[str]) -> list[str]:
        kept = self.policy.allowed(host, addresses)
        self.by_name.update(a for a in kept if not self._by_address(a))
        return kept

    def open(self, info: tuple[Any, ...]) -> socket.socket:
        """aiohttp's socket factory: `info` is one getaddrinfo() entry."""
        family, kind, protocol, _, where = info
        address = str(where[0]).split("%")[0]
        if address not in self.by_name and not self._by_address(address):
            raise self.policy.denial(address, [address])
        return socket.socket(family, kind, protocol)

    def _by_address(self, address: str) -> bool:
        return self.policy.permits(address, ipaddress.ip_address(address))


class _GuardedResolver(AbstractResolver):
    def __init__(self, guard: _Guard) -> None:
        self.guard = guard

    async def resolve(
        self, host: str, port: int = 0, family: socket.AddressFamily = socket.AF_INET
    ) -> list[ResolveResult]:
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM, family=family)
        except (socket.gaierror, UnicodeError) as exc:
            raise OSError(f"cannot resolve {host}: {exc}") from exc
        found = {str(info[4][0]).split("%")[0]: info[0] for info in infos}
        kept = self.guard.admit(host, list(found))
        return [
            ResolveResult(
                hostname=host,
                host=address,
                port=port,
                family=found[address],
                proto=0,
                flags=socket.AI_NUMERICHOST,
            )
            for address in kept
        ]

    async def close(self) -> None:
        pass


async def _answer_checked(
    request: aiohttp.ClientRequest, handler: aiohttp.ClientHandlerType
) -> aiohttp.ClientResponse:
    request.headers["Accept-Encoding"] = ACCEPTED_ENCODINGS
    response = await handler(request)
    refusal = redirect_refusal(
        request.method, str(request.url), response.status, response.headers.get("Location")
    )
    if refusal is not None:
        response.close()
        raise refusal
    return response


def guarded_session(policy: EgressPolicy) -> aiohttp.ClientSession:
    """A session that reaches only what `policy` allows and never follows a redirect.

    Read bodies with `read_bounded`: the session leaves them encoded as they came.
    """
    guard = _Guard(policy)
    connector = aiohttp.TCPConnector(
        resolver=_GuardedResolver(guard), socket_factory=guard.open, ssl=tls_context()
    )
    return aiohttp.ClientSession(
        connector=connector,
        cookie_jar=aiohttp.DummyCookieJar(),
        middlewares=(_answer_checked,),
        auto_decompress=False,
        trust_env=False,
    )


async def read_bounded(response: aiohttp.ClientResponse, limit: int) -> bytes:
    """At most `limit` bytes of the decoded body; the rest is not read, nor decoded."""
    coding = response.headers.get("Content-Encoding", "")
    decoder = decoder_for(response.method, str(response.url), coding)
    pieces, size = [], 0
    async for chunk in response.content.iter_chunked(STEP):
        for piece in decoded_pieces(decoder, chunk):
            pieces.append(piece)
            size += len(piece)
            if size >= limit:
                return b"".join(pieces)[:limit]
    return b"".join(pieces)


class _SharedSessions:
    """Guarded sessions kept per event loop and policy, so calls reuse connections.

    A new session per call costs a TCP (and TLS) handshake every time. A session's
    connections belong to the loop that opened them. The service closes its loop's with
    `aclose` when it stops; a loop that ends otherwise (`asyncio.run` in a command or a
    test) closes them as it shuts down its async generators (`_closed_with_the_loop`).
    """

    def __init__(self) -> None:
        self._by_loop: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, dict[EgressPolicy, aiohttp.ClientSession]
        ] = weakref.WeakKeyDictionary()
        # The generator, and the task that starts it (kept, so it is not collected early).
        self._closers: weakref.WeakKeyDictionary[
            asyncio.AbstractEventLoop, tuple[AsyncGenerator[None], asyncio.Task[None]]
        ] = weakref.WeakKeyDictionary()

    def get(self, policy: EgressPolicy) -> aiohttp.ClientSession:
        loop = asyncio.get_running_loop()
        sessions = self._by_loop.setdefault(loop, {})
        session = sessions.get(policy)
        if session is None or session.closed:
            session = sessions[policy] = guarded_session(policy)
        if loop not in self._closers:
            closer = _closed_with_the_loop(sessions)
            self._closers[loop] = (closer, loop.create_task(anext(closer)))
        return session

    async def aclose(self) -> None:
        """Close the running loop's sessions; a later `get` opens new ones, which the
        loop still closes as it ends."""
        await _close_all(self._by_loop.get(asyncio.get_running_loop(), {}))


async def _close_all(sessions: dict[EgressPolicy, aiohttp.ClientSession]) -> None:
    for session in list(sessions.values()):
        await session.close()
    sessions.clear()


async def _closed_with_the_loop(
    sessions: dict[EgressPolicy, aiohttp.ClientSession],
) -> AsyncGenerator[None]:
    """Suspended until the loop shuts down its async generators, then closes `sessions`."""
    try:
        yield
    finally:
        await _close_all(sessions)


shared_sessions = _SharedSessions()


def shared_session(policy: EgressPolicy) -> aiohttp.ClientSession:
    """A long-lived guarded session: keep-alive connections per destination.

    Do not close it; give each request its own `timeout=aiohttp.ClientTimeout(...)`.
    """
    return shared_sessions.get(policy)
