"""The shapes of `/api/*`, as Pydantic models: the handlers answer through them and
`GET /api/openapi.json` is generated from them, so the document cannot drift from
what is served. The records come from `views.py`, which the CLI's `--json` shares.
"""

from __future__ import annotations

from typing import Any, Literal, TypeVar

from pydantic import BaseModel, ConfigDict, Field

from hookwise.queries import EVENT_FILTERS, EVENT_STATUSES, MAX_LIMIT, RUN_FILTERS, RUN_STATUSES
from hookwise.status import EventStatus, RunStatus


class Shape(BaseModel):
    model_config = ConfigDict(extra="forbid")


A = TypeVar("A", bound=Shape)


class ErrorBody(Shape):
    error: str = Field(description="What went wrong and what to do, in a sentence.")
    reason: str = Field(description="A stable word to branch on, e.g. not_found, conflict.")


class EventOut(Shape):
    id: str
    source: str
    kind: str
    domain: str
    event_type: str
    delivery_id: str | None
    received_at: str = Field(description="ISO 8601, UTC.")
    data: Any
    headers: dict[str, str] = Field(description="The safe headers; secrets are never kept.")
    artifacts: list[dict[str, Any]]
    artifact: dict[str, Any] | None = Field(description="The first of `artifacts`.")
    meta: dict[str, Any] = Field(
        description="The sender's envelope: operator, occurred_at, request_id, subject, "
        "origin, subscription, sender, extension attributes (docs/sources.md)."
    )


class EventSummaryOut(EventOut):
    status: EventStatus
    runs: int


class DecisionOut(Shape):
    by: str
    decision: Literal["approve", "reject"]
    reason: str | None
    via: str
    at: str | None


class LogLine(BaseModel):
    at: str | None = Field(description="ISO 8601, UTC.")
    level: str
    message: str


class HistoryEntry(Shape):
    action: str = Field(description="The action, or a gate: wait_for, approval, retry, cancel.")
    attempt: int = Field(description="0 for gates and people's interventions.")
    status: str
    started_at: str | None
    duration_ms: float
    output: Any
    error: str | None


class RunSummaryOut(Shape):
    id: str
    rule: str
    status: RunStatus
    action: str = Field(description="The action the run is at, or ended at.")
    attempts: int
    error: str | None
    event_id: str
    created_at: str | None
    updated_at: str | None
    next_attempt_at: str | None = Field(description="When a retrying run is tried again.")


class RunOut(RunSummaryOut):
    output: dict[str, Any] = Field(description="Each finished action's output, by its id.")
    log: list[LogLine]
    history: list[HistoryEntry]
    events: list[str] = Field(description="The events that triggered it (a debounced batch).")
    awaited_event: str | None
    decisions: list[DecisionOut]


class EventList(Shape):
    events: list[EventSummaryOut]
    next: str | None = Field(description="Pass as `before` for the next page; null at the end.")


class RunList(Shape):
    runs: list[RunSummaryOut]
    next: str | None = Field(description="Pass as `before` for the next page; null at the end.")


class EventDetailOut(Shape):
    event: EventOut
    runs: list[RunOut]


class RunDetailOut(Shape):
    run: RunOut


class Replayed(Shape):
    event_id: str
    runs: list[str] = Field(description="The new runs' ids.")


class Acted(Shape):
    run_id: str
    message: str


class ActRequest(Shape):
    by: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Who acts. Ignored for named tokens (`access`), whose name is recorded; "
        "required with the shared api_token.",
    )
    reason: str | None = Field(default=None, max_length=2000)


class RetryRequest(ActRequest):
    from_start: bool = Field(
        default=False, description="Start over at the first action, under the rule as loaded now."
    )


class RunFilter(Shape):
    rule: str | None = None
    source: str | None = None
    key: str | None = None
    since: str | None = Field(default=None, description="ISO 8601, or a duration ago (2h).")
    until: str | None = None


class BulkRetryRequest(RetryRequest):
    filter: RunFilter = Field(default_factory=RunFilter)
    confirm: bool = Field(
        default=False,
        description="false: only count the dead runs the filter picks; true: retry them.",
    )


class BulkRetried(Shape):
    matched: int = Field(description="Dead runs the filter picks.")
    retried: list[str] = Field(description="Ids retried (empty unless confirm).")
    refused: list[str] = Field(description="Why some could not be, one message each.")


class RuleOut(Shape):
    name: str
    origin: str = Field(description="file:line of the rule.")
    enabled: bool
    description: str
    when: dict[str, Any]
    actions: list[str]
    matches: int = Field(description="Events it matched, of those still in the history.")
    runs: int = Field(description="Runs it created, of those still in the history.")
    failures: int = Field(description="Of those runs, dead.")
    last_fired: str | None
    last_error: str | None


class RuleList(Shape):
    rules: list[RuleOut]


# -- the document ----------------------------------------------------------------------


def _param(name: str, description: str, kind: str = "string") -> dict[str, Any]:
    return {"name": name, "in": "query", "required": False, "schema": {"type": kind},
            "description": description}  # fmt: skip


def _path(name: str) -> dict[str, Any]:
    return {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}


PAGE = [
    _param("before", "The `next` of the previous page."),
    {"name": "limit", "in": "query", "required": False,
     "schema": {"type": "integer", "minimum": 1, "maximum": MAX_LIMIT}},
]  # fmt: skip
FILTER_HELP = {
    "status": "Event: " + ", ".join(EVENT_STATUSES) + ". Run: comma-separated "
    + ", ".join(RUN_STATUSES) + ".",
    "since": "ISO 8601, or a duration ago (2h, 7d).",
    "until": "ISO 8601, or a duration ago.",
    "text": "Part of an artifact's name, tag or digest.",
    "key": "A flow-control key: concurrency, debounce or wait_for.",
}  # fmt: skip
ERRORS = {
    "400": "The request is malformed; `error` names the field.",
    "401": "No or unknown token.",
    "403": "The token's role may not do this.",
    "404": "No such event or run.",
    "409": "The run's status does not allow it.",
    "503": "The store cannot answer right now.",
}


def _operation(
    summary: str,
    answer: type[Shape],
    *,
    status: str = "200",
    params: list[dict[str, Any]] | None = None,
    body: type[Shape] | None = None,
    errors: tuple[str, ...] = ("401", "403", "503"),
) -> dict[str, Any]:
    responses: dict[str, Any] = {
        status: {"description": "OK", "content": _json(answer)},
        **{code: {"description": ERRORS[code], "content": _json(ErrorBody)} for code in errors},
    }
    operation: dict[str, Any] = {"summary": summary, "responses": responses}
    if params:
        operation["parameters"] = params
    if body is not None:
        operation["requestBody"] = {"required": False, "content": _json(body)}
    return operation


def _json(model: type[Shape]) -> dict[str, Any]:
    return {"application/json": {"schema": {"$ref": f"#/components/schemas/{model.__name__}"}}}


MODELS: list[type[Shape]] = [
    ErrorBody, EventList, EventDetailOut, Replayed, RunList, RunDetailOut, Acted,
    ActRequest, RetryRequest, BulkRetryRequest, BulkRetried, RuleList,
]  # fmt: skip


def openapi(version: str) -> dict[str, Any]:
    """OpenAPI 3.1 for every `/api/*` route, built from the models above."""
    schemas: dict[str, Any] = {}
    for model in MODELS:
        schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
        schemas.update(schema.pop("$defs", {}))
        schemas[model.__name__] = schema
    act = ("401", "403", "404", "409", "400", "503")
    event_id, run_id = [_path("event_id")], [_path("run_id")]
    events = [_param(name, FILTER_HELP.get(name, "")) for name in EVENT_FILTERS] + PAGE
    runs = [_param(name, FILTER_HELP.get(name, "")) for name in RUN_FILTERS] + PAGE

    def acting(summary: str, body: type[Shape] = ActRequest) -> dict[str, Any]:
        return _operation(summary, Acted, status="202", params=run_id, body=body, errors=act)

    return {
        "openapi": "3.1.0",
        "info": {"title": "hookwise", "version": version},
        "components": {
            "schemas": schemas,
            "securitySchemes": {"token": {"type": "http", "scheme": "bearer"}},
        },
        "security": [{"token": []}],
        "paths": {
            "/api/openapi.json": {
                "get": {
                    "summary": "This document",
                    "responses": {
                        "200": {
                            "description": "OK",
                            "content": {"application/json": {"schema": {"type": "object"}}},
                        },
                        "401": {"description": ERRORS["401"], "content": _json(ErrorBody)},
                    },
                }
            },
            "/api/events": {
                "get": _operation("Events, newest first", EventList, params=events,
                                  errors=("400", "401", "403", "503"))
            },
            "/api/events/{event_id}": {
                "get": _operation("One event and its runs", EventDetailOut, params=event_id,
                                  errors=("401", "403", "404", "503"))
            },
            "/api/events/{event_id}/replay": {
                "post": _operation("New runs under the current rules", Replayed, status="202",
                                   params=event_id, errors=("401", "403", "404", "503"))
            },
            "/api/runs": {
                "get": _operation("Runs, newest first", RunList, params=runs,
                                  errors=("400", "401", "403", "503"))
            },
            "/api/runs/retry": {
                "post": _operation("Count, or retry, every dead run a filter picks", BulkRetried,
                                   body=BulkRetryRequest, errors=("400", "401", "403", "503"))
            },
            "/api/runs/{run_id}": {
                "get": _operation("One run", RunDetailOut, params=run_id,
                                  errors=("401", "403", "404", "503"))
            },
            "/api/runs/{run_id}/approve": {"post": acting("Approve")},
            "/api/runs/{run_id}/reject": {"post": acting("Reject")},
            "/api/runs/{run_id}/retry": {"post": acting("Retry a dead run", RetryRequest)},
            "/api/runs/{run_id}/cancel": {"post": acting("Cancel")},
            "/api/rules": {
                "get": _operation("Loaded rules, with what they did", RuleList,
                                  errors=("401", "403", "503"))
            },
        },
    }  # fmt: skip
