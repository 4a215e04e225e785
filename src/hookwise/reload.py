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
from hookwise.rules import RULE_SUFFIXES, RuleLoader

log = logging.getLogger("hookwise.reload")


class Reloader:
    def __init__(self, loader: RuleLoader, path: Path, engine: Engine) -> None:
        self.loader = loader
        self.path = path
        self.engine = engine
        self._task: asyncio.Task[None] | None = None
        self._stop = asyncio.Event()

    def reload(self) -> bool:
        """Swap in the new rules only when every file validates."""
        try:
            rules = self.loader.load(self.path)
        except ConfigError as exc:
            log.error(
                "rules not reloaded, keeping the %d rules in use:\n%s",
                len(self.engine.rules.rules),
                exc,
            )
            return False
        self.engine.rules = RuleIndex(rules)
        log.info("rules reloaded: %d rules from %s", len(rules), self.path)
        return True

    def start(self) -> None:
        loop = asyncio.get_running_loop()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            loop.add_signal_handler(signal.SIGHUP, self.reload)
        self._task = asyncio.create_task(self._watch(), name="hookwise-rules-watch")

    async def stop(self) -> None:
        self._stop.set()
        with contextlib.suppress(NotImplementedError, RuntimeError, ValueError):
            asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
        if self._task is not None:
            await asyncio.gather(self._task, return_exceptions=True)

    async def _watch(self) -> None:
        watched = self.path if self.path.is_dir() else self.path.parent
        async for changes in watchfiles.awatch(
            watched, stop_event=self._stop, debounce=300, recursive=True
        ):
            if any(self._relevant(Path(changed)) for _, changed in changes):
                self.reload()

    def _relevant(self, changed: Path) -> bool:
        if self.path.is_dir():
            return changed.suffix in RULE_SUFFIXES
        return changed == self.path
