"""The connect-time check: resolve, check every address, connect to a checked one, check
the peer reached. One backend for async clients, one for clients in a thread."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from collections.abc import Iterable
from typing import Any

import httpcore

from hookwise.egress.policy import EgressPolicy
from hookwise.errors import EgressDenied


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
