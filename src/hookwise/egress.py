"""Guarding outgoing HTTP against SSRF.

A rule's URL comes from a template, so it may be steered at the metadata service
or an internal admin port. Names are resolved here, every address is checked, and
the connection goes to the checked address itself, so DNS cannot change its answer
between check and connect. TLS still verifies the original host name.
"""

from __future__ import annotations

import asyncio
import functools
import ipaddress
import socket
import ssl
from collections.abc import Iterable
from typing import Any
from urllib.parse import urlsplit

import httpcore
import httpx

from hookwise.errors import EgressDenied, PermanentFailure, RetryLater

IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network


# IPv6 forms that carry an IPv4 address: the IPv4 address is what gets reached.
NAT64 = (ipaddress.ip_network("64:ff9b::/96"), ipaddress.ip_network("64:ff9b:1::/48"))
COMPATIBLE = ipaddress.ip_network("::/96")
SIIT = ipaddress.ip_network("::ffff:0:0:0/96")
SITE_LOCAL = ipaddress.ip_network("fec0::/10")


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
        self.networks: list[IPNetwork] = []
        self.hosts: set[str] = set()
        for entry in allow:
            try:
                self.networks.append(ipaddress.ip_network(entry, strict=False))
            except ValueError:
                self.hosts.add(entry.lower().rstrip("."))

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

    def denial(self, host: str, addresses: list[str]) -> EgressDenied:
        return EgressDenied(
            f"egress to {host} ({', '.join(addresses)}) is refused: loopback, private, "
            f"link-local and metadata addresses need the host or network in egress.allow"
        )


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
        addresses = await _resolve(host, port)
        allowed = [a for a in addresses if self.policy.permits(host, ipaddress.ip_address(a))]
        if not allowed:
            raise self.policy.denial(host, addresses)
        failure: Exception | None = None
        for address in allowed:  # e.g. broken IPv6 first: fall back to the next address
            try:
                stream = await self.inner.connect_tcp(
                    address, port, timeout, local_address, socket_options
                )
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                failure = exc
                continue
            peer = stream.get_extra_info("server_addr")
            if peer and not self.policy.permits(host, ipaddress.ip_address(peer[0])):
                await stream.aclose()
                raise self.policy.denial(host, [peer[0]])
            return stream
        assert failure is not None
        raise failure

    async def connect_unix_socket(
        self, path: str, timeout: float | None = None, socket_options: Iterable[Any] | None = None
    ) -> httpcore.AsyncNetworkStream:
        raise EgressDenied("egress over unix sockets is not allowed")

    async def sleep(self, seconds: float) -> None:
        await self.inner.sleep(seconds)


async def _resolve(host: str, port: int) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host.strip("[]")))]
    except ValueError:
        pass
    try:
        infos = await asyncio.get_running_loop().getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except socket.gaierror as exc:
        raise httpcore.ConnectError(f"cannot resolve {host}: {exc.strerror}") from exc
    return list(dict.fromkeys(info[4][0] for info in infos))


@functools.cache
def _tls() -> ssl.SSLContext:
    """One context per process: building one loads the CA bundle, tens of ms of blocking."""
    return httpx.create_ssl_context(trust_env=False)


class GuardedTransport(httpx.AsyncHTTPTransport):
    """httpx transport whose every connection passes the egress policy. Ignores proxy env."""

    def __init__(self, policy: EgressPolicy) -> None:
        super().__init__(verify=_tls(), trust_env=False)
        self._pool = httpcore.AsyncConnectionPool(
            ssl_context=_tls(), network_backend=GuardedBackend(policy)
        )


def guarded_client(policy: EgressPolicy, timeout: float) -> httpx.AsyncClient:
    """A client that refuses forbidden addresses and never follows redirects."""
    return httpx.AsyncClient(
        transport=GuardedTransport(policy), timeout=timeout, follow_redirects=False, trust_env=False
    )


def check_url(url: str, allow: Iterable[str], what: str) -> None:
    """For clients we cannot hand a guarded transport (jira, python-jenkins, slack-sdk).

    Resolves the URL's host and refuses it unless every address passes the policy,
    like http.post. Blocking: call it from a sync action, which runs in a thread.
    """
    parts = urlsplit(url)
    host = parts.hostname or ""
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        infos = socket.getaddrinfo(host, port, type=socket.SOCK_STREAM)
    except (socket.gaierror, UnicodeError) as exc:
        raise RetryLater(f"cannot resolve the {what} host {host}: {exc}") from exc
    addresses = sorted({str(info[4][0]).split("%")[0] for info in infos})
    policy = EgressPolicy(allow)
    if not all(policy.permits(host, ipaddress.ip_address(a)) for a in addresses):
        raise PermanentFailure(f"{what}: {policy.denial(host, addresses)}")
