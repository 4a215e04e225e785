"""`serve`'s HTTP connections: deadlines for slow senders, and a cap on how many there are.

uvicorn waits for a request's headers and body as long as the sender cares to trickle
them, so a few hundred slow connections hold the server's file descriptors for good
(slowloris). This protocol, uvicorn's own h11 one plus three rules, stops that:

- the headers must be complete `header_timeout` after the connection opens, or after
  the first byte of a later request on a kept-alive connection (idle kept-alive
  connections are uvicorn's `timeout_keep_alive`, 5 s);
- the body must be complete `body_timeout` after the headers;
- an answer the sender does not read (the connection's buffers full) must move again
  within `body_timeout`, or the connection is dropped: a sender that pipelines requests
  and never reads cannot hold a connection forever;
- past `max_connections` open connections, a new one is answered 503 and closed.

A sender that misses a deadline gets `408 Request Timeout` (unless an answer already
started) and the connection is closed; nothing of the request is stored.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
from typing import Any

import h11
from uvicorn.protocols.http.h11_impl import H11Protocol

from hookwise.config import ServerConfig

log = logging.getLogger("hookwise.connections")
LINGER = 0.2


class _Refusals:
    """Counts refused connections; logs at most once per interval, not once per socket."""

    INTERVAL = 10.0

    def __init__(self) -> None:
        self.count = 0
        self.logged_at = 0.0

    def note(self, limit: int) -> None:
        self.count += 1
        now = time.monotonic()
        if now - self.logged_at >= self.INTERVAL:
            log.warning(
                "refused %d connections: %d were open already (server.max_connections)",
                self.count,
                limit,
            )
            self.count, self.logged_at = 0, now


_refusals = _Refusals()


def _raw_response(status: int, phrase: str, reason: str, message: str) -> bytes:
    body = json.dumps({"error": message, "reason": reason}).encode()
    head = (
        f"HTTP/1.1 {status} {phrase}\r\ncontent-type: application/json\r\n"
        f"content-length: {len(body)}\r\nconnection: close\r\n\r\n"
    )
    return head.encode() + body


class GuardedH11Protocol(H11Protocol):
    """uvicorn's h11 protocol with deadlines and a connection cap (set by `protocol_for`)."""

    settings = ServerConfig()

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._phase: str | None = None
        self._deadline: asyncio.TimerHandle | None = None
        self._refused = False
        self._blocked: asyncio.TimerHandle | None = None

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        super().connection_made(transport)
        if len(self.connections) > self.settings.max_connections:
            _refusals.note(self.settings.max_connections)
            message = "too many open connections; try again shortly"
            transport.write(_raw_response(503, "Service Unavailable", "overloaded", message))
            # Closed a moment later, once the request bytes already on their way are read:
            # closing with unread bytes makes the kernel reset the connection, and the
            # sender would never see the 503.
            self._refused = True
            self.loop.call_later(LINGER, transport.close)
            return
        self._enter("headers")

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        super().data_received(data)
        self._follow()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        self._follow()

    def pause_writing(self) -> None:
        super().pause_writing()
        self._blocked = self.loop.call_later(self.settings.body_timeout, self._unread)

    def resume_writing(self) -> None:
        super().resume_writing()
        if self._blocked is not None:
            self._blocked.cancel()
            self._blocked = None

    def _unread(self) -> None:
        self._blocked = None
        log.info(
            "dropped a connection from %s: it did not read its answer for %gs "
            "(server.body_timeout)",
            self.client[0] if self.client else "?",
            self.settings.body_timeout,
        )
        self.transport.abort()  # what is buffered cannot be delivered anyway

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter(None)
        if self._blocked is not None:
            self._blocked.cancel()
            self._blocked = None
        super().connection_lost(exc)

    def _follow(self) -> None:
        """Which deadline applies now, from where h11 is in the request."""
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._enter("body")
        elif state is h11.IDLE and self.conn.trailing_data[0]:
            self._enter("headers")  # a request has begun and its headers are incomplete
        elif state is not h11.IDLE or self._phase != "headers":
            self._enter(None)

    def _enter(self, phase: str | None) -> None:
        if phase == self._phase:
            return
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        self._phase = phase
        if phase is not None and not self.transport.is_closing():
            timeout = (
                self.settings.header_timeout if phase == "headers" else self.settings.body_timeout
            )
            self._deadline = self.loop.call_later(timeout, self._expire, phase, timeout)

    def _expire(self, phase: str, timeout: float) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        setting = "server.header_timeout" if phase == "headers" else "server.body_timeout"
        log.info(
            "closed a connection from %s: the request %s did not arrive within %gs (%s)",
            self.client[0] if self.client else "?",
            phase,
            timeout,
            setting,
        )
        if self.cycle is None or not self.cycle.response_started or phase == "headers":
            message = f"the request {phase} did not arrive within {timeout:g}s"
            self.transport.write(_raw_response(408, "Request Timeout", "timeout", message))
        self.transport.close()


def protocol_for(settings: ServerConfig) -> type[GuardedH11Protocol]:
    """The protocol class uvicorn instantiates per connection, with these settings."""
    return type("HookwiseProtocol", (GuardedH11Protocol,), {"settings": settings})
