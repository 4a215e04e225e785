"""`http.post`: call any HTTP endpoint, through the egress guard."""

from __future__ import annotations

import json as jsonlib
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hookwise.actions import ActionContext, ActionSpec
from hookwise.durations import Duration
from hookwise.egress import shared_client
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
    content = params.body.encode() if params.body is not None else None
    client = shared_client(context.egress)
    try:
        request = client.build_request(
            "POST",
            params.url,
            json=params.json_body,
            content=content,
            headers=headers,
            timeout=params.timeout,
        )
        response = await client.send(request, stream=True)
        try:
            kept = await _read_start(response)
        finally:
            await response.aclose()
    except httpx.TimeoutException as exc:
        raise RetryLater(f"POST {params.url} timed out after {params.timeout:g}s") from exc
    except httpx.TransportError as exc:
        raise RetryLater(f"POST {params.url} failed to connect: {exc}") from exc
    context.log.info(f"POST {params.url} -> {response.status_code}")
    return _outcome(params.url, response, kept)


async def _read_start(response: httpx.Response) -> bytes:
    """At most MAX_BODY_KEPT bytes of the answer: a downstream decides its size, not us."""
    chunks, size = [], 0
    async for chunk in response.aiter_bytes():
        chunks.append(chunk)
        size += len(chunk)
        if size >= MAX_BODY_KEPT:
            break
    return b"".join(chunks)[:MAX_BODY_KEPT]


def _outcome(url: str, response: httpx.Response, kept: bytes) -> dict[str, Any]:
    status = response.status_code
    text = kept.decode(response.encoding or "utf-8", errors="replace")
    summary = f"POST {url} answered {status}: {excerpt(text, 300)}"
    if status == 429 or status >= 500:
        raise RetryLater(summary, delay=retry_after(response.headers.get("retry-after")))
    if status >= 400:
        raise PermanentFailure(summary)
    return {"status": status, "headers": dict(response.headers), "body": _body(response, text)}


def _body(response: httpx.Response, text: str) -> Any:
    if response.headers.get("content-type", "").startswith("application/json"):
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
