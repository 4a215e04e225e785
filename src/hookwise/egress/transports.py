"""httpx transports and clients that apply the whole guard, and the shared sync clients."""

from __future__ import annotations

import functools
import http.cookiejar
import ssl
import threading
import urllib.request
import weakref

import httpcore
import httpx

from hookwise.egress.answers import (
    ACCEPTED_ENCODINGS,
    async_bounded,
    bounded,
    origin_of,
    refuse_redirect,
    shown,
)
from hookwise.egress.connect import GuardedBackend, GuardedSyncBackend
from hookwise.egress.policy import EgressPolicy
from hookwise.errors import EgressDenied


@functools.cache
def tls_context() -> ssl.SSLContext:
    """One context per process: building one loads the CA bundle, tens of ms of blocking."""
    return httpx.create_ssl_context(trust_env=False)


class _NoCookies(http.cookiejar.DefaultCookiePolicy):
    """A client's jar keeps nothing: clients are shared by sessions of different accounts,
    and a cookie one account was given must not be sent for another. A requests session
    keeps its own cookies (egress.libraries)."""

    def set_ok(self, cookie: http.cookiejar.Cookie, request: urllib.request.Request) -> bool:
        return False


def _no_cookies() -> http.cookiejar.CookieJar:
    return http.cookiejar.CookieJar(policy=_NoCookies())


class _Origin:
    """scheme://host:port a client is bound to, when it is bound to one."""

    def __init__(self, url: str | None) -> None:
        self.key = origin_of(url) if url else None

    def check(self, request: httpx.Request) -> None:
        if self.key is not None and origin_of(request.url) != self.key:
            scheme, host, port = self.key
            raise EgressDenied(
                f"refused {request.method} {shown(request.url)}: this client only talks to "
                f"{scheme}://{host}:{port}, the configured URL, so that its credentials go "
                "nowhere else"
            )


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection and answer passes the guard."""

    def __init__(self, policy: EgressPolicy, origin: str | None = None) -> None:
        super().__init__(verify=tls_context(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=tls_context(), network_backend=GuardedBackend(policy)
        )
        self.origin = _Origin(origin)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.origin.check(request)
        request.headers["accept-encoding"] = ACCEPTED_ENCODINGS
        response = await super().handle_async_request(request)
        try:
            refuse_redirect(request, response)
            return async_bounded(request, response)
        except Exception:
            await response.aclose()
            raise


class GuardedSyncTransport(httpx.HTTPTransport):
    """The same, for threads."""

    def __init__(self, policy: EgressPolicy, origin: str | None = None) -> None:
        super().__init__(verify=tls_context(), trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=tls_context(), network_backend=GuardedSyncBackend(policy)
        )
        self.origin = _Origin(origin)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.origin.check(request)
        request.headers["accept-encoding"] = ACCEPTED_ENCODINGS
        response = super().handle_request(request)
        try:
            refuse_redirect(request, response)
            return bounded(request, response)
        except Exception:
            response.close()
            raise


def guarded_client(
    policy: EgressPolicy, timeout: float, origin: str | None = None
) -> httpx.AsyncClient:
    """An async client that refuses forbidden addresses and never follows redirects.

    With `origin`, it refuses every URL but that one's scheme, host and port.
    """
    return httpx.AsyncClient(
        transport=GuardedTransport(policy, origin),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=_no_cookies(),
    )


def guarded_sync_client(
    policy: EgressPolicy, timeout: float, origin: str | None = None
) -> httpx.Client:
    """`guarded_client` for code that runs in a thread."""
    return httpx.Client(
        transport=GuardedSyncTransport(policy, origin),
        timeout=timeout,
        follow_redirects=False,
        trust_env=False,
        cookies=_no_cookies(),
    )


class _SharedClients:
    """Guarded sync clients kept per (policy, origin), so connections are reused.

    Client libraries are built per action attempt; their connections should not be.
    httpx clients are thread-safe and keep no cookies here. Past MAX, the least recently
    used is forgotten, not closed, since another thread may be using it: its connections
    close once nothing uses it any more.
    """

    MAX = 64

    def __init__(self) -> None:
        self._clients: dict[tuple[EgressPolicy, tuple[str, str, int] | None], httpx.Client] = {}
        self._lock = threading.Lock()

    def get(self, policy: EgressPolicy, origin: str | None) -> httpx.Client:
        key = (policy, origin_of(origin) if origin else None)
        with self._lock:
            client = self._clients.pop(key, None) or self._new(policy, origin)
            self._clients[key] = client
            while len(self._clients) > self.MAX:
                self._clients.pop(next(iter(self._clients)))
            return client

    @staticmethod
    def _new(policy: EgressPolicy, origin: str | None) -> httpx.Client:
        transport = GuardedSyncTransport(policy, origin)
        client = httpx.Client(
            transport=transport,
            timeout=30.0,
            follow_redirects=False,
            trust_env=False,
            cookies=_no_cookies(),
        )
        weakref.finalize(client, transport.close)
        return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


shared = _SharedClients()


def shared_sync_client(policy: EgressPolicy, origin: str | None = None) -> httpx.Client:
    """A long-lived guarded client for threads; pass a timeout with each request."""
    return shared.get(policy, origin)
