"""The HTTP server every stand-in runs on: threaded, on loopback, quiet, one handler.

Each stand-in only decides what to answer; this module owns the socket, the thread and
the shutdown, so they are written once.
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

Handle = Callable[[BaseHTTPRequestHandler], None]


class Loopback:
    """Serves `methods` on `host`, any free port, handing each request to `handle`.

    `http11`: keep connections alive, as the real services do; off, every answer
    closes its connection (HTTP/1.0), as BaseHTTPRequestHandler does by default.
    """

    def __init__(
        self, handle: Handle, methods: Iterable[str], host: str = "127.0.0.1", http11: bool = True
    ) -> None:
        class Handler(BaseHTTPRequestHandler):
            def log_message(self, format: str, *args: Any) -> None:
                pass

        if http11:
            Handler.protocol_version = "HTTP/1.1"
        for method in methods:
            setattr(Handler, f"do_{method}", lambda request: handle(request))
        self.server = ThreadingHTTPServer((host, 0), Handler)
        self.server.daemon_threads = True
        self.url = f"http://{host}:{self.server.server_address[1]}"
        self.thread = threading.Thread(target=self.server.serve_forever, args=(0.05,), daemon=True)
        self.thread.start()

    def close(self) -> None:
        self.server.shutdown()
        self.server.server_close()


def send_json(
    handler: BaseHTTPRequestHandler, status: int, answer: Any, headers: dict[str, str] | None = None
) -> None:
    """Answer with `answer` as JSON, a Content-Length, and any extra `headers`."""
    data = json.dumps(answer).encode()
    handler.send_response(status)
    handler.send_header("Content-Type", "application/json")
    handler.send_header("Content-Length", str(len(data)))
    for key, value in (headers or {}).items():
        handler.send_header(key, value)
    handler.end_headers()
    handler.wfile.write(data)
