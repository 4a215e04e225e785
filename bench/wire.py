"""A lean HTTP/1.1 client for the measured requests: asyncio streams, one write each.

httpx costs its caller about 1.5 ms of CPU per request on a 2-core test machine, so
a client offering 1,000 requests/s would need more than a core of its own and would
starve the server it measures. This client sends the same bytes a webhook sender
does (request line, headers and body in one write) and reads status, headers and a
Content-Length body, for about a tenth of that. It speaks only what the suite needs:
POST, answers with Content-Length, kept-alive or one connection per request.
"""

from __future__ import annotations

import asyncio
import contextlib
from urllib.parse import urlsplit


class Closed(ConnectionError):
    """The server closed the connection before answering."""


class _Connection:
    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.reader = reader
        self.writer = writer
        self.reusable = True

    async def exchange(self, request: bytes) -> tuple[int, bytes]:
        self.writer.write(request)
        status_line = await self.reader.readline()
        if not status_line:
            raise Closed("connection closed before the answer")
        status = int(status_line.split()[1])
        length = 0
        while (line := await self.reader.readline()) not in (b"\r\n", b""):
            name, _, value = line.partition(b":")
            name = name.strip().lower()
            if name == b"content-length":
                length = int(value)
            elif name == b"connection" and value.strip().lower() == b"close":
                self.reusable = False
        return status, await self.reader.readexactly(length)

    def close(self) -> None:
        self.writer.close()


class Pool:
    """At most `size` connections to the host of `url`, kept alive unless `keepalive=False`."""

    def __init__(self, url: str, size: int, keepalive: bool = True) -> None:
        parts = urlsplit(url)
        self.host = parts.hostname or "127.0.0.1"
        self.port = parts.port or 80
        self.head = f"POST {parts.path} HTTP/1.1\r\nHost: {parts.netloc}\r\n"
        if not keepalive:
            self.head += "Connection: close\r\n"
        self.keepalive = keepalive
        self._slots = asyncio.Semaphore(size)
        self._idle: list[_Connection] = []

    def _request(self, body: bytes, headers: dict[str, str]) -> bytes:
        lines = "".join(f"{name}: {value}\r\n" for name, value in headers.items())
        return f"{self.head}Content-Length: {len(body)}\r\n{lines}\r\n".encode() + body

    async def _open(self) -> _Connection:
        return _Connection(*await asyncio.open_connection(self.host, self.port))

    async def post(self, body: bytes, headers: dict[str, str]) -> tuple[int, bytes]:
        """(status, body). A kept-alive connection the server closed while it was idle
        is dropped and the request sent on another: nothing was received on it."""
        request = self._request(body, headers)
        async with self._slots:
            while True:
                reused = bool(self._idle)
                connection = self._idle.pop() if reused else await self._open()
                try:
                    answer = await connection.exchange(request)
                except Closed:
                    connection.close()
                    if reused:
                        continue
                    raise
                except BaseException:
                    connection.close()
                    raise
                if self.keepalive and connection.reusable:
                    self._idle.append(connection)
                else:
                    connection.close()
                return answer

    async def close(self) -> None:
        while self._idle:
            connection = self._idle.pop()
            connection.close()
            with contextlib.suppress(OSError):
                await connection.writer.wait_closed()
