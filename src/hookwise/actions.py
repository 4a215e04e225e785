"""What an action plugin provides (ActionSpec) and what it receives (ActionContext)."""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from hookwise import secrets
from hookwise.egress import EgressPolicy

if TYPE_CHECKING:
    from hookwise.event import Event

_logger = logging.getLogger("hookwise.action")


@dataclass(frozen=True)
class ActionSpec:
    """An action: its name in rules (`uses:`), its parameter schema, and the callable.

    `run(params, context)` may be sync (run in a thread, so blocking clients are fine)
    or async. It returns a JSON-able output, or raises RetryLater / PermanentFailure.
    """

    name: str
    params: type[BaseModel]
    run: Callable[[Any, ActionContext], Any]
    description: str = ""
    integration: str | None = None


@dataclass(frozen=True)
class IntegrationSpec:
    """Connection settings shared by a plugin's actions (`integrations.<name>` in the config).

    A rule's action may override any of them with `connection:`; the merged settings are
    validated by `settings` and handed to the action as `context.settings`.
    """

    name: str
    settings: type[BaseModel]
    description: str = ""


def action_label(action_id: str | None, uses: str, step: int) -> str:
    """How history and `steps` name an action: its `id`, else `uses#position` (from 1)."""
    return action_id or f"{uses}#{step + 1}"


class RunLog:
    """Log lines that land in the run's history, and in the process log too.

    Info lines go to the process log at DEBUG: the history keeps them, and an INFO line
    per run would cost more than the run at a thousand events a second. Warnings and
    errors go at their own level.

    Every secret hookwise knows, and the run's own `${VAR}` values, are masked before
    either sees them.
    """

    def __init__(self, prefix: str, also: Sequence[str] = ()) -> None:
        self.prefix = prefix
        self.also = also
        self.lines: list[dict[str, Any]] = []

    def _write(self, level: int, message: str) -> None:
        message = secrets.known.mask(message, self.also)
        self.lines.append(
            {"at": time.time(), "level": logging.getLevelName(level).lower(), "message": message}
        )
        shown_at = level if level >= logging.WARNING else logging.DEBUG
        _logger.log(shown_at, "%s: %s", self.prefix, message)

    def info(self, message: str) -> None:
        self._write(logging.INFO, message)

    def warning(self, message: str) -> None:
        self._write(logging.WARNING, message)

    def error(self, message: str) -> None:
        self._write(logging.ERROR, message)


@dataclass
class ActionContext:
    """Everything an action may need besides its parameters.

    `idempotency_key` is the same for every attempt of one action in one run: pass it
    to downstreams that deduplicate, so at-least-once delivery does not act twice.
    """

    event: Event
    rule: str
    action_id: str
    attempt: int
    idempotency_key: str
    # Where the action may connect: hand it to egress.guarded_client or
    # egress.guard_session, which enforce it at connect time.
    egress: EgressPolicy
    log: RunLog = field(default_factory=lambda: RunLog("action"))
    settings: Any = None
    # Seconds this attempt may take before hookwise stops waiting for it: an action that
    # polls (a build, a deploy) should finish or give up before then.
    timeout: float | None = None
    # True when an earlier attempt of this action may have reached the downstream (it
    # failed, was lost with its worker, or was interrupted by a shutdown): look before
    # acting again where the downstream cannot deduplicate by itself.
    resumed: bool = False
    # The console's page for this run, when `public_url` is set: link to it from what
    # the action creates (a ticket, a message) so people can follow it back.
    run_url: str | None = None
