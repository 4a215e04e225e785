"""Claiming due runs and executing them with bounded concurrency.

New runs wake the worker at once (`notify`): the engine calls it for runs of this
process, and the store (`subscribe`) for runs other processes added to a shared
database. A short poll is the safety net for retries coming due, for runs other
processes left behind, and for notifications lost while the database was away.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hookwise.config import WorkerConfig
from hookwise.errors import StoreError
from hookwise.runner import Runner
from hookwise.store import RunRecord, Store

log = logging.getLogger("hookwise.worker")
# While runs are executing, claims are at least this far apart, so one claim takes the
# slots of every run that finished meanwhile instead of one claim per finished run
# (Oban's dispatch cooldown). An idle worker claims at once.
CLAIM_COOLDOWN = 0.005


class Worker:
    def __init__(self, store: Store, runner: Runner, settings: WorkerConfig, owner: str) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings
        self.owner = owner
        self.active: dict[str, tuple[asyncio.Task[None], str]] = {}
        self._wake = asyncio.Event()
        self._stopping = False
        self._claiming: asyncio.Task[None] | None = None
        self._renewing: asyncio.Task[None] | None = None
        self._store_failing = False

    def notify(self) -> None:
        self._wake.set()

    async def start(self) -> None:
        await self.store.subscribe(self.notify)
        self._claiming = asyncio.create_task(self._claim_loop(), name="hookwise-claim")
        self._renewing = asyncio.create_task(self._renew_loop(), name="hookwise-renew")

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let running actions finish for `grace` seconds, then cancel them.

        The claim loop is asked to stop rather than cancelled, so a claim already sent
        to the store is always followed by its execution. A cancelled run records its
        attempt as `interrupted` and is due again at once.
        """
        self._stopping = True
        self._wake.set()
        if self._claiming is not None:
            await asyncio.gather(self._claiming, return_exceptions=True)
        tasks = [task for task, _ in self.active.values()]
        if tasks:
            _, pending = await asyncio.wait(tasks, timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)
        if self._renewing is not None:
            self._renewing.cancel()
            await asyncio.gather(self._renewing, return_exceptions=True)

    async def _claim_loop(self) -> None:
        claimed_at = 0.0
        while not self._stopping:
            pause = claimed_at + CLAIM_COOLDOWN - time.monotonic()
            if self.active and pause > 0:
                await asyncio.sleep(pause)
                continue  # asked to stop meanwhile?
            self._wake.clear()
            claimed_at = time.monotonic()
            try:
                claimed = await self._claim_once()
                self._store_back()
            except StoreError as exc:
                self._store_down("claiming runs", exc)
                claimed = 0
            except Exception:
                log.exception("claiming runs failed; retrying shortly")
                claimed = 0
            if not claimed and not self._stopping:
                await self._sleep()

    async def _claim_once(self) -> int:
        free = self.settings.concurrency - len(self.active)
        if free <= 0:
            return 0
        runs = await self.store.claim(self.owner, free, self.settings.lease, exclude=self.active)
        for run in runs:
            task = asyncio.create_task(self._execute(run), name=f"run-{run.id}")
            self.active[run.id] = (task, run.lease)
        return len(runs)

    async def _execute(self, run: RunRecord) -> None:
        try:
            await self.runner.execute(run)
        except asyncio.CancelledError:
            raise
        except StoreError as exc:
            log.warning(
                "run %s could not be recorded (%s); it is retried after its lease", run.id, exc
            )
        except Exception:
            log.exception("run %s failed inside hookwise; it is retried after its lease", run.id)
        finally:
            self.active.pop(run.id, None)
            self._wake.set()

    async def _sleep(self) -> None:
        """Until woken, the next retry is due, or the poll interval passes."""
        timeout = self.settings.poll_interval
        if len(self.active) < self.settings.concurrency:
            with contextlib.suppress(Exception):
                due = await self.store.next_due()
                if due is not None:
                    timeout = min(timeout, max(0.01, due - time.time()))
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(self._wake.wait(), timeout)

    async def _renew_loop(self) -> None:
        while True:
            await asyncio.sleep(self.settings.lease / 3)
            try:
                tokens = [token for _, token in self.active.values()]
                await self.store.renew(tokens, self.settings.lease)
            except StoreError as exc:
                self._store_down("renewing leases", exc)
            except Exception:
                log.exception("renewing leases failed")

    def _store_down(self, doing: str, exc: StoreError) -> None:
        """One warning per outage of the store, not one per poll."""
        if not self._store_failing:
            log.warning("%s failed: %s; retrying until the store answers", doing, exc)
        self._store_failing = True

    def _store_back(self) -> None:
        if self._store_failing:
            log.warning("the store answers again; claiming runs")
        self._store_failing = False
