"""Offering deliveries over loopback HTTP, and what came back.

`offer` is open loop: request n is due at start + n/rate whether or not earlier ones
were answered, as webhooks arrive in production; a slow server shows up as latency
and a lower achieved rate, not as a politely slower client. `saturate` is closed
loop (each connection sends its next request when the last is answered) and finds
the most a server accepts. Latency runs from the moment a request is handed to the
client until its answer is read; `client_lag` says how late the client was in
handing it over, so a client that could not keep up is visible rather than mistaken
for a slow server. The client is `bench.wire`, lean enough to offer 1,000 requests/s
with CPU to spare.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import time
from collections.abc import Awaitable, Callable, Iterator
from dataclasses import dataclass
from typing import Any, TypeVar

from bench.stats import percentile
from bench.wire import Pool
from bench.workload import Request

T = TypeVar("T")
CONNECTIONS = 64  # kept alive, as a busy sender keeps them
FRESH_CONNECTIONS = 16  # at once, when each request opens its own
SATURATING_SENDERS = 32


@dataclass(frozen=True)
class Outcome:
    status: int  # 0: no answer (connection refused, reset or closed)
    due: float  # time.monotonic() the request was scheduled for
    sent: float
    done: float
    event_id: str | None = None  # probes only: from the 202's body


async def _send(pool: Pool, request: Request, due: float) -> Outcome:
    sent = time.monotonic()
    try:
        status, body = await pool.post(request.body, request.headers)
    except (OSError, EOFError, ValueError):  # IncompleteReadError is an EOFError
        return Outcome(0, due, sent, time.monotonic())
    done = time.monotonic()
    event_id = json.loads(body).get("event_id") if request.probe and status == 202 else None
    return Outcome(status, due, sent, done, event_id)


async def offer(
    url: str, requests: list[Request], rate: float, keepalive: bool = True
) -> list[Outcome]:
    """Send `requests` at `rate` per second, open loop; outcomes in sending order.

    `keepalive=False` opens a connection per request, as a sender of occasional
    webhooks does.
    """
    pool = Pool(url, CONNECTIONS if keepalive else FRESH_CONNECTIONS, keepalive)
    try:
        start = time.monotonic() + 0.05
        tasks = []
        for number, request in enumerate(requests):
            due = start + number / rate
            await asyncio.sleep(max(0.0, due - time.monotonic()))
            tasks.append(asyncio.create_task(_send(pool, request, due)))
        return list(await asyncio.gather(*tasks))
    finally:
        await pool.close()


async def saturate(url: str, make: Callable[[], Request], seconds: float) -> list[Outcome]:
    """SATURATING_SENDERS back to back for `seconds`: the most the server accepts."""
    pool = Pool(url, SATURATING_SENDERS)
    deadline = time.monotonic() + seconds
    outcomes: list[Outcome] = []

    async def sender() -> None:
        while (now := time.monotonic()) < deadline:
            outcomes.append(await _send(pool, make(), now))

    try:
        await asyncio.gather(*(sender() for _ in range(SATURATING_SENDERS)))
    finally:
        await pool.close()
    return outcomes


def summarize(outcomes: list[Outcome], offered_rate: float | None = None) -> dict[str, Any]:
    """Achieved rate (202s per second of the whole phase), latency and client lag in ms."""
    accepted = [o for o in outcomes if o.status == 202]
    began = min((o.due for o in outcomes), default=0.0)
    ended = max((o.done for o in outcomes), default=0.0)
    latencies = [(o.done - o.sent) * 1000 for o in accepted]
    refused: dict[str, int] = {}
    for outcome in outcomes:
        if outcome.status != 202:
            refused[str(outcome.status)] = refused.get(str(outcome.status), 0) + 1
    return {
        "offered_per_s": offered_rate,
        "sent": len(outcomes),
        "accepted": len(accepted),
        "refused": refused,
        "seconds": round(ended - began, 3),
        "achieved_per_s": round(len(accepted) / (ended - began), 1) if ended > began else 0.0,
        "p50_ms": percentile(latencies, 50),
        "p99_ms": percentile(latencies, 99),
        "max_ms": round(max(latencies), 2) if latencies else None,
        "client_lag_p99_ms": percentile([(o.sent - o.due) * 1000 for o in outcomes], 99),
    }


@contextlib.contextmanager
def _cpu_of(seconds_used: Callable[[], float]) -> Iterator[dict[str, float]]:
    found: dict[str, float] = {}
    cpu, wall = seconds_used(), time.monotonic()
    yield found
    found["percent"] = round(100 * (seconds_used() - cpu) / max(1e-9, time.monotonic() - wall), 1)


async def with_cpu(server: Callable[[], float], work: Awaitable[T]) -> tuple[T, dict[str, float]]:
    """`work`'s result, and the CPU the server and this client used meanwhile, in % of a core.

    A server short of its rate at low CPU is waiting on something; a client near 100%
    cannot offer more.
    """
    with _cpu_of(server) as theirs, _cpu_of(time.process_time) as ours:
        result = await work
    return result, {"server_cpu_percent": theirs["percent"], "client_cpu_percent": ours["percent"]}
