"""`/api/*`: the history of events and runs, and what people do with them, as JSON.

Each handler checks who asks (`access.py`), parses the request, calls the service,
and answers through a model of `api_schema.py`, the same models `/api/openapi.json`
describes. Reading needs a viewer's token; acting needs an operator's.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from importlib.metadata import version
from typing import Any

from pydantic import ValidationError
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from hookwise import api_schema as shapes
from hookwise.access import LOCAL, Access, Identity
from hookwise.errors import StoreError
from hookwise.queries import QueryError, event_query, run_query
from hookwise.receiver import error
from hookwise.service import Answer, Hookwise
from hookwise.views import event_view, rule_view, run_summary_view, run_view, summary_view

Endpoint = Callable[[Request, Identity], Awaitable[JSONResponse]]
# The HTTP status and error reason of each way a person's request can end.
ANSWERED = {
    "unknown": (404, "not_found"),
    "repeated": (409, "conflict"),
    "refused": (409, "conflict"),
}
MAX_ACT_BODY = 64 * 1024


class BadRequest(Exception):
    """The request cannot be read; answered 400 with the message."""


def answer(model: type[shapes.Shape], value: dict[str, Any], status: int = 200) -> JSONResponse:
    """Served only through its model, so every answer matches the OpenAPI document."""
    return JSONResponse(model.model_validate(value).model_dump(mode="json"), status_code=status)


class Api:
    def __init__(self, service: Hookwise, access: Access) -> None:
        self.service = service
        self.access = access
        self.document = shapes.openapi(version("hookwise"))

    def routes(self) -> list[Route]:
        read, act = self._reader, self._operator
        return [
            Route("/api/openapi.json", read(self.openapi), methods=["GET"]),
            Route("/api/events", read(self.list_events), methods=["GET"]),
            Route("/api/events/{event_id}", read(self.show_event), methods=["GET"]),
            Route("/api/events/{event_id}/replay", act(self.replay_event), methods=["POST"]),
            Route("/api/runs", read(self.list_runs), methods=["GET"]),
            Route("/api/runs/retry", act(self.retry_all), methods=["POST"]),
            Route("/api/runs/{run_id}", read(self.show_run), methods=["GET"]),
            Route("/api/runs/{run_id}/approve", act(self.approve), methods=["POST"]),
            Route("/api/runs/{run_id}/reject", act(self.reject), methods=["POST"]),
            Route("/api/runs/{run_id}/retry", act(self.retry), methods=["POST"]),
            Route("/api/runs/{run_id}/cancel", act(self.cancel), methods=["POST"]),
            Route("/api/rules", read(self.list_rules), methods=["GET"]),
        ]

    def _reader(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[JSONResponse]]:
        return self._guard(endpoint, operator=False)

    def _operator(self, endpoint: Endpoint) -> Callable[[Request], Awaitable[JSONResponse]]:
        return self._guard(endpoint, operator=True)

    def _guard(
        self, endpoint: Endpoint, *, operator: bool
    ) -> Callable[[Request], Awaitable[JSONResponse]]:
        async def guarded(request: Request) -> JSONResponse:
            identity = self.identify(request)
            if identity is None:
                return error(401, "unauthorized", "send Authorization: Bearer <token>")
            if operator and not identity.operates:
                return error(
                    403, "forbidden", f"{identity.name} is a viewer; this needs an operator's token"
                )
            try:
                return await endpoint(request, identity)
            except (BadRequest, QueryError) as exc:
                return error(400, "bad_request", str(exc))
            except StoreError:
                return error(503, "store_unavailable", "the store cannot answer right now; retry")

        return guarded

    def identify(self, request: Request) -> Identity | None:
        if self.access.open:
            return LOCAL
        return self.access.bearer(request.headers.get("authorization", ""))

    # -- reading -----------------------------------------------------------------------

    async def openapi(self, request: Request, who: Identity) -> JSONResponse:
        return JSONResponse(self.document)

    async def list_events(self, request: Request, who: Identity) -> JSONResponse:
        query = event_query(request.query_params)
        found = await self.service.events(query)
        last = found[-1].event.id if len(found) == query.limit else None
        return answer(shapes.EventList, {"events": map(summary_view, found), "next": last})

    async def show_event(self, request: Request, who: Identity) -> JSONResponse:
        event_id = request.path_params["event_id"]
        detail = await self.service.event(event_id)
        if detail is None:
            return error(404, "not_found", f"no event {event_id}")
        return answer(shapes.EventDetailOut, event_view(detail))

    async def list_runs(self, request: Request, who: Identity) -> JSONResponse:
        query = run_query(request.query_params)
        found = await self.service.runs(query)
        last = found[-1].id if len(found) == query.limit else None
        return answer(shapes.RunList, {"runs": map(run_summary_view, found), "next": last})

    async def show_run(self, request: Request, who: Identity) -> JSONResponse:
        run_id = request.path_params["run_id"]
        detail = await self.service.run(run_id)
        if detail is None:
            return error(404, "not_found", f"no run {run_id}")
        return answer(shapes.RunDetailOut, {"run": run_view(detail)})

    async def list_rules(self, request: Request, who: Identity) -> JSONResponse:
        rules = await self.service.rules_with_stats()
        return answer(shapes.RuleList, {"rules": [rule_view(r, s) for r, s in rules]})

    # -- acting ------------------------------------------------------------------------

    async def replay_event(self, request: Request, who: Identity) -> JSONResponse:
        event_id = request.path_params["event_id"]
        runs = await self.service.replay(event_id)
        if runs is None:
            return error(404, "not_found", f"no event {event_id}")
        return answer(shapes.Replayed, {"event_id": event_id, "runs": runs}, 202)

    async def approve(self, request: Request, who: Identity) -> JSONResponse:
        body = await _body(request, shapes.ActRequest)
        by = _actor(who, body)
        run_id = request.path_params["run_id"]
        return _acted(run_id, await self.service.decide(run_id, by, "approve", body.reason, "api"))

    async def reject(self, request: Request, who: Identity) -> JSONResponse:
        body = await _body(request, shapes.ActRequest)
        by = _actor(who, body)
        run_id = request.path_params["run_id"]
        return _acted(run_id, await self.service.decide(run_id, by, "reject", body.reason, "api"))

    async def retry(self, request: Request, who: Identity) -> JSONResponse:
        body = await _body(request, shapes.RetryRequest)
        by = _actor(who, body)
        run_id = request.path_params["run_id"]
        retried = await self.service.retry(run_id, by, "api", from_start=body.from_start)
        return _acted(run_id, retried)

    async def cancel(self, request: Request, who: Identity) -> JSONResponse:
        body = await _body(request, shapes.ActRequest)
        by = _actor(who, body)
        run_id = request.path_params["run_id"]
        return _acted(run_id, await self.service.cancel(run_id, by, body.reason, "api"))

    async def retry_all(self, request: Request, who: Identity) -> JSONResponse:
        """Without `confirm`, only counts: a person sees how many before retrying them all."""
        body = await _body(request, shapes.BulkRetryRequest)
        by = _actor(who, body)
        picked = {k: v for k, v in body.filter.model_dump().items() if v is not None}
        query = run_query({**picked, "status": "dead", "limit": "1000"})
        if not body.confirm:
            matched = len(await self.service.runs(query))
            return answer(shapes.BulkRetried, {"matched": matched, "retried": [], "refused": []})
        answers = await self.service.retry_all(query, by, "api", from_start=body.from_start)
        retried = [run_id for run_id, done in answers if done.ok]
        refused = [done.message for _, done in answers if not done.ok]
        report = {"matched": len(answers), "retried": retried, "refused": refused}
        return answer(shapes.BulkRetried, report)


async def _body(request: Request, model: type[shapes.A]) -> shapes.A:
    raw = await request.body()
    if len(raw) > MAX_ACT_BODY:
        raise BadRequest(f"the body is over {MAX_ACT_BODY} bytes")
    try:
        sent = json.loads(raw or b"{}")
        if not isinstance(sent, dict):
            raise BadRequest('the body must be a JSON object, such as {"reason": "why"}')
        return model.model_validate(sent)
    except ValueError as exc:
        problems = exc.errors() if isinstance(exc, ValidationError) else None
        if problems:
            where = ".".join(str(part) for part in problems[0]["loc"]) or "body"
            raise BadRequest(f"{where}: {problems[0]['msg']}") from None
        raise BadRequest(f"the body is not JSON: {exc}") from None


def _actor(who: Identity, body: shapes.ActRequest) -> str:
    """A named token is who acts; with the shared api_token, the body says who."""
    if who == LOCAL:
        return body.by or LOCAL.name or "local"
    if who.name is not None:
        return who.name
    if not body.by:
        raise BadRequest('by: send JSON {"by": "your name"}; it is recorded in the history')
    return body.by


def _acted(run_id: str, done: Answer) -> JSONResponse:
    if not done.ok:
        status, word = ANSWERED[done.outcome]
        return error(status, word, done.message)
    return answer(shapes.Acted, {"run_id": run_id, "message": done.message}, 202)
