"""Section (b): from the 202 to the action starting, idle and under load.

A probe is a delivery only the probe rule matches; its run's `http.post` calls the
sink. Two delays are measured from the moment the client read the probe's 202:

- `start`: until the attempt started, as hookwise records it in the run's history
  (`started_at`, read back through the API, in milliseconds of wall-clock time);
- `sink`: until the request reached the sink (see `bench.sink`), which adds what
  `http.post` does before its request is on the wire.

Either can be negative: hookwise wakes its worker when the event is committed,
before the 202 has travelled back, so a fast worker can start before the client
reads it. Probes use a new connection each, like a sender of occasional webhooks.
"""

from __future__ import annotations

import asyncio
import datetime
import time
from collections.abc import Callable
from typing import Any

import httpx

from bench import load
from bench.servers import Process
from bench.stats import percentile
from bench.workload import Traffic

WARMUP_PROBES = 3
SETTLE_SECONDS = 30.0


async def _poll(
    client: httpx.AsyncClient, url: str, ready: Callable[[Any], bool], deadline: float
) -> Any:
    """GET `url` (JSON) until `ready` says so or the deadline passes; the last answer."""
    while True:
        response = await client.get(url)
        found = response.json() if response.status_code == 200 else None
        if ready(found) or time.monotonic() > deadline:
            return found
        await asyncio.sleep(0.2)


def _started_at(shown: Any) -> float | None:
    """When the probe's first attempt started (epoch seconds), from `GET /api/events/ID`."""
    history = [h for run in (shown or {}).get("runs", []) for h in run.get("history", [])]
    if not history:
        return None
    return datetime.datetime.fromisoformat(history[0]["started_at"]).timestamp()


def _spread(values: list[float]) -> dict[str, float | None]:
    return {
        "p50_ms": percentile(values, 50),
        "p99_ms": percentile(values, 99),
        "max_ms": round(max(values), 2) if values else None,
    }


async def delays(process: Process, sink_url: str, outcomes: list[load.Outcome]) -> dict:
    """Both delays in ms for every accepted probe, once its action ran or time ran out."""
    answered = {o.event_id: o.done for o in outcomes if o.event_id}
    wall = time.time() - time.monotonic()
    deadline = time.monotonic() + SETTLE_SECONDS
    async with httpx.AsyncClient(timeout=10.0) as client:

        def everyone(seen: dict[str, float] | None) -> bool:
            return seen is not None and answered.keys() <= seen.keys()

        seen = await _poll(client, f"{sink_url}/arrivals", everyone, deadline) or {}
        started = {}
        for event_id in answered:
            url = f"{process.url}/api/events/{event_id}"
            shown = await _poll(client, url, lambda shown: _started_at(shown) is not None, deadline)
            if (at := _started_at(shown)) is not None:
                started[event_id] = at - wall
    return {
        "probes": len(outcomes),
        "accepted": len(answered),
        "started": len(started),
        "reached_sink": len(answered.keys() & seen.keys()),
        "start": _spread(
            [(started[k] - done) * 1000 for k, done in answered.items() if k in started]
        ),
        "sink": _spread([(seen[k] - done) * 1000 for k, done in answered.items() if k in seen]),
    }


async def idle(
    process: Process, sink_url: str, traffic: Traffic, probes: int, rate: float
) -> dict[str, Any]:
    """Probes alone, `rate` per second: nothing else keeps hookwise busy.

    A few unmeasured probes go first: the first action imports and sets up what
    later ones reuse, which says nothing about a running service.
    """
    warmup = [traffic.probe() for _ in range(WARMUP_PROBES)]
    await delays(process, sink_url, await load.offer(process.hooks_url, warmup, rate, False))
    requests = [traffic.probe() for _ in range(probes)]
    outcomes = await load.offer(process.hooks_url, requests, rate, keepalive=False)
    return {"probe_rate_per_s": rate, **await delays(process, sink_url, outcomes)}


async def under_load(
    process: Process,
    sink_url: str,
    traffic: Traffic,
    rate: float,
    seconds: float,
    probe_rate: float,
) -> dict[str, Any]:
    """Probes at `probe_rate` while deliveries no rule matches arrive at `rate`.

    Also reports how accepting fared meanwhile, next to section (a)'s numbers without
    actions running.
    """
    requests = [traffic.load() for _ in range(int(rate * seconds))]
    probes = [traffic.probe() for _ in range(max(1, int(probe_rate * seconds)))]
    both = asyncio.gather(
        load.offer(process.hooks_url, requests, rate),
        load.offer(process.hooks_url, probes, probe_rate, keepalive=False),
    )
    (outcomes, probed), cpu = await load.with_cpu(process.cpu_seconds, both)
    return {
        "probe_rate_per_s": probe_rate,
        **await delays(process, sink_url, probed),
        "load": {**load.summarize(outcomes, rate), **cpu},
    }
