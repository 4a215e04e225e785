"""`http.post`: call any HTTP endpoint, through the egress guard."""

from __future__ import annotations

import json as jsonlib
from typing import Any

import aiohttp
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hookwise.actions import ActionContext, ActionSpec
from hookwise.durations import Duration
from hookwise.egress import read_bounded, shared_session
from hookwise.errors import PermanentFailure, RetryLater
from hookwise.hookspecs import hookimpl
from hookwise.retry import retry_after
from hookwise.secrets import excerpt

MAX_BODY_KEPT = 64 * 1024


class HttpPostParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: str = Field(description="http:// or https:// URL. Redirects are not followed.")
    json_body: Any = Field(default=None, alias="json", description="Sent as JSON.")
    body: str | None = Field(default=None, description="Sent as is, instead of `json`.")
    headers: dict[str, str] = Field(default_factory=dict)
    timeout: Duration = Field(default=10.0, description="Whole request timeout, e.g. 10s.")

    @field_validator("url")
    @classmethod
    def _http_only(cls, url: str) -> str:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"url must start with http:// or https://, got {url!r}")
        return url

    @model_validator(mode="after")
    def _one_body(self) -> HttpPostParams:
        if self.json_body is not None and self.body is not None:
            raise ValueError("give either `json` or `body`, not both")
        return self


async def http_post(params: HttpPostParams, context: ActionContext) -> dict[str, Any]:
    headers = {"Idempotency-Key": context.idempotency_key, **params.headers}
    data = _payload(params, headers)
    session = shared_session(context.egress)
    timeout = aiohttp.ClientTimeout(total=params.timeout)
    try:
        async with session.post(
            params.url, data=data, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            kept = await read_bounded(response, MAX_BODY_KEPT)
    except TimeoutError as exc:
        raise RetryLater(f"POST {params.url} timed out after {params.timeout:g}s") from exc
    except (aiohttp.InvalidURL, ValueError) as exc:
        raise PermanentFailure(f"POST {params.url} cannot be sent: {exc}") from exc
    except aiohttp.ClientConnectorError as exc:  # its own text drops the reason
        raise RetryLater(f"POST {params.url} failed to connect: {exc.os_error}") from exc
    except aiohttp.ClientError as exc:
        raise RetryLater(f"POST {params.url} failed: {exc or type(exc).__name__}") from exc
    context.log.info(f"POST {params.url} -> {response.status}")
    return _outcome(params.url, response, kept)


def _payload(params: HttpPostParams, headers: dict[str, str]) -> bytes | None:
    """The bytes to send; JSON as compact UTF-8, with its content type unless one is given."""
    if params.body is not None:
        return params.body.encode()
    if params.json_body is None:
        return None
    if not any(name.lower() == "content-type" for name in headers):
        headers["Content-Type"] = "application/json"
    try:
        text = jsonlib.dumps(
            params.json_body, ensure_ascii=False, separators=(",", ":"), allow_nan=False
        )
    except ValueError as exc:
        raise PermanentFailure(f"`json` cannot be sent as JSON: {exc}") from exc
    return text.encode()


def _outcome(url: str, response: aiohttp.ClientResponse, kept: bytes) -> dict[str, Any]:
    status = response.status
    text = kept.decode(response.charset or "utf-8", errors="replace")
    summary = f"POST {url} answered {status}: {excerpt(text, 300)}"
    if status == 429 or status >= 500:
        raise RetryLater(summary, delay=retry_after(response.headers.get("Retry-After")))
    if status >= 400:
        raise PermanentFailure(summary)
    return {"status": status, "headers": _headers(response), "body": _body(response, text)}


def _headers(response: aiohttp.ClientResponse) -> dict[str, str]:
    """Lower-case names, repeated ones joined; once the body is decoded here, the headers
    that described it as it was sent no longer apply."""
    names = {name.lower() for name in response.headers}
    if response.headers.get("Content-Encoding", "identity").strip().lower() != "identity":
        names -= {"content-encoding", "content-length"}
    return {name: ", ".join(response.headers.getall(name)) for name in sorted(names)}


def _body(response: aiohttp.ClientResponse, text: str) -> Any:
    if response.content_type == "application/json":
        try:
            return jsonlib.loads(text)
        except ValueError:
            return text
    return text


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="http.post",
            params=HttpPostParams,
            run=http_post,
            description="POST JSON or a body to a URL; 5xx, 429 and connection errors retry.",
        )
    ]
