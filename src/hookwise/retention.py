"""Retention: pruning old events and runs, shortly after start and then every interval.

Every process runs a pruner; the store lets one prune at a time and the others skip
their pass. A pass that fails is logged and tried again at the next interval.
"""

from __future__ import annotations

import asyncio
import logging

from hookwise import clock
from hookwise.errors import StoreError
from hookwise.event import iso_time
from hookwise.metrics import Metrics
from hookwise.store import Pruned, Store

log = logging.getLogger("hookwise.retention")
# The first pass waits a little, so starting up (or a restart loop) does not prune.
FIRST_PASS = 30.0
BATCH = 1000


async def prune(store: Store, keep_for: float, batch: int = BATCH) -> tuple[float, Pruned]:
    """One pass: what finished more than `keep_for` seconds ago; the cutoff and the counts."""
    before = clock.now() - keep_for
    return before, await store.prune(before, batch)


def describe(pruned: Pruned) -> str:
    """`3 events and 1 run (2 attempts)`, for the log and `hookwise db prune`."""
    counts = [(pruned.events, "event"), (pruned.runs, "run"), (pruned.attempts, "attempt")]
    events, runs, attempts = (f"{n} {noun}{'' if n == 1 else 's'}" for n, noun in counts)
    return f"{events} and {runs} ({attempts})"


class Pruner:
    def __init__(
        self, store: Store, keep_for: float, interval: float, metrics: Metrics, first: float
    ) -> None:
        self.store = store
        self.keep_for = keep_for
        self.interval = interval
        self.metrics = metrics
        self.first = first
        self._task: asyncio.Task[None] | None = None

    def start(self) -> None:
        self._task = asyncio.create_task(self._loop(), name="hookwise-prune")

    async def stop(self) -> None:
        """End the loop, abandoning a pass under way: each of its batches is one
        transaction, so a batch already sent is committed whole or not at all."""
        if self._task is not None:
            self._task.cancel()
            await asyncio.gather(self._task, return_exceptions=True)

    async def _loop(self) -> None:
        await asyncio.sleep(self.first)
        while True:
            await self.run_once()
            await asyncio.sleep(self.interval)

    async def run_once(self) -> Pruned | None:
        """One pass; logs what it removed, or why it could not, and never raises."""
        try:
            before, pruned = await prune(self.store, self.keep_for)
        except StoreError as exc:
            log.warning("pruning the store failed: %s; trying again in %gs", exc, self.interval)
            return None
        except Exception:
            log.exception("pruning the store failed; trying again in %gs", self.interval)
            return None
        self.metrics.pruned.labels("events").inc(pruned.events)
        self.metrics.pruned.labels("runs").inc(pruned.runs)
        if pruned.events or pruned.runs:
            log.info("pruned %s older than %s", describe(pruned), iso_time(before))
        if pruned.busy:
            log.debug("another process is pruning the store; this pass stopped")
        return pruned
