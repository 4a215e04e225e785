"""Every error hookwise raises on purpose, as one tree:

HookwiseError
├── ConfigError            a config or rule file is wrong (carries every Problem found)
├── GlobError              a glob does not compile (a ValueError: pydantic positions it)
├── RequestError           an incoming request is refused
│   ├── UnknownSource      no source of that name is configured (HTTP 404)
│   ├── VerificationError  bad or missing credentials (HTTP 401)
│   ├── PayloadError       not JSON, or not an event this source understands (HTTP 400)
│   └── BodyTooLarge       the body is over the limit (HTTP 413)
├── RenderError            a template failed, at run time (also a ValueError)
├── ActionError            an action did not succeed
│   ├── RetryLater         transient: try again, optionally after `delay` seconds
│   ├── PermanentFailure   retrying cannot help (auth, validation, not found)
│   │   └── ResponseTooLarge   a downstream's answer is over the limit
│   └── SkipRun            nothing to do: the run ends `skipped` (a version policy said no)
├── EgressDenied           an outgoing request would reach a forbidden address
│   └── RedirectRefused    a downstream answered with a redirect
└── StoreError             the store cannot do what was asked
"""

from __future__ import annotations

from dataclasses import dataclass


class HookwiseError(Exception):
    """Base of every error hookwise raises deliberately."""


@dataclass(frozen=True)
class Problem:
    """One mistake in a file, positioned so an editor can jump to it."""

    file: str
    line: int
    col: int
    message: str
    level: str = "error"

    def __str__(self) -> str:
        return f"{self.file}:{self.line}:{self.col}: [{self.level}] {self.message}"


class ConfigError(HookwiseError):
    """Raised with all problems at once, so a user fixes a file in one pass."""

    def __init__(self, problems: list[Problem]) -> None:
        self.problems = sorted(problems, key=lambda p: (p.file, p.line, p.col))
        super().__init__("\n".join(str(p) for p in problems))


class GlobError(HookwiseError, ValueError):
    """Raised while a rule loads, where pydantic turns it into a positioned Problem."""


class RequestError(HookwiseError):
    status_code = 400
    reason = "bad_request"


class UnknownSource(RequestError):
    status_code = 404
    reason = "unknown_source"


class VerificationError(RequestError):
    status_code = 401
    reason = "unauthorized"


class PayloadError(RequestError):
    status_code = 400
    reason = "bad_payload"


class BodyTooLarge(RequestError):
    status_code = 413
    reason = "too_large"


class RenderError(HookwiseError, ValueError):
    """A template failed; `where` says which string, for the rule author."""

    def __init__(self, where: str, template: str, reason: str) -> None:
        self.where = where
        self.template = template
        super().__init__(f"{where}: template {template!r} failed: {reason}")


class ActionError(HookwiseError):
    """Base for the outcomes an action may signal explicitly."""


class RetryLater(ActionError):
    """Transient failure; `delay` (seconds) overrides the backoff, e.g. from Retry-After."""

    def __init__(self, message: str, delay: float | None = None) -> None:
        super().__init__(message)
        self.delay = delay


class SkipRun(ActionError):
    """The action found nothing it should do, e.g. the tag is not newer than the one
    deployed: the run ends `skipped` with this reason, neither failed nor retried."""


class PermanentFailure(ActionError):
    """Retrying would fail the same way: the run goes `dead` at once."""


class ResponseTooLarge(PermanentFailure):
    """A downstream's answer was longer than a client may read; nothing of it is kept."""


class EgressDenied(HookwiseError):
    """An outgoing connection was refused by the egress policy."""


class RedirectRefused(EgressDenied):
    """A downstream answered with a redirect; hookwise never follows one."""


class StoreError(HookwiseError):
    """The store could not persist or read what was asked."""
