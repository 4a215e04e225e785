"""The egress guard, handed to the client libraries plugins use.

jira and python-jenkins talk through a `requests.Session`; slack-sdk through urllib.
Checking their URL once is not enough: they follow redirects and connect wherever DNS
says. So their requests are sent through hookwise's own guarded transport instead:

- `guard_session(session, policy, origin)` mounts `GuardedAdapter` on a requests
  session (the library's own, so its auth, headers and cookies still apply);
- `GuardedWebClient` and `GuardedWebhookClient` are slack-sdk's clients with their
  one urllib call replaced by the guarded transport.

Either way the library's code and error handling run unchanged, every connection
passes `connect.GuardedSyncBackend`, and every answer `answers.bounded`.
"""

from __future__ import annotations

import email.message
import io
import types
import urllib.request
from typing import Any

import httpx
import requests
from requests.adapters import BaseAdapter
from requests.cookies import extract_cookies_to_jar
from requests.structures import CaseInsensitiveDict
from requests.utils import get_encoding_from_headers
from slack_sdk import WebClient
from slack_sdk.web.file_upload_v2_result import FileUploadV2Result
from slack_sdk.webhook import WebhookClient, WebhookResponse

from hookwise.egress.policy import EgressPolicy
from hookwise.egress.transports import shared_sync_client


def _timeout(value: Any) -> httpx.Timeout:
    """requests' timeout (seconds, or a (connect, read) pair) as httpx spells it."""
    if isinstance(value, tuple):
        connect, read = value
        return httpx.Timeout(read, connect=connect)
    return httpx.Timeout(value)


class _Body(io.BytesIO):
    """`response.raw`: the body, plus the header message requests reads cookies from."""

    def __init__(self, content: bytes, headers: httpx.Headers) -> None:
        super().__init__(content)
        message = email.message.Message()
        for name, value in headers.multi_items():
            message[name] = value
        self._original_response = types.SimpleNamespace(msg=message)


class GuardedAdapter(BaseAdapter):
    """A requests transport adapter that sends through the guarded httpx client."""

    def __init__(self, policy: EgressPolicy, origin: str | None = None) -> None:
        super().__init__()
        self.client = shared_sync_client(policy, origin)

    def send(
        self,
        request: requests.PreparedRequest,
        stream: bool = False,
        timeout: Any = None,
        verify: Any = True,
        cert: Any = None,
        proxies: Any = None,
    ) -> requests.Response:
        """Proxies and `verify=False` are ignored: TLS is always verified, never proxied."""
        outgoing = self.client.build_request(
            request.method or "GET",
            request.url or "",
            headers=dict(request.headers),
            content=request.body,
            timeout=_timeout(timeout) if timeout is not None else httpx.USE_CLIENT_DEFAULT,
        )
        try:
            answer = self.client.send(outgoing)  # read whole, up to the transport's limit
            content = answer.content
        except httpx.ConnectTimeout as exc:
            raise requests.ConnectTimeout(exc, request=request) from exc
        except httpx.TimeoutException as exc:
            raise requests.ReadTimeout(exc, request=request) from exc
        except httpx.TransportError as exc:
            raise requests.ConnectionError(exc, request=request) from exc
        return self._response(request, answer, content)

    def _response(
        self, request: requests.PreparedRequest, answer: httpx.Response, content: bytes
    ) -> requests.Response:
        response = requests.Response()
        response.status_code = answer.status_code
        response.headers = CaseInsensitiveDict(answer.headers)
        response.raw = _Body(content, answer.headers)
        response.encoding = get_encoding_from_headers(response.headers)
        response.reason = answer.reason_phrase
        response.url = request.url or ""
        response.request = request
        response.connection = self  # type: ignore[assignment]  # requests types it HTTPAdapter
        extract_cookies_to_jar(response.cookies, request, response.raw)  # type: ignore[no-untyped-call]
        return response

    def close(self) -> None:
        """The connections are shared with other sessions to the same origin: kept."""


def guard_session(
    session: requests.Session, policy: EgressPolicy, origin: str | None = None
) -> requests.Session:
    """Send all of `session`'s requests through the guard; returns the same session.

    Its other adapters are removed, so no URL scheme bypasses the guard, and the
    environment's proxies and CA settings no longer apply.
    """
    adapter = GuardedAdapter(policy, origin)
    for old in session.adapters.values():
        old.close()
    session.adapters.clear()
    session.mount("https://", adapter)
    session.mount("http://", adapter)
    session.trust_env = False
    session.max_redirects = 0
    return session


def _headers(answer: httpx.Response) -> dict[str, str]:
    """As slack-sdk builds them from urllib: both spellings of Retry-After."""
    headers = dict(answer.headers)
    if "retry-after" in headers:
        headers["Retry-After"] = headers["retry-after"]
    return headers


class GuardedWebClient(WebClient):
    """slack-sdk's Web API client; its requests go through the egress guard.

    Overrides the one method that opens the connection. Everything slack-sdk does
    around it (building the call, parsing, SlackApiError) is unchanged.
    """

    def __init__(self, *, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self._guarded = shared_sync_client(policy, origin=self.base_url)
        self._policy = policy

    def _perform_urllib_http_request_internal(
        self, url: str, req: urllib.request.Request
    ) -> dict[str, Any]:
        answer, text = _send(self._guarded, url, req, self.timeout)
        return {"status": answer.status_code, "headers": _headers(answer), "body": text}

    def _upload_file(self, *, url: str, data: bytes, timeout: int, **_: Any) -> Any:
        """`files_upload_v2` posts to a URL Slack hands out (another host): guarded too."""
        upload = urllib.request.Request(url, data=data, method="POST")
        client = shared_sync_client(self._policy)
        answer, text = _send(client, url, upload, timeout)
        return FileUploadV2Result(status=answer.status_code, body=text)


class GuardedWebhookClient(WebhookClient):
    """slack-sdk's incoming-webhook client, through the egress guard."""

    def __init__(self, url: str, *, policy: EgressPolicy, **kwargs: Any) -> None:
        super().__init__(url, **kwargs)
        self._guarded = shared_sync_client(policy, origin=url)

    def _perform_http_request_internal(
        self, url: str, req: urllib.request.Request
    ) -> WebhookResponse:
        answer, text = _send(self._guarded, url, req, self.timeout)
        return WebhookResponse(
            url=url, status_code=answer.status_code, body=text, headers=_headers(answer)
        )


def _send(
    client: httpx.Client, url: str, req: urllib.request.Request, timeout: float
) -> tuple[httpx.Response, str]:
    """The urllib request slack-sdk prepared, sent by the guarded client; with its text."""
    try:
        answer = client.send(
            client.build_request(
                req.get_method(),
                url,
                headers=dict(req.header_items()),
                content=req.data if isinstance(req.data, bytes) else None,  # slack-sdk: bytes
                timeout=timeout,
            )
        )
    except httpx.TimeoutException as exc:
        raise TimeoutError(f"no answer from {httpx.URL(url).host} in time") from exc
    except httpx.TransportError as exc:
        raise ConnectionError(f"cannot reach {httpx.URL(url).host}: {exc}") from exc
    return answer, answer.content.decode(answer.encoding or "utf-8", errors="replace")
