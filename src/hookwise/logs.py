"""The process log: one stderr handler, every line masked, libraries kept quiet.

Client libraries log on their own: httpx writes each request's URL at INFO (query
string included), urllib3 and slack-sdk their failures, uvicorn its tracebacks. All of
them propagate to the root handler set up here, whose formatter masks every secret
hookwise knows in the finished line, exception and stack included. Below WARNING,
the libraries' lines are noise at the rate webhooks arrive, so they are dropped.
"""

from __future__ import annotations

import logging
import sys

from hookwise import secrets

FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
QUIET = (
    "httpx",
    "httpcore",
    "aiohttp",
    "urllib3",
    "requests",
    "slack_sdk",
    "docker",
    "jira",
    "jenkins",
)


class MaskingFormatter(logging.Formatter):
    """Formats as usual, then masks: covers the message, its arguments and tracebacks."""

    def format(self, record: logging.LogRecord) -> str:
        return secrets.mask(super().format(record))


def configure(level: int = logging.INFO) -> None:
    """Send every logger's lines through one masked stderr handler."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(MaskingFormatter(FORMAT))
    root = logging.getLogger()
    for old in list(root.handlers):
        root.removeHandler(old)
    root.addHandler(handler)
    root.setLevel(level)
    for name in QUIET:
        logging.getLogger(name).setLevel(logging.WARNING)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        uvicorn_logger = logging.getLogger(name)
        uvicorn_logger.handlers.clear()
        uvicorn_logger.propagate = True
