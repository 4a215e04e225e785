"""What a downstream's answer may do to hookwise: nothing, whatever the client library.

- A redirect (a 3xx with a Location) ends the request with `RedirectRefused`, naming the
  status and the target; no client follows it.
- The body is decoded here, not by httpx: gzip or deflate, one layer, in steps of 64 KiB,
  and never more than `MAX_RESPONSE_BYTES` of it, however well it compresses. A body of
  980 bytes can otherwise decode to gigabytes before anyone counts.
- Any other content coding is refused: hookwise asks for `gzip, deflate` only.
"""

from __future__ import annotations

import zlib
from collections.abc import AsyncIterator, Iterator
from urllib.parse import urlsplit

import httpx

from hookwise.errors import PermanentFailure, RedirectRefused, ResponseTooLarge

REDIRECTS = frozenset({301, 302, 303, 307, 308})
DEFAULT_PORTS = {"http": 80, "https": 443}
MAX_RESPONSE_BYTES = 32 * 1024 * 1024
ACCEPTED_ENCODINGS = "gzip, deflate"
STEP = 64 * 1024
# zlib window bits: gzip framing, or zlib's own (what servers send as "deflate").
WBITS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def origin_of(url: str | httpx.URL) -> tuple[str, str, int]:
    """(scheme, host, port), the host as it goes on the wire (IDNA), port defaulted."""
    parsed = httpx.URL(str(url))
    scheme = parsed.scheme.lower()
    host = parsed.raw_host.decode("ascii").lower().rstrip(".")
    return scheme, host, parsed.port or DEFAULT_PORTS.get(scheme, 0)


def shown(url: httpx.URL | str) -> str:
    """A URL for messages: no user info, no query (either may hold a secret)."""
    parts = urlsplit(str(url))
    host = parts.hostname or ""
    port = f":{parts.port}" if parts.port else ""
    return f"{parts.scheme}://{host}{port}{parts.path}"


def refuse_redirect(request: httpx.Request, response: httpx.Response) -> None:
    refusal = redirect_refusal(
        request.method, request.url, response.status_code, response.headers.get("location")
    )
    if refusal is not None:
        raise refusal


def redirect_refusal(
    method: str, url: str | httpx.URL, status: int, target: str | None
) -> RedirectRefused | None:
    """The error for an answer that redirects, naming status and target; None otherwise."""
    if status not in REDIRECTS or target is None:
        return None
    try:
        absolute = httpx.URL(str(url)).join(target)
        # Another host's path may echo ours, and ours may be a secret (a webhook URL).
        where = shown(absolute)
        if origin_of(absolute) != origin_of(url):
            scheme, host, port = origin_of(absolute)
            where = f"{scheme}://{host}:{port}/…"
    except (httpx.InvalidURL, UnicodeError, ValueError):
        where = "a Location that is not a URL"
    return RedirectRefused(
        f"{method} {shown(url)} answered {status}, a redirect "
        f"to {where}; redirects are never followed: use the final URL"
    )


def _decoder(request: httpx.Request, response: httpx.Response) -> zlib._Decompress | None:
    return decoder_for(request.method, request.url, response.headers.get("content-encoding", ""))


def decoder_for(method: str, url: str | httpx.URL, coding: str) -> zlib._Decompress | None:
    """What decodes a body sent with this content-encoding; None for identity."""
    coding = coding.strip().lower()
    if coding in ("", "identity"):
        return None
    if coding not in WBITS:
        raise PermanentFailure(
            f"{method} {shown(url)} answered with content-encoding "
            f"{coding[:40]!r}; hookwise reads identity, gzip or deflate, one layer"
        )
    return zlib.decompressobj(WBITS[coding])


def decoded_pieces(decoder: zlib._Decompress | None, chunk: bytes) -> Iterator[bytes]:
    """What one network chunk decodes to, a step at a time."""
    if decoder is None:
        yield chunk
        return
    data = chunk
    while data:
        yield decoder.decompress(data, STEP)
        data = decoder.unconsumed_tail


class _Counter:
    def __init__(self, request: httpx.Request, limit: int) -> None:
        self.request = request
        self.limit = limit
        self.total = 0

    def add(self, piece: bytes) -> bytes:
        self.total += len(piece)
        if self.total > self.limit:
            raise ResponseTooLarge(
                f"{self.request.method} {shown(self.request.url)}: the answer is longer than "
                f"{self.limit} bytes; it was not read"
            )
        return piece


class _Bounded(httpx.SyncByteStream):
    def __init__(self, raw: httpx.SyncByteStream, decoder: zlib._Decompress | None,
                 counter: _Counter) -> None:  # fmt: skip
        self.raw, self.decoder, self.counter = raw, decoder, counter

    def __iter__(self) -> Iterator[bytes]:
        for chunk in self.raw:
            for piece in decoded_pieces(self.decoder, chunk):
                yield self.counter.add(piece)

    def close(self) -> None:
        self.raw.close()


class _AsyncBounded(httpx.AsyncByteStream):
    def __init__(self, raw: httpx.AsyncByteStream, decoder: zlib._Decompress | None,
                 counter: _Counter) -> None:  # fmt: skip
        self.raw, self.decoder, self.counter = raw, decoder, counter

    async def __aiter__(self) -> AsyncIterator[bytes]:
        async for chunk in self.raw:
            for piece in decoded_pieces(self.decoder, chunk):
                yield self.counter.add(piece)

    async def aclose(self) -> None:
        await self.raw.aclose()


def _without_coding(response: httpx.Response) -> list[tuple[bytes, bytes]]:
    """The headers, minus those that describe the body as it was on the wire."""
    dropped = {b"content-encoding", b"content-length"}
    return [(k, v) for k, v in response.headers.raw if k.lower() not in dropped]


def bounded(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """The answer with its body decoded here and capped (sync transports)."""
    decoder = _decoder(request, response)
    assert isinstance(response.stream, httpx.SyncByteStream)
    stream = _Bounded(response.stream, decoder, _Counter(request, MAX_RESPONSE_BYTES))
    return httpx.Response(
        response.status_code,
        headers=_without_coding(response) if decoder else response.headers.raw,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )


def async_bounded(request: httpx.Request, response: httpx.Response) -> httpx.Response:
    """The same for async transports."""
    decoder = _decoder(request, response)
    assert isinstance(response.stream, httpx.AsyncByteStream)
    stream = _AsyncBounded(response.stream, decoder, _Counter(request, MAX_RESPONSE_BYTES))
    return httpx.Response(
        response.status_code,
        headers=_without_coding(response) if decoder else response.headers.raw,
        stream=stream,
        extensions=response.extensions,
        request=request,
    )
