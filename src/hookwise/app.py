"""The ASGI application: routes, JSON errors, and the service's lifespan."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncIterator, Callable

from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response
from starlette.routing import Route

from hookwise import clock
from hookwise.access import Access
from hookwise.api import Api
from hookwise.console import console_routes
from hookwise.errors import HookwiseError, StoreError
from hookwise.receiver import Receiver, error
from hookwise.service import Hookwise
from hookwise.slack.commands import Commands
from hookwise.slack.interactions import Interactions
from hookwise.slack.settings import SlackSettings

log = logging.getLogger("hookwise")


def create_app(service: Hookwise, on_ready: Callable[[], None] = lambda: None) -> Starlette:
    """`on_ready` runs once the store is open and the worker and rule watcher are running."""
    config = service.config
    receiver = Receiver(service, config.max_body_bytes)
    token = config.api_token.get_secret_value() if config.api_token else None
    access = Access(config.access, token)
    api = Api(service, access)
    chat = service.chat
    slack = SlackSettings.model_validate(config.integrations["slack"]) if chat else None
    secret = slack.signing_secret.get_secret_value() if slack and slack.signing_secret else None
    interactions = Interactions(service, chat, secret)
    commands = Commands(service, chat, secret, slack.operators if slack else [])

    async def healthz(request: Request) -> JSONResponse:
        return JSONResponse(
            {"status": "ok", "rules": len(service.rules), "sources": sorted(service.engine.sources)}
        )

    async def metrics(request: Request) -> Response:
        # The counters are worth having most when the store is down: keep the last depth.
        with contextlib.suppress(StoreError):
            service.metrics.queue_depth.set(await service.queue_depth())
            overview = await service.overview()
            oldest = overview.oldest_active
            service.metrics.dead_runs.set(overview.dead)
            service.metrics.oldest_active_age.set(clock.now() - oldest[1] if oldest else 0)
        return Response(generate_latest(service.metrics.registry), media_type=CONTENT_TYPE_LATEST)

    async def http_error(request: Request, exc: Exception) -> JSONResponse:
        assert isinstance(exc, HTTPException)
        reasons = {404: "not_found", 405: "method_not_allowed"}
        reason = reasons.get(exc.status_code, "http_error")
        return error(exc.status_code, reason, f"{request.method} {request.url.path}: {exc.detail}")

    @contextlib.asynccontextmanager
    async def lifespan(app: Starlette) -> AsyncIterator[None]:
        try:
            await service.start(worker_processes=service.config.worker.processes)
        except HookwiseError as exc:
            log.error("hookwise cannot start: %s", exc)
            raise
        on_ready()
        try:
            yield
        finally:
            await service.stop()

    return Starlette(
        routes=[
            Route("/hooks/{source}", receiver.handle, methods=["POST"]),
            Route("/healthz", healthz, methods=["GET"]),
            Route("/metrics", metrics, methods=["GET"]),
            Route("/slack/interactions", interactions.handle, methods=["POST"]),
            Route("/slack/commands", commands.handle, methods=["POST"]),
            *api.routes(),
            *console_routes(service, access),
        ],
        exception_handlers={HTTPException: http_error},
        lifespan=lifespan,
    )
