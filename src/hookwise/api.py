"""`/api/*`: read the history, replay an event. Bearer-token protected when configured."""

from __future__ import annotations

import hmac
import json

from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hookwise import operations
from hookwise.engine import Engine
from hookwise.errors import StoreError
from hookwise.receiver import error
from hookwise.store.base import EVENT_STATUSES

FILTERS = ("source", "domain", "event_type")
MAX_LIMIT = 1000


class Api:
    def __init__(self, engine: Engine, token: str | None) -> None:
        self.engine = engine
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

    def _guard(self, endpoint):  # noqa: ANN001, ANN202 - a Starlette endpoint in, one out
        async def guarded(request: Request) -> JSONResponse:
            if self.token is not None:
                sent = request.headers.get("authorization", "")
                expected = f"Bearer {self.token}"
                if not hmac.compare_digest(sent.encode(), expected.encode()):
                    return error(401, "unauthorized", "send Authorization: Bearer <api_token>")
            return await endpoint(request)

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
        assert self.engine.store is not None
        events = await self.engine.store.list_events(filters, status, max(limit, 1))
        return JSONResponse({"events": events})

    async def show_event(self, request: Request) -> JSONResponse:
        event_id = request.path_params["event_id"]
        assert self.engine.store is not None
        event = await self.engine.store.get_event(event_id)
        if event is None:
            return error(404, "not_found", f"no event {event_id}")
        runs = await self.engine.store.runs_of(event_id)
        return JSONResponse({"event": event.as_dict(), "runs": runs})

    async def replay_event(self, request: Request) -> JSONResponse:
        event_id = request.path_params["event_id"]
        try:
            runs = await self.engine.replay(event_id)
        except StoreError:
            return error(503, "store_unavailable", "cannot store new runs right now; try again")
        if runs is None:
            return error(404, "not_found", f"no event {event_id}")
        return JSONResponse({"event_id": event_id, "runs": runs}, status_code=202)

    async def show_run(self, request: Request) -> JSONResponse:
        run_id = request.path_params["run_id"]
        assert self.engine.store is not None
        run = await self.engine.store.run_details(run_id)
        if run is None:
            return error(404, "not_found", f"no run {run_id}")
        return JSONResponse({"run": run})

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
        assert self.engine.store is not None
        try:
            answer = await operations.decide(
                self.engine.store, run_id, body["by"], decision, str(reason or ""), "api"
            )
        except StoreError:
            return error(503, "store_unavailable", "cannot record the decision right now")
        if not answer.ok:
            return error(
                answer.status, "not_found" if answer.status == 404 else "conflict", answer.message
            )
        self.engine.on_new_runs()
        return JSONResponse({"run_id": run_id, "message": answer.message}, status_code=202)
