"""The one way out: every outgoing HTTP request hookwise or a plugin makes passes here.

A rule's URL comes from a template and a downstream's answer is not to be trusted, so
a request could be steered at the metadata service or an internal admin port. The
guard works where the connection is made, not where a URL is looked at:

- names are resolved here and every address is checked against the policy; the
  connection goes to the checked address itself, so a DNS answer that changes
  between check and connect cannot slip through; the peer actually reached is
  checked once more; TLS still verifies the original host name;
- redirects are never followed: a 3xx with a Location ends the request with
  `RedirectRefused`, naming the status and the target, whatever the client library
  would have done with it;
- a client bound to an `origin` (an integration's configured URL) refuses any
  other scheme, host or port, so credentials only ever go to the configured host;
- proxy settings from the environment are ignored.

Async code uses `guarded_client`; threads use `guarded_sync_client`. Client
libraries get the same guard through `egress_clients` (requests sessions, slack-sdk).
"""

from __future__ import annotations

import asyncio
import atexit
import functools
import ipaddress
import socket
import ssl
import threading
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from hookwise.errors import EgressDenied, RedirectRefused

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network

# IPv6 forms that carry an IPv4 address: the IPv4 address is what gets reached.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
COMPATIBLE = ipaddress.ip_network("::/96")
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")
REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}


def embedded_ipv4(address: IPAddress) -> ipaddress.IPv4Address | None:
    """The IPv4 address inside an IPv4-mapped, 6to4, NAT64, SIIT or IPv4-compatible one."""
    if not isinstance(address, ipaddress.IPv6Address):
        return None
    if address.ipv4_mapped or address.sixtofour:
        return address.ipv4_mapped or address.sixtofour
    if any(address in net for net in (*NAT64, COMPATIBLE, SIIT)) and address != COMPATIBLE[0]:
        return ipaddress.IPv4Address(int(address) & 0xFFFFFFFF)
    return None


class EgressPolicy:
    """Public addresses are allowed; others only when their host or network is listed."""

    def __init__(self, allow: Iterable[str] = ()) -> None:
        self.allow = tuple(allow)
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in self.allow:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EgressPolicy) and other.allow == self.allow

    def __hash__(self) -> int:
        return hash(self.allow)

    def permits(self, host: str, address: IPAddress) -> bool:
        if host.lower().rstrip(".") in self.hosts:
            return True
        if any(address in network for network in self.networks):
            return True
        embedded = embedded_ipv4(address)
        if embedded is not None:
            return self.permits(host, embedded)
        if isinstance(address, ipaddress.IPv6Address) and address in SITE_LOCAL:
            return False
        return address.is_global and not address.is_multicast

    def allowed(self, host: str, addresses: list[str]) -> list[str]:
        """The addresses that may be connected to; EgressDenied when there are none."""
        kept = [a for a in addresses if self.permits(host, ipaddress.ip_address(a))]
        if not kept:
            raise self.denial(host, addresses)
        return kept

    def check_peer(self, host: str, stream: httpcore.NetworkStream | Any) -> None:
        """The address the socket really reached, e.g. after a NAT64 translation."""
        peer = stream.get_extra_info("server_addr")
        if peer and not self.permits(host, ipaddress.ip_address(peer[0])):
            raise self.denial(host, [peer[0]])

    def denial(self, host: str, addresses: list[str]) -> EgressDenied:
        return EgressDenied(
            f"egress to {host} ({', '.join(addresses)}) is refused: loopback, private, "
            f"link-local and metadata addresses need the host or network in egress.allow"
        )


def _literal(host: str) -> list[str] | None:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        return None


def _unique(infos: list[Any]) -> list[str]:
    return list(dict.fromkeys(str(info[4][0]).split("%")[0] for info in infos))


class GuardedBackend(httpcore.AsyncNetworkBackend):
    """Resolves and checks before connecting, then checks the peer actually reached."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.AnyIOBackend()

    async def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.AsyncNetworkStream:
        addresses = _literal(host)
        if addresses is None:
            try:
                loop = asyncio.get_running_loop()
                infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            addresses = _unique(infos)
        failure: Exception | None = None
        for address in self.policy.allowed(host, addresses):  # e.g. broken IPv6: try the next
            try:
                stream = await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            try:
                self.policy.check_peer(host, stream)
            except EgressDenied:
                await stream.aclose()
                raise
            return stream
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("egress over unix sockets is not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


class GuardedSyncBackend(httpcore.NetworkBackend):
    """The same checks for clients that run in a thread (jira, python-jenkins, slack-sdk)."""

    def __init__(self, policy: EgressPolicy) -> None:
        self.policy = policy
        self.inner = httpcore.SyncBackend()

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[Any] | None = None,
    ) -> httpcore.NetworkStream:
        addresses = _literal(host)
        if addresses is None:
            try:
                infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
            except (socket.gaierror, UnicodeError) as exc:
                raise httpcore.ConnectError(f"cannot resolve {host}: {exc}") from exc
            addresses = _unique(infos)
        failure: Exception | None = None
        for address in self.policy.allowed(host, addresses):
            try:
                stream = self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            try:
                self.policy.check_peer(host, stream)
            except EgressDenied:
                stream.close()
                raise
            return stream
        assert failure is not None
        raise failure

    def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.NetworkStream:
        raise EgressDenied("egress over unix sockets is not allowed")

    def sleep(self, seconds: float) -> None:
        self.inner.sleep(seconds)


@functools.cache
def _tls() -> ssl.SSLContext:
    """One context per process: building one loads the CA bundle, tens of ms of blocking."""
    return httpx.create_ssl_context(trust_env=False)


class _Origin:
    """scheme://host:port a client is bound to, when it is bound to one."""

    def __init__(self, url: str | None) -> None:
        self.key = _origin_of(url) if url else None
        self.url = url

    def check(self, request: httpx.Request) -> None:
        if self.key is not None and _origin_of(str(request.url)) != self.key:
            scheme, host, port = self.key
            raise EgressDenied(
                f"refused {request.method} {_shown(request.url)}: this client only talks to "
                f"{scheme}://{host}:{port}, the configured URL, so that its credentials go "
                "nowhere else"
            )


def _origin_of(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 0)


def _shown(url: httpx.URL | str) -> str:
    """A URL for messages: no user info, no query (either may hold a secret)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def _refuse_redirect(request: httpx.Request, response: httpx.Response) -> None:
    target = response.headers.get("location")
    if response.status_code in REDIRECTS and target is not None:
        absolute = request.url.join(target)
        # Another host's path may echo ours, and ours may be a secret (a webhook URL).
        shown = _shown(absolute)
        if _origin_of(str(absolute)) != _origin_of(str(request.url)):
            scheme, host, port = _origin_of(str(absolute))
            shown = f"{scheme}://{host}:{port}/…"
        raise RedirectRefused(
            f"{request.method} {_shown(request.url)} answered {response.status_code}, a redirect "
            f"to {shown}; redirects are never followed: use the final URL"
        )


class GuardedTransport(httpx.AsyncHTTPTransport):
    """An httpx transport whose every connection and answer passes the guard."""

    def __init__(self, policy: EgressPolicy, origin: str | None = None) -> None:
        super().__init__(verify=_tls(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls(), network_backend=GuardedBackend(policy)
        )
        self.origin = _Origin(origin)

    async def handle_async_request(self, request: httpx.Request) -> httpx.Response:
        self.origin.check(request)
        response = await super().handle_async_request(request)
        try:
            _refuse_redirect(request, response)
        except RedirectRefused:
            await response.aclose()
            raise
        return response


class GuardedSyncTransport(httpx.HTTPTransport):
    """The same, for threads."""

    def __init__(self, policy: EgressPolicy, origin: str | None = None) -> None:
        super().__init__(verify=_tls(), trust_env=False)
        self._pool = httpcore.ConnectionPool(
            ssl_context=_tls(), network_backend=GuardedSyncBackend(policy)
        )
        self.origin = _Origin(origin)

    def handle_request(self, request: httpx.Request) -> httpx.Response:
        self.origin.check(request)
        response = super().handle_request(request)
        try:
            _refuse_redirect(request, response)
        except RedirectRefused:
            response.close()
            raise
        return response


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
    )


class _SharedClients:
    """Guarded sync clients kept per (policy, origin), so connections are reused.

    Client libraries are built per action attempt; their connections should not be.
    httpx clients are thread-safe. The least recently used is closed past MAX.
    """

    MAX = 64

    def __init__(self) -> None:
        self._clients: dict[tuple[EgressPolicy, tuple[str, str, int] | None], httpx.Client] = {}
        self._lock = threading.Lock()

    def get(self, policy: EgressPolicy, origin: str | None) -> httpx.Client:
        key = (policy, _origin_of(origin) if origin else None)
        with self._lock:
            client = self._clients.pop(key, None) or guarded_sync_client(policy, 30.0, origin)
            self._clients[key] = client
            while len(self._clients) > self.MAX:
                self._clients.pop(next(iter(self._clients))).close()
            return client

    def close(self) -> None:
        with self._lock:
            for client in self._clients.values():
                client.close()
            self._clients.clear()


shared = _SharedClients()
atexit.register(shared.close)  # their connections end with the process, not with a warning


def shared_sync_client(policy: EgressPolicy, origin: str | None = None) -> httpx.Client:
    """A long-lived guarded client for threads; pass a timeout with each request."""
    return shared.get(policy, origin)
