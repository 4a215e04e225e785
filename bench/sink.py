"""The downstream endpoint of the probe rule's `http.post`: it notes when each call arrives.

It runs in its own process so that the load generator cannot delay the clock reading.
Arrival times are `time.monotonic()`, which on Linux is one clock for every process,
so they compare directly with the times the load generator notes for each 202.
Run as `python -m bench.sink`; `GET /arrivals` returns `{event_id: monotonic seconds}`
and `GET /count` how many distinct events arrived, cheaply enough to poll under load.
"""

from __future__ import annotations

import json
import time

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.serve import serve


def create_app() -> Starlette:
    arrivals: dict[str, float] = {}

    async def arrive(request: Request) -> JSONResponse:
        at = time.monotonic()
        arrivals.setdefault(json.loads(await request.body())["event"], at)
        return JSONResponse({"ok": True})

    async def listing(request: Request) -> JSONResponse:
        return JSONResponse(arrivals)

    async def count(request: Request) -> JSONResponse:
        return JSONResponse({"count": len(arrivals)})

    return Starlette(
        routes=[
            Route("/arrive", arrive, methods=["POST"]),
            Route("/count", count, methods=["GET"]),
            Route("/arrivals", listing, methods=["GET"]),
        ]
    )


if __name__ == "__main__":
    serve(create_app())
