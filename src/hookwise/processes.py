"""Worker processes that `serve` starts itself, so accepting and acting don't share a GIL.

With `worker.processes: N`, `serve` executes no runs: it starts N `hookwise worker`
processes on the same config and store, and each claims and executes runs as a
separately started worker would. Two pipes tie them to `serve`:

- a child's stdin: `serve` writes a byte when runs were added or decided, so the
  child claims at once (PostgreSQL also notifies through LISTEN; SQLite has nothing
  else). A child that reads end-of-file has lost its parent, and stops;
- a child that exits unexpectedly is started again after a pause, and logged.

The children count their actions and runs in prometheus_client's multiprocess files,
in a folder of `serve`'s, so `serve`'s /metrics reports them.

On shutdown the children get SIGTERM and finish the runs under way, as any worker does.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import os
import shutil
import signal
import sys
import tempfile
from collections.abc import Callable

log = logging.getLogger("hookwise.processes")
RESTART_DELAY = 1.0
STOP_GRACE = 30.0


class WorkerProcesses:
    def __init__(self, config_path: str, count: int) -> None:
        self.config_path = config_path
        self.count = count
        # prometheus_client's multiprocess mode in the children: their counts land in
        # files there, which `serve` reads for /metrics (`Metrics.counted_in`).
        self.metrics_folder = tempfile.mkdtemp(prefix="hookwise-metrics-")
        self.environment = {**os.environ, "PROMETHEUS_MULTIPROC_DIR": self.metrics_folder}
        self.children: list[asyncio.subprocess.Process | None] = [None] * count
        self._supervising: list[asyncio.Task[None]] = []
        self._stopping = False

    async def start(self) -> None:
        for slot in range(self.count):
            await self._spawn(slot)
            self._supervising.append(
                asyncio.create_task(self._supervise(slot), name=f"hookwise-worker-{slot}")
            )
        log.info("started %d worker processes", self.count)

    async def _spawn(self, slot: int) -> None:
        argv = [sys.executable, "-m", "hookwise", "worker", "--config", self.config_path]
        self.children[slot] = await asyncio.create_subprocess_exec(
            *argv, "--wake-on-stdin", stdin=asyncio.subprocess.PIPE, env=self.environment
        )

    async def _supervise(self, slot: int) -> None:
        while not self._stopping:
            child = self.children[slot]
            assert child is not None
            code = await child.wait()
            if self.stopping():
                break
            log.error(
                "worker process %d (pid %d) exited with code %s; starting it again in %gs",
                slot,
                child.pid,
                code,
                RESTART_DELAY,
            )
            await asyncio.sleep(RESTART_DELAY)
            if not self.stopping():
                await self._spawn(slot)

    def stopping(self) -> bool:
        """Read afresh after each wait: `stop` may have run meanwhile."""
        return self._stopping

    def wake(self) -> None:
        """Tell every child to claim now. A byte still unread already says so."""
        for child in self.children:
            pipe = child.stdin if child is not None else None
            if pipe is None or pipe.is_closing() or pipe.transport.get_write_buffer_size():
                continue
            with contextlib.suppress(ConnectionError):
                pipe.write(b"!")

    async def stop(self) -> None:
        self._stopping = True
        live = [child for child in self.children if child is not None and child.returncode is None]
        for child in live:
            with contextlib.suppress(ProcessLookupError):
                child.send_signal(signal.SIGTERM)
        if live:
            _, late = await asyncio.wait(
                [asyncio.ensure_future(child.wait()) for child in live], timeout=STOP_GRACE
            )
            for child in live:
                if child.returncode is None:
                    log.warning("worker process pid %d did not stop; killing it", child.pid)
                    with contextlib.suppress(ProcessLookupError):
                        child.kill()
            await asyncio.gather(*late, return_exceptions=True)
        for task in self._supervising:
            task.cancel()
        await asyncio.gather(*self._supervising, return_exceptions=True)
        shutil.rmtree(self.metrics_folder, ignore_errors=True)


def listen_for_wakes(notify: Callable[[], None], orphaned: Callable[[], None]) -> None:
    """In a child: each byte on stdin wakes the worker; end-of-file means `serve` is gone."""
    loop = asyncio.get_running_loop()
    fd = sys.stdin.fileno()
    os.set_blocking(fd, False)

    def readable() -> None:
        try:
            data = os.read(fd, 4096)
        except BlockingIOError:
            return
        if data:
            notify()
        else:
            loop.remove_reader(fd)
            log.warning("serve is gone (its pipe closed); stopping")
            orphaned()

    loop.add_reader(fd, readable)
