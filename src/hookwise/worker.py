"""Claiming due runs and executing them with bounded concurrency.

New runs wake the worker at once (`notify`); a short poll is the safety net for
retries coming due and for runs other processes left behind.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time

from hookwise.config import WorkerConfig
from hookwise.runner import Runner
from hookwise.store import RunRecord, Store

log = logging.getLogger("hookwise.worker")


class Worker:
    def __init__(self, store: Store, runner: Runner, settings: WorkerConfig, owner: str) -> None:
        self.store = store
        self.runner = runner
        self.settings = settings
        self.owner = owner
        self.active: dict[str, asyncio.Task[None]] = {}
        self._wake = asyncio.Event()
        self._tasks: list[asyncio.Task[None]] = []

    def notify(self) -> None:
        self._wake.set()

    def start(self) -> None:
        self._tasks = [
            asyncio.create_task(self._claim_loop(), name="hookwise-claim"),
            asyncio.create_task(self._renew_loop(), name="hookwise-renew"),
        ]

    async def stop(self, grace: float = 5.0) -> None:
        """Stop claiming, let running actions finish for `grace` seconds, then cancel them.

        A cancelled run records its attempt as `interrupted` and is due again at once.
        """
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self.active:
            _, pending = await asyncio.wait(self.active.values(), timeout=grace)
            for task in pending:
                task.cancel()
            await asyncio.gather(*pending, return_exceptions=True)

    async def _claim_loop(self) -> None:
        while True:
            self._wake.clear()
            try:
                claimed = await self._claim_once()
            except Exception:
                log.exception("claiming runs failed; retrying shortly")
                claimed = 0
            if claimed:
                continue
            await self._sleep()

    async def _claim_once(self) -> int:
        free = self.settings.concurrency - len(self.active)
        if free <= 0:
            return 0
        runs = await self.store.claim(self.owner, free, self.settings.lease)
        for run in runs:
            task = asyncio.create_task(self._execute(run.id, run), name=f"run-{run.id}")
            self.active[run.id] = task
        return len(runs)

    async def _execute(self, run_id: str, run: RunRecord) -> None:
        try:
            await self.runner.execute(run)
        except asyncio.CancelledError:
            raise
        except Exception:
            log.exception(
                "run %s failed inside hookwise; it will be retried after its lease", run_id
            )
        finally:
            self.active.pop(run_id, None)
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
                await self.store.renew(self.owner, list(self.active), self.settings.lease)
            except Exception:
                log.exception("renewing leases failed")
