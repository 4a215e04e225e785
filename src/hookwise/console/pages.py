"""The console's pages: overview, events, one event's timeline, runs, one run, rules."""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any, TypeVar
from urllib.parse import urlencode

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookwise.access import Identity
from hookwise.console.web import Refused, Web
from hookwise.event import iso_time
from hookwise.queries import EVENT_STATUSES, RUN_STATUSES, QueryError, event_query, run_query
from hookwise.store import EventQuery, RunQuery
from hookwise.views import event_view, rule_view, run_summary_view, run_view, summary_view

# List pages reload themselves this often (seconds): no JavaScript needed.
REFRESH = 15
Q = TypeVar("Q", EventQuery, RunQuery)


class Pages(Web):
    async def overview(self, request: Request, who: Identity) -> Response:
        overview = await self.service.overview()
        oldest = iso_time(overview.oldest_active[1]) if overview.oldest_active else None
        return await self.render(
            request,
            who,
            "overview.html",
            section="Overview",
            overview=overview,
            oldest_at=oldest,
            statuses=RUN_STATUSES,
            refresh=REFRESH,
        )

    async def events(self, request: Request, who: Identity) -> Response:
        async def listed(query: EventQuery) -> tuple[list[dict[str, Any]], str | None]:
            found = await self.service.events(query)
            last = found[-1].event.id if len(found) == query.limit else None
            return [summary_view(summary) for summary in found], last

        return await self._listing(request, who, "events", event_query, listed)

    async def event(self, request: Request, who: Identity) -> Response:
        event_id = request.path_params["event_id"]
        detail = await self.service.event(event_id)
        if detail is None:
            raise Refused(404, f"No event {event_id}: it may have been pruned.")
        shown = event_view(detail)
        return await self.render(
            request,
            who,
            "event.html",
            section="Events",
            event=shown["event"],
            runs=shown["runs"],
            verdicts=await self.service.explain(detail.event),
        )

    async def runs(self, request: Request, who: Identity) -> Response:
        async def listed(query: RunQuery) -> tuple[list[dict[str, Any]], str | None]:
            found = await self.service.runs(query)
            last = found[-1].id if len(found) == query.limit else None
            return [run_summary_view(run) for run in found], last

        return await self._listing(request, who, "runs", run_query, listed)

    async def _listing(
        self,
        request: Request,
        who: Identity,
        noun: str,
        parse: Callable[[dict[str, str]], Q],
        listed: Callable[[Q], Awaitable[tuple[list[dict[str, Any]], str | None]]],
    ) -> Response:
        """A filtered list page: a filter it cannot read is shown back with the reason."""
        params = dict(request.query_params)
        values: dict[str, Any] = {"params": params, noun: [], "event_statuses": EVENT_STATUSES}
        try:
            query = parse(params)
        except QueryError as exc:
            values["problem"] = f"Filter {exc}"
            status = 400
        else:
            values[noun], last = await listed(query)
            values["next"] = self._next_page(request, f"/ui/{noun}", params, last)
            status = 200
        return await self.render(
            request, who, f"{noun}.html", status, section=noun.title(), refresh=REFRESH, **values
        )

    async def run(self, request: Request, who: Identity) -> Response:
        run_id = request.path_params["run_id"]
        detail = await self.service.run(run_id)
        if detail is None:
            raise Refused(404, f"No run {run_id}: it may have been pruned.")
        return await self.render(request, who, "run.html", section="Runs", run=run_view(detail))

    async def rules(self, request: Request, who: Identity) -> Response:
        return await self.rules_page(request, who)

    async def rules_page(
        self, request: Request, who: Identity, status: int = 200, **tried: object
    ) -> Response:
        rules = await self.service.rules_with_stats()
        return await self.render(
            request,
            who,
            "rules.html",
            status,
            section="Rules",
            rules=[rule_view(rule, stats) for rule, stats in rules],
            sources=sorted(self.service.engine.sources),
            tried=tried.get("tried") or {"source": "", "headers": "", "body": ""},
            report=tried.get("report"),
            problem=tried.get("problem"),
        )

    async def find(self, request: Request, who: Identity) -> Response:
        """The search box: an id, or the start of one, opens its page."""
        found = await self.service.find(request.query_params.get("id", "").strip())
        if found.kind is None:
            raise Refused(404, found.problem)
        return RedirectResponse(self.url(request, f"/ui/{found.kind}s/{found.id}"), 303)

    async def show_login(self, request: Request) -> Response:
        if self.access.open:
            return RedirectResponse(self.url(request, "/ui"), 303)
        next_page = request.query_params.get("next", "/ui")
        return await self.render(request, None, "login.html", next=_local(next_page))

    def _next_page(
        self, request: Request, path: str, params: dict[str, str], last: str | None
    ) -> str | None:
        if last is None:
            return None
        return self.url(request, f"{path}?{urlencode({**params, 'before': last})}")


def _local(target: str) -> str:
    """Only a path on this console: a login link cannot send people elsewhere."""
    if not target.startswith("/ui") or target.startswith("//") or "\\" in target:
        return "/ui"
    return target
