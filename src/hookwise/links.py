"""Addresses of the console's pages, for messages and tickets people click through from.

Only when `public_url` says where people reach this service: a link built from the
listening address would point at 127.0.0.1 for everyone else.
"""

from __future__ import annotations


class Links:
    def __init__(self, public_url: str | None) -> None:
        self.base = public_url.rstrip("/") if public_url else None

    def run(self, run_id: str) -> str | None:
        return f"{self.base}/ui/runs/{run_id}" if self.base else None

    def event(self, event_id: str) -> str | None:
        return f"{self.base}/ui/events/{event_id}" if self.base else None
