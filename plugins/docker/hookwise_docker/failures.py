"""Which engine and registry failures are worth retrying, and what to tell a person.

The engine reports registry problems in two ways: as an HTTP status of its own API
(Docker: 404 for an unknown image, 401/403 for refused credentials, 5xx otherwise), or,
once a pull has started streaming, as an `error` line whose text is the registry's
answer (Podman always does this). Both end up here, judged by status and by text.
"""

from __future__ import annotations

import re

import requests
from docker.errors import APIError, DockerException

from hookwise.plugin import ActionError, PermanentFailure, RetryLater, mask

# Checked in this order: the first pattern that matches decides.
_RETRY_FIRST = re.compile(r"toomanyrequests|too many requests|rate limit", re.I)
_CREDENTIALS = re.compile(
    r"unauthorized|authentication required|incorrect username or password|denied|forbidden"
    r"|no basic auth credentials",
    re.I,
)
_NOT_FOUND = re.compile(
    r"manifest unknown|not found|name unknown|repository does not exist|no such image"
    r"|no matching manifest|no image found",
    re.I,
)
_MISCONFIGURED = re.compile(
    r"invalid reference format|server gave http response to https client|x509|certificate",
    re.I,
)


def classify_text(
    what: str,
    text: str,
    status: int | None,
    missing: str = "repository or tag",
) -> ActionError:
    """A failure whose only evidence is the engine's message (and maybe its HTTP status).

    `missing` names what a 404 means at this step: a pull's repository or tag by default.
    """
    text = mask(text.strip())
    if _RETRY_FIRST.search(text):
        return RetryLater(f"{what}: the registry is rate limiting: {text}")
    if status in (401, 403) or _CREDENTIALS.search(text):
        return PermanentFailure(
            f"{what}: the registry refused the credentials: {text}; check "
            "integrations.docker registries (user, password or token, and its pull permission)"
        )
    if status == 404 or _NOT_FOUND.search(text):
        return PermanentFailure(f"{what}: {missing} not found: {text}")
    if _MISCONFIGURED.search(text):
        return PermanentFailure(
            f"{what}: {text}; check the image reference and the engine's registry settings "
            "(a plain-HTTP registry must be configured as insecure on the engine)"
        )
    if status is not None and 400 <= status < 500:
        return PermanentFailure(f"{what}: the engine refused the request ({status}): {text}")
    return RetryLater(f"{what}: {text}")


def classify(what: str, exc: Exception, missing: str = "repository or tag") -> ActionError:
    """Turn anything the docker SDK raised into RetryLater or PermanentFailure."""
    if isinstance(exc, ActionError):
        return exc
    if isinstance(exc, requests.Timeout):
        return RetryLater(f"{what}: the Docker engine did not answer in time ({exc})")
    if isinstance(exc, requests.ConnectionError):
        return RetryLater(f"{what}: lost the connection to the Docker engine ({exc})")
    if isinstance(exc, APIError):
        return classify_text(what, engine_message(exc), exc.status_code, missing)
    if isinstance(exc, DockerException):
        return PermanentFailure(f"{what}: {mask(str(exc))}")
    return RetryLater(f"{what}: {type(exc).__name__}: {mask(str(exc))}")


def engine_message(exc: APIError) -> str:
    """The engine's own words (its `message`), without the SDK's URL and status preamble."""
    return str(exc.explanation or exc)
