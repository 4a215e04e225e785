"""The client's connections behind the egress guard: checked at connect time, one
origin, no redirects."""

from __future__ import annotations

import socket
from typing import Any
from urllib.parse import urlsplit

from urllib3 import PoolManager
from urllib3.connection import HTTPConnection, HTTPSConnection
from urllib3.connectionpool import HTTPConnectionPool, HTTPSConnectionPool
from urllib3.exceptions import (
    ConnectTimeoutError,
    NameResolutionError,
    NewConnectionError,
)
from urllib3.response import BaseHTTPResponse
from urllib3.util.connection import create_connection

from hookwise.plugin import (
    EgressDenied,
    EgressPolicy,
    RedirectRefused,
)
from hookwise_kubernetes.settings import DEFAULT_PORTS

# -- egress: urllib3 connections behind the policy ------------------------------------------


class _GuardedConnection(HTTPConnection):
    """Resolves the host, checks the addresses against the policy, connects to a checked one."""

    def __init__(self, *args: Any, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.policy = policy

    def _new_conn(self) -> socket.socket:
        try:
            infos = socket.getaddrinfo(self.host, self.port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NameResolutionError(self.host, self, exc) from exc
        addresses = list(dict.fromkeys(str(info[4][0]) for info in infos))
        address = self.policy.allowed(self.host, addresses)[0]
        try:
            return create_connection(
                (address, self.port),
                self.timeout,
                source_address=self.source_address,
                socket_options=self.socket_options,
            )
        except TimeoutError as exc:
            raise ConnectTimeoutError(self, f"connection to {self.host} timed out") from exc
        except OSError as exc:
            raise NewConnectionError(self, f"failed to connect: {exc}") from exc


class _GuardedTLSConnection(_GuardedConnection, HTTPSConnection):
    """The same check; TLS still verifies the certificate against the host name."""


class _GuardedPool(HTTPConnectionPool):
    ConnectionCls = _GuardedConnection


class _GuardedTLSPool(HTTPSConnectionPool):
    ConnectionCls = _GuardedTLSConnection


class _GuardedPoolManager(PoolManager):
    """Only the API server's origin, through guarded connections, and never a redirect."""

    def __init__(self, policy: EgressPolicy, origin: str, **pool_kw: Any) -> None:
        super().__init__(**pool_kw)
        self.policy = policy
        self.origin = _origin(origin)
        self.pool_classes_by_scheme = {"http": _GuardedPool, "https": _GuardedTLSPool}

    def _new_pool(
        self,
        scheme: str,
        host: str,
        port: int,
        request_context: dict[str, Any] | None = None,
    ) -> HTTPConnectionPool:
        if (scheme, host.lower().strip("[]"), port) != self.origin:
            raise EgressDenied(
                f"refused to connect to {scheme}://{host}:{port}: the kubernetes client only "
                f"talks to the API server {self.origin[0]}://{self.origin[1]}:{self.origin[2]}"
            )
        context = dict(self.connection_pool_kw if request_context is None else request_context)
        context["policy"] = self.policy  # handed on to each connection the pool makes
        return super()._new_pool(scheme, host, port, context)

    def urlopen(  # type: ignore[override]
        self, method: str, url: str, redirect: bool = True, **kw: Any
    ) -> BaseHTTPResponse:
        response = super().urlopen(method, url, redirect=False, **kw)
        location = response.get_redirect_location()
        if location:
            response.drain_conn()
            raise RedirectRefused(
                f"{method} {url} answered {response.status}, a redirect to {location}; "
                "redirects are never followed: point the kubeconfig at the API server itself"
            )
        return response


def _origin(url: str) -> tuple[str, str, int]:
    parts = urlsplit(url)
    scheme = parts.scheme.lower()
    return scheme, (parts.hostname or "").lower(), parts.port or DEFAULT_PORTS.get(scheme, 80)
