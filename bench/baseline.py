"""The bare endpoint hookwise's accept rate is compared with.

It does the least any webhook receiver must do, read the body and parse the JSON,
and nothing hookwise adds (verifying, normalizing, matching, committing). Run as
`python -m bench.baseline`; it is served like hookwise (see `bench.serve`).
"""

from __future__ import annotations

import json

from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from bench.serve import serve


async def receive(request: Request) -> JSONResponse:
    payload = json.loads(await request.body())
    return JSONResponse({"parsed": isinstance(payload, dict)}, status_code=202)


def create_app() -> Starlette:
    return Starlette(routes=[Route("/hooks/{source}", receive, methods=["POST"])])


if __name__ == "__main__":
    serve(create_app())
