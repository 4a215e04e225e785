"""Reloading rules on SIGHUP and on file change; a bad edit never replaces good rules."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import signal
from pathlib import Path

import watchfiles

from hookwise.engine import Engine
from hookwise.errors import ConfigError
from hookwise.matcher import RuleIndex
from hookwise.rules import RULE_SUFFIXES, RuleLoader, rule_files

log = logging.getLogger("hookwise.reload")
logging.getLogger("watchfiles").setLevel(logging.WARNING)
ARM_TIMEOUT = 5.0


class Reloader:
    def __init__(self, loader: RuleLoader, path: Path, engine: Engine) -> None:
        self.loader = loader
        self.path = path
        self.engine = engine
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()
        self._loaded = self._fingerprint()

    def _fingerprint(self) -> list[tuple[str, int, int]]:
        found = []
        for file in rule_files(self.path) if self.path.exists() else []:
            with contextlib.suppress(OSError):  # deleted between listing and stat
                stat = file.stat()
                found.append((str(file), stat.st_mtime_ns, stat.st_size))
        return found

    def reload(self) -> bool:
        """Swap in the new rules only when every file validates."""
        try:
            self._loaded = self._fingerprint()
            rules = self.loader.load(self.path)
        except ConfigError as exc:
            log.error(
                "rules not reloaded, keeping the %d rules in use:\n%s",
                len(self.engine.rules.rules),
                exc,
            )
            return False
        except Exception:  # a bug must not end reloading for good
            log.exception(
                "rules not reloaded, keeping the %d rules in use", len(self.engine.rules.rules)
            )
            return False
        self.engine.rules = RuleIndex(rules)
        log.info("rules reloaded: %d rules from %s", len(rules), self.path)
        return True

    async def start(self) -> None:
        """Returns once the file watcher is armed, so no edit after startup goes unseen."""
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        armed = asyncio.Event()
        self._task = asyncio.create_task(self._watch(armed), name="hookwise-rules-watch")
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(armed.wait(), ARM_TIMEOUT)

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self, armed: asyncio.Event) -> None:
        watched = self.path if self.path.is_dir() else self.path.parent
        async for changes in watchfiles.awatch(
            watched,
            stop_event=self._stop,
            debounce=300,
            recursive=True,
            yield_on_timeout=True,
            rust_timeout=500,
        ):
            if not armed.is_set():
                armed.set()  # the first yield comes once the watcher exists
            if changes and any(self._relevant(Path(changed)) for _, changed in changes):
                self.reload()
            elif not changes and self._fingerprint() != self._loaded:
                self.reload()  # edited between the initial load and the watcher arming

    def _relevant(self, changed: Path) -> bool:
        if self.path.is_dir():
            return changed.suffix in RULE_SUFFIXES
        return changed == self.path
