"""What every console page shares: who is asking, cookies, CSRF, and rendering.

Pages are Jinja2 templates shipped in the package, autoescaped (payloads are hostile
text), rendered on a worker thread so a large event never stalls the event loop.
"""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any
from urllib.parse import parse_qsl, quote, urlsplit

from jinja2 import Environment, PackageLoader, select_autoescape
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import HTMLResponse, RedirectResponse, Response

from hookwise.access import LOCAL, Access, Identity
from hookwise.service import Hookwise
from hookwise.status import CANCELLABLE

COOKIE = "hookwise_session"
NOTE = "hookwise_note"
MAX_FORM = 64 * 1024
Handler = Callable[[Request, Identity], Awaitable[Response]]


class Refused(Exception):
    """A request the console turns down with a page saying why (`status`, `text`)."""

    def __init__(self, status: int, text: str) -> None:
        super().__init__(text)
        self.status = status


def _pretty(value: Any) -> str:
    return json.dumps(value, indent=2, ensure_ascii=False, default=str)


class Web:
    def __init__(self, service: Hookwise, access: Access) -> None:
        self.service = service
        self.access = access
        self.templates = Environment(
            loader=PackageLoader("hookwise.console"),
            autoescape=select_autoescape(default=True),
            trim_blocks=True,
            lstrip_blocks=True,
        )
        self.templates.filters["tojson_pretty"] = _pretty

    # -- who ---------------------------------------------------------------------------

    def who(self, request: Request) -> Identity | None:
        if self.access.open:
            return LOCAL
        cookie = request.cookies.get(COOKIE)
        session = self.access.from_session(cookie) if cookie else None
        if session is not None:
            return session
        found = self.access.bearer(request.headers.get("authorization", ""))
        return found if found is not None and found.name else None

    def page(self, handler: Handler) -> Callable[[Request], Awaitable[Response]]:
        """A page for anyone logged in; others are sent to log in first."""

        async def shown(request: Request) -> Response:
            who = self.who(request)
            if who is None:
                target = request.url.path + (f"?{request.url.query}" if request.url.query else "")
                return RedirectResponse(self.url(request, f"/ui/login?next={quote(target)}"), 303)
            fresh = self.access.open and not request.cookies.get(COOKIE)
            if fresh:  # without tokens the forms are still tied to a cookie, for CSRF
                request.state.session = self.access.local_session()
            try:
                response = await handler(request, who)
            except Refused as exc:
                response = await self.message(request, who, exc.status, str(exc))
            if fresh:
                self.set_cookie(request, response, COOKIE, request.state.session)
            return response

        return shown

    def form(
        self, handler: Handler, *, operator: bool = True
    ) -> Callable[[Request], Awaitable[Response]]:
        """A form post with this session's CSRF token, from this site; by an operator
        unless `operator` is False (the dry run, logging out)."""

        async def posted(request: Request) -> Response:
            who = self.who(request)
            if who is None:
                return await self.message(request, None, 401, "Log in first.")
            try:
                self._check_origin(request)
                fields = await self.fields(request)
                cookie = request.cookies.get(COOKIE, "")
                if not self.access.csrf_ok(cookie, fields.get("csrf", "")):
                    raise Refused(
                        403, "This form has expired or came from another site: reload the page."
                    )
                if operator and not who.operates:
                    raise Refused(403, f"{who.name} is a viewer: only operators may do this.")
                request.state.fields = fields
                return await handler(request, who)
            except Refused as exc:
                return await self.message(request, who, exc.status, str(exc))

        return posted

    @staticmethod
    def _check_origin(request: Request) -> None:
        """Browsers say where a post comes from; one from another site is refused."""
        origin = request.headers.get("origin")
        if origin and origin != "null" and urlsplit(origin).netloc != request.url.netloc:
            raise Refused(403, "This form was posted from another site.")

    @staticmethod
    async def fields(request: Request) -> dict[str, str]:
        body = b""
        async for chunk in request.stream():
            body += chunk
            if len(body) > MAX_FORM:
                raise Refused(413, f"The form is over {MAX_FORM // 1024} KiB.")
        try:
            return dict(parse_qsl(body.decode(), keep_blank_values=True))
        except UnicodeDecodeError:
            raise Refused(400, "The form is not UTF-8.") from None

    # -- rendering ---------------------------------------------------------------------

    @staticmethod
    def url(request: Request, path: str) -> str:
        return str(request.scope.get("root_path", "")) + path

    async def render(
        self, request: Request, who: Identity | None, name: str, status: int = 200, **values: Any
    ) -> HTMLResponse:
        cookie = request.cookies.get(COOKIE) or getattr(request.state, "session", "")
        context = {
            "who": who,
            "csrf": self.access.csrf(cookie) if cookie else "",
            "can_logout": self.access.sessions and bool(request.cookies.get(COOKIE)),
            "url": lambda path: self.url(request, path),
            "note": request.cookies.get(NOTE),
            "cancellable": [str(status) for status in CANCELLABLE],
            "refresh": None,
            **values,
        }
        html = await run_in_threadpool(self.templates.get_template(name).render, context)
        response = HTMLResponse(html, status_code=status)
        response.headers["content-security-policy"] = (
            "default-src 'none'; style-src 'self'; img-src 'self'; form-action 'self'; "
            "frame-ancestors 'none'; base-uri 'none'"
        )
        response.headers["x-content-type-options"] = "nosniff"
        response.headers["referrer-policy"] = "same-origin"
        response.headers["cache-control"] = "no-store"
        if context["note"]:
            response.delete_cookie(NOTE, path="/ui")
        return response

    async def message(
        self, request: Request, who: Identity | None, status: int, text: str
    ) -> HTMLResponse:
        heading = {401: "Not logged in", 403: "Not allowed", 404: "Not found"}.get(status, "Sorry")
        return await self.render(request, who, "message.html", status, heading=heading, text=text)

    def done(self, request: Request, path: str, note: str) -> RedirectResponse:
        """After a post: back to a page, which shows `note` once (never in the URL)."""
        response = RedirectResponse(self.url(request, path), 303)
        self.set_cookie(request, response, NOTE, note[:500], max_age=60)
        return response

    @staticmethod
    def set_cookie(
        request: Request, response: Response, name: str, value: str, max_age: int | None = None
    ) -> None:
        response.set_cookie(
            name,
            value,
            max_age=max_age,
            path="/ui",
            httponly=True,
            samesite="strict",
            secure=request.url.scheme == "https",
        )
