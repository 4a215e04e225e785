"""What operators do from the console, each a form post: retry (one, or every dead run
a filter picks), cancel, approve, reject, replay; the dry-run form; logging in and out.
The acting identity is the logged-in token's name, recorded as `via console`.
"""

from __future__ import annotations

from starlette.requests import Request
from starlette.responses import RedirectResponse, Response

from hookwise.access import Identity
from hookwise.console.pages import Pages, _local
from hookwise.console.web import COOKIE, Refused
from hookwise.errors import RequestError
from hookwise.queries import MAX_LIMIT, QueryError, run_query
from hookwise.service import Answer
from hookwise.sources import Delivery

VIA = "console"


class Forms(Pages):
    async def retry(self, request: Request, who: Identity) -> Response:
        fields = request.state.fields
        run_id = request.path_params["run_id"]
        from_start = fields.get("from_start") == "1"
        return self._answered(
            request,
            run_id,
            await self.service.retry(run_id, _name(who), VIA, from_start=from_start),
        )

    async def cancel(self, request: Request, who: Identity) -> Response:
        run_id = request.path_params["run_id"]
        reason = request.state.fields.get("reason") or None
        return self._answered(
            request, run_id, await self.service.cancel(run_id, _name(who), reason, VIA)
        )

    async def approve(self, request: Request, who: Identity) -> Response:
        run_id = request.path_params["run_id"]
        answer = await self.service.decide(run_id, _name(who), "approve", None, VIA)
        return self._answered(request, run_id, answer)

    async def reject(self, request: Request, who: Identity) -> Response:
        run_id = request.path_params["run_id"]
        reason = request.state.fields.get("reason", "").strip()
        if not reason:
            raise Refused(400, "Say why you reject it: the reason is shown to everyone.")
        answer = await self.service.decide(run_id, _name(who), "reject", reason, VIA)
        return self._answered(request, run_id, answer)

    async def replay(self, request: Request, who: Identity) -> Response:
        event_id = request.path_params["event_id"]
        runs = await self.service.replay(event_id)
        if runs is None:
            raise Refused(404, f"No event {event_id}.")
        note = f"Replayed under the current rules: {len(runs)} new run(s)."
        return self.done(request, f"/ui/events/{event_id}", note)

    async def retry_all(self, request: Request, who: Identity) -> Response:
        """First post: how many, and a confirmation. Second (`confirm`): retry them."""
        fields = request.state.fields
        picked = {
            name: fields[name]
            for name in ("rule", "source", "key", "since", "until")
            if fields.get(name)
        }
        from_start = fields.get("from_start") == "1"
        try:
            query = run_query({**picked, "status": "dead", "limit": str(MAX_LIMIT)})
        except QueryError as exc:
            raise Refused(400, f"Filter {exc}") from None
        if "confirm" not in fields:
            matched = len(await self.service.runs(query))
            return await self.render(
                request,
                who,
                "bulk.html",
                section="Runs",
                matched=matched,
                picked=picked,
                from_start=from_start,
            )
        answers = await self.service.retry_all(query, _name(who), VIA, from_start=from_start)
        done = sum(answer.ok for _, answer in answers)
        refused = [answer.message for _, answer in answers if not answer.ok]
        note = f"Retried {done} of {len(answers)} dead runs." + (
            f" Not retried: {'; '.join(refused[:3])}" if refused else ""
        )
        return self.done(request, "/ui/runs?status=dead", note)

    async def try_payload(self, request: Request, who: Identity) -> Response:
        """The dry run, on a pasted body: viewers may use it too, nothing is stored."""
        fields = request.state.fields
        tried = {key: fields.get(key, "") for key in ("source", "headers", "body")}
        headers: dict[str, str] = {}
        for line in tried["headers"].splitlines():
            name, sep, value = line.partition(":")
            if not line.strip():
                continue
            if not sep or not name.strip():
                return await self.rules_page(
                    request, who, 400, tried=tried, problem=f"Header {line!r}: write Name: value"
                )
            headers[name.strip().lower()] = value.strip()
        delivery = Delivery(headers, tried["body"].encode())
        try:
            report = await self.service.try_payload(tried["source"], delivery)
        except RequestError as exc:
            return await self.rules_page(
                request, who, 400, tried=tried, problem=f"Refused ({exc.reason}): {exc}"
            )
        return await self.rules_page(request, who, tried=tried, report=report)

    async def login(self, request: Request) -> Response:
        try:
            self._check_origin(request)
            fields = await self.fields(request)
        except Refused as exc:
            return await self.message(request, None, exc.status, str(exc))
        found = self.access.token(fields.get("token", ""))
        if found is None or found.name is None:
            why = (
                "That token is not one of `access` in hookwise.yaml."
                if found is None
                else "The shared api_token cannot log in: add a named token under `access`."
            )
            return await self.render(
                request,
                None,
                "login.html",
                401,
                next=_local(fields.get("next", "/ui")),
                problem=why,
            )
        response = RedirectResponse(self.url(request, _local(fields.get("next", "/ui"))), 303)
        self.set_cookie(request, response, COOKIE, self.access.session(found))
        return response

    async def logout(self, request: Request, who: Identity) -> Response:
        response = RedirectResponse(self.url(request, "/ui/login"), 303)
        response.delete_cookie(COOKIE, path="/ui")
        return response

    def _answered(self, request: Request, run_id: str, answer: Answer) -> Response:
        if answer.outcome == "unknown":
            raise Refused(404, answer.message)
        return self.done(request, f"/ui/runs/{run_id}", answer.message)


def _name(who: Identity) -> str:
    return who.name or "console"
