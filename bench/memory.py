"""Section (d): resident memory of `hookwise serve` and store size as the store grows.

Reaching a million events over HTTP would take most of an hour, so the store grows in
two ways: most events are written in big batches through the store API from this
process (the same `accept` the receiver calls), and at each checkpoint (10%, 50% and
100% of the events) the real `hookwise serve` process then receives a steady stream
over HTTP. Its RSS is read from /proc after each stream (and every half second
during it, for the peak). Memory is flat when it does not grow with the events
stored: from the first checkpoint to the last it may grow by at most FLAT_GROWTH.
"""

from __future__ import annotations

import asyncio
import contextlib
import os
import time
from collections.abc import AsyncIterator
from typing import Any

from bench import load, stores, workload
from bench.servers import Process
from hookwise.builtin.artifactory import artifact_of
from hookwise.event import Event, new_id
from hookwise.store import open_store

CHECKPOINTS = (0.1, 0.5, 1.0)
FLAT_GROWTH = 0.10  # of the RSS at the first checkpoint
BATCH = 2000
DEDUPE_WINDOW = 72 * 3600.0
MIB = 1024 * 1024


def stored_event(nonce: str, number: int) -> Event:
    """What the receiver would have stored for one Artifactory docker push."""
    data = workload.docker_data(f"bulk/app-{number % 50}", f"2.{number}.{nonce}", number)
    return Event(
        id=new_id(),
        source="artifactory",
        kind="artifactory",
        domain="docker",
        event_type="pushed",
        delivery_id=None,
        received_at=time.time(),
        data=data,
        headers={"content-type": "application/json", "user-agent": "JFrog Event/7.104"},
        artifacts=[artifact_of(data, None)],
    )


async def bulk_insert(url: str, count: int) -> float | None:
    """Accept `count` events through the store API, BATCH at a time; returns events/s."""
    if count <= 0:
        return None
    nonce = os.urandom(4).hex()
    store = open_store(url)
    await store.open()
    started = time.monotonic()
    try:
        for first in range(0, count, BATCH):
            events = [stored_event(nonce, n) for n in range(first, min(count, first + BATCH))]
            await asyncio.gather(
                *(
                    store.accept(event, f"bench:{nonce}:{event.id}", DEDUPE_WINDOW, [])
                    for event in events
                )
            )
    finally:
        await store.close()
    return round(count / (time.monotonic() - started), 1)


@contextlib.asynccontextmanager
async def peak_rss(process: Process, every: float = 0.5) -> AsyncIterator[list[int]]:
    """Samples the process's RSS while the block runs; the list holds every sample."""
    samples = [process.rss_bytes()]

    async def sample() -> None:
        while True:
            await asyncio.sleep(every)
            samples.append(process.rss_bytes())

    task = asyncio.create_task(sample())
    try:
        yield samples
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        samples.append(process.rss_bytes())


async def run(
    process: Process, store_url: str, events: int, stream_events: int, rate: float
) -> dict[str, Any]:
    """Grow the store to each checkpoint, stream over HTTP, then read RSS and size."""
    traffic = workload.Traffic()
    stored = received = 0
    rows = []
    started_rss = process.rss_bytes()
    for fraction in CHECKPOINTS:
        target = int(events * fraction)
        streamed = min(stream_events, target - stored)
        bulk_rate = await bulk_insert(store_url, target - stored - streamed)
        requests = [traffic.load() for _ in range(streamed)]
        async with peak_rss(process) as samples:
            stream = load.summarize(await load.offer(process.hooks_url, requests, rate), rate)
        stored = target - streamed + stream["accepted"]
        received += stream["accepted"]
        size = stores.size_bytes(store_url)
        rows.append(
            {
                "fraction": fraction,
                "stored": stored,
                "received_over_http": received,
                "bulk_insert_per_s": bulk_rate,
                "stream": {k: stream[k] for k in ("achieved_per_s", "p50_ms", "p99_ms")},
                "rss_mib": round(samples[-1] / MIB, 1),
                "peak_rss_mib": round(max(samples) / MIB, 1),
                "store_mib": round(size / MIB, 1),
                "store_bytes_per_event": round(size / stored),
            }
        )
    growth = rows[-1]["rss_mib"] - rows[0]["rss_mib"]
    return {
        "events": events,
        "stream_events_per_checkpoint": stream_events,
        "stream_rate_per_s": rate,
        "rss_at_start_mib": round(started_rss / MIB, 1),
        "checkpoints": rows,
        "rss_growth_mib": round(growth, 1),
        "flat": growth <= FLAT_GROWTH * rows[0]["rss_mib"],
    }
