"""`POST /hooks/{source}`: read at most `max_body_bytes`, hand the raw bytes to the engine."""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING

from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse

from hookwise.errors import BodyTooLarge, RequestError, StoreError
from hookwise.sources import Delivery

if TYPE_CHECKING:
    from hookwise.service import Hookwise

log = logging.getLogger("hookwise.receiver")


async def read_body(request: Request, limit: int) -> bytes:
    """The body, refused as soon as it is known to exceed `limit`, never buffered whole."""
    declared = request.headers.get("content-length")
    if declared and declared.isascii() and declared.isdigit() and int(declared) > limit:
        raise BodyTooLarge
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise BodyTooLarge
        chunks.append(chunk)
    return b"".join(chunks)


def error(status: int, reason: str, message: str) -> JSONResponse:
    return JSONResponse({"error": message, "reason": reason}, status_code=status)


class Receiver:
    def __init__(self, service: Hookwise, max_body_bytes: int) -> None:
        self.service = service
        self.engine = service.engine
        self.metrics = service.metrics
        self.max_body_bytes = max_body_bytes

    async def handle(self, request: Request) -> JSONResponse:
        name = request.path_params["source"]
        try:
            bound = self.engine.source(name)
            body = await read_body(request, self.max_body_bytes)
            delivery = Delivery.from_raw(request.headers.raw, body, bound.credential_headers)
            results = await self.service.receive(name, delivery)
        except BodyTooLarge:
            return self._reject(name, 413, "too_large", f"body exceeds {self.max_body_bytes} bytes")
        except ClientDisconnect:
            # The sender hung up mid-body: nothing to store and nobody to answer; its
            # retry is a new delivery.
            return self._reject(name, 400, "disconnected", "the sender hung up before the end")
        except RequestError as exc:
            return self._reject(name, exc.status_code, exc.reason, str(exc))
        except StoreError as exc:
            log.error("could not persist an event from %s: %s", name, exc)
            return self._reject(name, 503, "store_unavailable", "cannot store events right now")
        except Exception:
            log.exception("processing a delivery to /hooks/%s failed; nothing was stored", name)
            message = "hookwise could not process this delivery; nothing was stored; see its log"
            return self._reject(name, 500, "internal_error", message)
        for result in results:
            self.metrics.events_accepted.labels(name, str(result.duplicate).lower()).inc()
        answers = [{"event_id": r.event_id, "duplicate": r.duplicate} for r in results]
        if len(answers) == 1:
            return JSONResponse(answers[0], status_code=202)
        return JSONResponse({"events": answers}, status_code=202)

    def _reject(self, name: str, status: int, reason: str, message: str) -> JSONResponse:
        known = name in self.engine.sources
        self.metrics.events_rejected.labels(name if known else "<unknown>", reason).inc()
        log.info("refused delivery to /hooks/%s: %s (%s)", name, reason, message)
        return error(status, reason, message)
