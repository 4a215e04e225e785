"""The operator console at `/ui`: server-rendered pages over the service layer.

No JavaScript is needed and nothing is fetched from elsewhere, so it works on an
air-gapped network; the stylesheet ships in the package. `web` holds what pages
share (identity, cookies, CSRF, rendering), `pages` reads, `forms` acts.
"""

from __future__ import annotations

from starlette.routing import BaseRoute, Mount, Route
from starlette.staticfiles import StaticFiles

from hookwise.access import Access
from hookwise.console.forms import Forms
from hookwise.service import Hookwise


def console_routes(service: Hookwise, access: Access) -> list[BaseRoute]:
    ui = Forms(service, access)
    page, form = ui.page, ui.form
    return [
        Route("/ui", page(ui.overview), methods=["GET"]),
        Route("/ui/login", ui.show_login, methods=["GET"]),
        Route("/ui/login", ui.login, methods=["POST"]),
        Route("/ui/logout", form(ui.logout, operator=False), methods=["POST"]),
        Route("/ui/find", page(ui.find), methods=["GET"]),
        Route("/ui/events", page(ui.events), methods=["GET"]),
        Route("/ui/events/{event_id}", page(ui.event), methods=["GET"]),
        Route("/ui/events/{event_id}/replay", form(ui.replay), methods=["POST"]),
        Route("/ui/runs", page(ui.runs), methods=["GET"]),
        Route("/ui/runs/retry", form(ui.retry_all), methods=["POST"]),
        Route("/ui/runs/{run_id}", page(ui.run), methods=["GET"]),
        Route("/ui/runs/{run_id}/retry", form(ui.retry), methods=["POST"]),
        Route("/ui/runs/{run_id}/cancel", form(ui.cancel), methods=["POST"]),
        Route("/ui/runs/{run_id}/approve", form(ui.approve), methods=["POST"]),
        Route("/ui/runs/{run_id}/reject", form(ui.reject), methods=["POST"]),
        Route("/ui/rules", page(ui.rules), methods=["GET"]),
        Route("/ui/try", form(ui.try_payload, operator=False), methods=["POST"]),
        Mount("/ui/static", StaticFiles(packages=[("hookwise.console", "static")])),
    ]
