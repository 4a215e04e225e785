"""`/api/*`: the history of events and runs, replay and decisions, as JSON.

Each handler parses the request, calls the service, and answers with the record's
JSON view; a bearer token guards every route when `api_token` is set.
"""

from __future__ import annotations

import hmac
import json
from collections.abc import Awaitable, Callable

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hookwise.errors import StoreError
from hookwise.receiver import error
from hookwise.service import Hookwise
from hookwise.status import EventStatus
from hookwise.views import event_view, run_view, summary_view

FILTERS = ("source", "domain", "event_type")
EVENT_STATUSES = [status.value for status in EventStatus]
MAX_LIMIT = 1000
Endpoint = Callable[[Request], Awaitable[JSONResponse]]
# The HTTP status of each way a decision can end.
DECIDED = {"recorded": 202, "unknown": 404, "repeated": 409, "not_waiting": 409}


class Api:
    def __init__(self, service: Hookwise, token: str | None) -> None:
        self.service = service
        self.token = token

    def routes(self) -> list[Route]:
        return [
            Route("/api/events", self._guard(self.list_events), methods=["GET"]),
            Route("/api/events/{event_id}", self._guard(self.show_event), methods=["GET"]),
            Route(
                "/api/events/{event_id}/replay", self._guard(self.replay_event), methods=["POST"]
            ),
            Route("/api/runs/{run_id}", self._guard(self.show_run), methods=["GET"]),
            Route("/api/runs/{run_id}/approve", self._guard(self.approve), methods=["POST"]),
            Route("/api/runs/{run_id}/reject", self._guard(self.reject), methods=["POST"]),
        ]

    def _guard(self, endpoint: Endpoint) -> Endpoint:
        async def guarded(request: Request) -> JSONResponse:
            if self.token is not None:
                sent = request.headers.get("authorization", "")
                expected = f"Bearer {self.token}"
                if not hmac.compare_digest(sent.encode(), expected.encode()):
                    return error(401, "unauthorized", "send Authorization: Bearer <api_token>")
            try:
                return await endpoint(request)
            except StoreError:
                return error(503, "store_unavailable", "the store cannot answer right now; retry")

        return guarded

    async def list_events(self, request: Request) -> JSONResponse:
        query = request.query_params
        filters = {key: query[key] for key in FILTERS if query.get(key)}
        status = query.get("status") or None
        if status is not None and status not in EVENT_STATUSES:
            return error(400, "bad_query", f"status must be one of {', '.join(EVENT_STATUSES)}")
        try:
            limit = min(int(query.get("limit", "50")), MAX_LIMIT)
        except ValueError:
            return error(400, "bad_query", "limit must be a whole number")
        found = await self.service.events(filters, EventStatus(status) if status else None, limit)
        return JSONResponse({"events": [summary_view(summary) for summary in found]})

    async def show_event(self, request: Request) -> JSONResponse:
        event_id = request.path_params["event_id"]
        detail = await self.service.event(event_id)
        if detail is None:
            return error(404, "not_found", f"no event {event_id}")
        return JSONResponse(event_view(detail))

    async def replay_event(self, request: Request) -> JSONResponse:
        event_id = request.path_params["event_id"]
        runs = await self.service.replay(event_id)
        if runs is None:
            return error(404, "not_found", f"no event {event_id}")
        return JSONResponse({"event_id": event_id, "runs": runs}, status_code=202)

    async def show_run(self, request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]
        detail = await self.service.run(run_id)
        if detail is None:
            return error(404, "not_found", f"no run {run_id}")
        return JSONResponse({"run": run_view(detail)})

    async def approve(self, request: Request) -> JSONResponse:
        return await self._decide(request, "approve")

    async def reject(self, request: Request) -> JSONResponse:
        return await self._decide(request, "reject")

    async def _decide(self, request: Request, decision: str) -> JSONResponse:
        """Body: `{"by": "who", "reason": "why"}`; `by` is recorded in the run's audit trail."""
        run_id = request.path_params["run_id"]
        try:
            body = json.loads(await request.body() or b"{}")
        except ValueError:
            body = None
        if not isinstance(body, dict) or not isinstance(body.get("by"), str) or not body["by"]:
            return error(400, "bad_body", 'send JSON {"by": "your name", "reason": "optional"}')
        reason = body.get("reason")
        decided = await self.service.decide(run_id, body["by"], decision, str(reason or ""), "api")
        if not decided.ok:
            reason_word = "not_found" if decided.outcome == "unknown" else "conflict"
            return error(DECIDED[decided.outcome], reason_word, decided.message)
        return JSONResponse({"run_id": run_id, "message": decided.message}, status_code=202)
