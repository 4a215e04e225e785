"""Group commit: writes queued by the event loop, committed in batches by one thread.

Under load, hundreds of accepts share one transaction and one flush to disk, and the
event loop never waits on the database. Each backend says how it connects and how a
batch is committed; this module owns the queue, the thread and the futures.
"""

from __future__ import annotations

import asyncio
import concurrent.futures
import contextlib
import logging
import queue
import threading
from abc import ABC, abstractmethod
from collections.abc import Callable
from typing import Any, TypeVar

from hookwise.errors import StoreError

T = TypeVar("T")
log = logging.getLogger("hookwise.store")
MAX_BATCH = 512

Write = Callable[[Any], Any]
Outcome = tuple[bool, Any]  # (True, result) or (False, the exception to raise)
Job = tuple[Write, asyncio.Future[Any]]


class GroupCommit(threading.Thread, ABC):
    """Runs queued writes in batches until `stop`.

    If the thread cannot connect or dies, `failure` says why and every waiting or
    later write fails with it, so callers answer 503 instead of hanging.
    """

    def __init__(self, name: str) -> None:
        super().__init__(name=name, daemon=True)
        self.jobs: queue.Queue[Job | None] = queue.Queue()
        self.ready: concurrent.futures.Future[None] = concurrent.futures.Future()
        self.failure: StoreError | None = None

    @abstractmethod
    def connect(self) -> None:
        """Get ready to commit; raise StoreError saying why not."""

    @abstractmethod
    def commit(self, writes: list[Write]) -> list[Outcome]:
        """Run the writes, each failing alone, and commit what succeeded."""

    def disconnect(self) -> None:
        """Release what `connect` took."""

    def _failed(self) -> BaseException | None:
        """The writer thread's failure, read again: it is set from that thread."""
        return self.failure

    async def submit(self, write: Callable[[Any], T]) -> T:
        if self.failure is not None:
            raise self.failure
        future: asyncio.Future[T] = asyncio.get_running_loop().create_future()
        self.jobs.put((write, future))
        died = self._failed()  # the thread may have died between the check and the put
        if died is not None and not future.done():
            future.cancel()
            raise died
        return await future

    async def stop(self) -> None:
        """Commit what is queued, then end the thread."""
        self.jobs.put(None)
        await asyncio.to_thread(self.join)

    def run(self) -> None:
        try:
            self.connect()
        except StoreError as exc:
            self._stop_with(exc)
            self.ready.set_exception(exc)
            return
        self.ready.set_result(None)
        try:
            while (batch := self._next_batch()) is not None:
                outcomes = self.commit([write for write, _ in batch])
                _resolve_all(
                    [
                        (future, *outcome)
                        for (_, future), outcome in zip(batch, outcomes, strict=True)
                    ]
                )
            self._stop_with(StoreError("the store is closed"))
        except BaseException as exc:
            log.exception("%s stopped", self.name)
            self._stop_with(StoreError(f"{self.name} stopped: {exc}"))
        finally:
            self.disconnect()

    def _stop_with(self, failure: StoreError) -> None:
        self.failure = failure
        while True:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                return
            if job is not None:
                _resolve_all([(job[1], False, failure)])

    def _next_batch(self) -> list[Job] | None:
        first = self.jobs.get()
        if first is None:
            return None
        batch = [first]
        while len(batch) < MAX_BATCH:
            try:
                job = self.jobs.get_nowait()
            except queue.Empty:
                break
            if job is None:
                self.jobs.put(None)  # finish this batch, then stop
                break
            batch.append(job)
        return batch


Settlement = tuple[asyncio.Future[Any], bool, Any]


def _settle(settlements: list[Settlement]) -> None:
    for future, ok, value in settlements:
        if future.done():
            continue
        if ok:
            future.set_result(value)
        else:
            future.set_exception(value)


def _resolve_all(settlements: list[Settlement]) -> None:
    """Settle futures from the writer thread, waking each event loop once per batch.

    A loop may already be gone at shutdown; its futures have no one waiting.
    """
    by_loop: dict[asyncio.AbstractEventLoop, list[Settlement]] = {}
    for settlement in settlements:
        by_loop.setdefault(settlement[0].get_loop(), []).append(settlement)
    for loop, settled in by_loop.items():
        with contextlib.suppress(RuntimeError):
            loop.call_soon_threadsafe(_settle, settled)
