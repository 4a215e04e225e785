"""Serving a helper ASGI app exactly the way `hookwise serve` serves hookwise.

The baseline and the sink must differ from hookwise only in what they do per request,
so they get the same uvicorn settings, a pre-bound socket with the same backlog, and
the same "listening on" line that `bench.servers` waits for.
"""

from __future__ import annotations

import socket
import sys

import uvicorn
from starlette.applications import Starlette


def serve(app: Starlette, port: int = 0) -> None:
    """Bind 127.0.0.1:`port` (0: any free port), announce it on stderr, serve until SIGTERM."""
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind(("127.0.0.1", port))
    sock.listen(2048)
    bound = sock.getsockname()[1]
    print(f"listening on http://127.0.0.1:{bound}", file=sys.stderr, flush=True)
    # h11 and uvloop, as `hookwise serve`: its connection deadlines are built on uvicorn's
    # h11 protocol. With httptools the bare endpoint answers about twice as fast.
    config = uvicorn.Config(
        app, http="h11", loop="uvloop", log_level="warning", access_log=False, lifespan="on"
    )
    server = uvicorn.Server(config)
    server.run(sockets=[sock])
