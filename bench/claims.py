"""Section (f): what one claim costs with few and with very many runs due.

A worker claims due runs each time one finishes, so a claim whose cost grows with the
backlog makes a backlog grow faster once there is one. The store is filled through
its own API with `backlog` due runs (one per event, like an Artifactory push matching
one rule), then `CLAIMS` claims of `LIMIT` runs each are timed. Flat means the same
time per claim at every backlog size.
"""

from __future__ import annotations

import asyncio
import time
from pathlib import Path
from typing import Any

from bench import memory, stores
from hookwise.event import new_id
from hookwise.store import NewRun, open_store

CLAIMS = 5  # so that the smallest backlog, of at least CLAIMS * LIMIT runs, suffices
LIMIT = 8
BATCH = 2000
SPEC = {"actions": [{"uses": "log", "with": {"message": "x"}}]}


async def fill(url: str, backlog: int) -> None:
    """`backlog` events, each with one run due now."""
    store = open_store(url)
    await store.open()
    try:
        for first in range(0, backlog, BATCH):
            numbers = range(first, min(backlog, first + BATCH))
            events = [memory.stored_event("c", n) for n in numbers]
            await asyncio.gather(
                *(
                    store.accept(event, f"claims:{event.id}", 60.0, [NewRun(new_id(), "b", SPEC)])
                    for event in events
                )
            )
    finally:
        await store.close()


async def cost(url: str) -> float:
    """Mean milliseconds per claim of LIMIT runs, over CLAIMS claims."""
    store = open_store(url)
    await store.open()
    try:
        started = time.perf_counter()
        for _ in range(CLAIMS):
            assert len(await store.claim("bench", LIMIT, lease=600)) == LIMIT
        return round((time.perf_counter() - started) * 1000 / CLAIMS, 3)
    finally:
        await store.close()


async def run(store: str, folder: Path, backlogs: list[int]) -> dict[str, Any]:
    if min(backlogs) < CLAIMS * LIMIT:
        raise ValueError(f"(f) needs backlogs of at least {CLAIMS * LIMIT} runs")
    rows = []
    for backlog in backlogs:
        with stores.fresh(store, folder / f"claims-{backlog}") as url:
            started = time.monotonic()
            await fill(url, backlog)
            filled = round(time.monotonic() - started, 1)
            rows.append({"backlog": backlog, "claim_ms": await cost(url), "fill_s": filled})
    first, last = rows[0]["claim_ms"], rows[-1]["claim_ms"]
    return {"claims": CLAIMS, "limit": LIMIT, "rows": rows, "ratio": round(last / first, 2)}
