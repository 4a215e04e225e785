"""Reloading rules and the config on SIGHUP and on file change; a bad edit never
replaces what is in use."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path
from typing import TYPE_CHECKING

import watchfiles

from hookwise.errors import ConfigError
from hookwise.rules import RULE_SUFFIXES, Rule, RuleLoader, rule_files

if TYPE_CHECKING:
    from hookwise.service import Hookwise

log = logging.getLogger("hookwise.reload")
logging.getLogger("watchfiles").setLevel(logging.WARNING)
ARM_TIMEOUT = 5.0


class Reloader:
    def __init__(
        self, loader: RuleLoader, path: Path, service: Hookwise, config: Path | None = None
    ) -> None:
        self.loader = loader
        self.path = path
        self.config = config
        self.service = service
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._reloading = asyncio.Lock()
        self._pending: set[asyncio.Task[bool]] = set()
        self._loaded = self._fingerprint()

    def _fingerprint(self) -> list[tuple[str, int, int]]:
        found = []
        files = rule_files(self.path) if self.path.exists() else []
        for file in [*files, *([self.config] if self.config is not None else [])]:
            with contextlib.suppress(OSError):  # deleted between listing and stat
                stat = file.stat()
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return found

    async def reload(self) -> bool:
        """Swap in the new rules only when every file validates.

        Reading and checking the files runs in a thread: a big rule set, or a hostile
        file the YAML limits refuse, must not hold up deliveries meanwhile. One reload
        at a time: a burst of edits queues behind the one under way.
        """
        async with self._reloading:
            if self.config is not None:
                await asyncio.to_thread(self.service.use_config, self.config)
            rules = await asyncio.to_thread(self._load)
        if rules is None:
            return False
        self.service.use_rules(rules)
        log.info("rules reloaded: %d rules from %s", len(rules), self.path)
        return True

    def _load(self) -> list[Rule] | None:
        """The new rules, or None (logged) when any file has a problem."""
        try:
            self._loaded = self._fingerprint()
            return self.loader.load(self.path)
        except ConfigError as exc:
            log.error(
                "rules not reloaded, keeping the %d rules in use:\n%s",
                len(self.service.rules),
                exc,
            )
        except Exception:  # a bug must not end reloading for good
            log.exception(
                "rules not reloaded, keeping the %d rules in use", len(self.service.rules)
            )
        return None

    async def start(self) -> None:
        """Returns once the file watcher is armed, so no edit after startup goes unseen."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self._on_sighup)
        armed = asyncio.Event()
        self._task = asyncio.create_task(self._watch(armed), name="hookwise-rules-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(armed.wait(), ARM_TIMEOUT)

    def _on_sighup(self) -> None:
        task = asyncio.get_running_loop().create_task(self.reload(), name="hookwise-reload")
        self._pending.add(task)
        task.add_done_callback(self._pending.discard)

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, armed: asyncio.Event) -> None:
        watched = self.path if self.path.is_dir() else self.path.parent
        also = [self.config] if self.config is not None else []
        async for changes in watchfiles.awatch(
            watched,
            *also,
            stop_event=self._stop,
            debounce=300,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=100,  # also how long start() waits for the watcher to arm
        ):
            if not armed.is_set():
                armed.set()  # the first yield comes once the watcher exists
            if changes and any(self._relevant(Path(changed)) for _, changed in changes):
                await self.reload()
            elif not changes and self._fingerprint() != self._loaded:
                await self.reload()  # edited between the initial load and the watcher arming

    def _relevant(self, changed: Path) -> bool:
        if self.config is not None and changed == self.config:
            return True
        if self.path.is_dir():
            return changed.suffix in RULE_SUFFIXES
        return changed == self.path
