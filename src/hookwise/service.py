"""`Hookwise`: the one object every front end goes through.

The HTTP API, the CLI, Slack's commands and buttons (and the console) parse what
people ask, call a method here, and format the typed record it returns (`views.py`).
None of them touches the store or the pipeline directly, so listing, showing,
replaying and deciding mean the same thing whichever way they are asked.

It also owns the pieces' lifecycle: `open` the store for a command, `start` the
worker, rule watcher and pruner for `serve` and `worker`.
"""

from __future__ import annotations

import asyncio
import gc
import logging
import os
import socket
from dataclasses import dataclass
from typing import Literal
from urllib.parse import unquote, urlsplit

from hookwise import secrets
from hookwise.config import BoundSource, Config, bind_sources, check_integrations, load_config
from hookwise.engine import Engine
from hookwise.event import Event
from hookwise.matcher import RuleIndex
from hookwise.metrics import ActionMetrics, Metrics
from hookwise.plugins import Registry, load_registry
from hookwise.reload import Reloader
from hookwise.retention import FIRST_PASS, Pruner
from hookwise.rules import Rule, RuleLoader
from hookwise.runner import Runner
from hookwise.secrets import secret_values
from hookwise.slack.chat import chat_for
from hookwise.sources import Delivery
from hookwise.status import EventStatus, RunStatus
from hookwise.store import (
    AcceptResult,
    Decision,
    EventDetail,
    EventSummary,
    RunDetail,
    RunRecord,
    Schema,
    Store,
    display_url,
    open_store,
)
from hookwise.templates import make_environment
from hookwise.worker import Worker

log = logging.getLogger("hookwise")
# A run being looked at by a worker (a few milliseconds) is asked again this often.
BUSY_RETRIES = 20
BUSY_PAUSE = 0.1
Outcome = Literal["recorded", "unknown", "repeated", "not_waiting"]


@dataclass(frozen=True)
class Decided:
    """What became of an approve or reject, worded the same for every front end."""

    outcome: Outcome
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == "recorded"


class Hookwise:
    """Configuration, plugins, rules, pipeline and store, and everything done with them."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        loader: RuleLoader,
        engine: Engine,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.registry = registry
        self.loader = loader
        self.engine = engine
        self.store: Store = engine.store
        self.metrics = metrics
        self.chat = chat_for(config)
        self.worker: Worker | None = None
        self.reloader: Reloader | None = None
        self.pruner: Pruner | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, upgrade: bool = False) -> Schema:
        """Connect the store; enough for commands that only read or decide."""
        return await self.store.open(upgrade=upgrade)

    async def close(self) -> None:
        await self.store.close()

    async def start(
        self, *, with_worker: bool = True, watch: bool = True, first_prune: float = FIRST_PASS
    ) -> None:
        """Open the store, then start the worker and the rule watcher as asked, and the
        pruner unless retention is off (its first pass `first_prune` seconds later).

        `hookwise worker` starts without the watcher: runs carry a snapshot of their
        rule's actions, so executing them never needs the current rules.
        """
        await self.open()
        await self.registry.startup(self.config)
        if with_worker:
            owner = f"{socket.gethostname()}:{os.getpid()}"
            runner = Runner(
                self.store,
                self.registry,
                self.engine.templates,
                self.config,
                self.metrics,
                self.chat,
            )
            self.worker = Worker(self.store, runner, self.config.worker, owner)
            await self.worker.start()
        if watch:
            self.reloader = Reloader(self.loader, self.config.rules_path, self)
            await self.reloader.start()
        self._start_pruner(first_prune)
        # Everything loaded so far lives as long as the process: take it out of the
        # collector's sight, so a full collection does not stall every request for
        # tens of milliseconds walking the imported libraries.
        gc.freeze()
        log.info(
            "hookwise started: %d rules, sources %s, store %s",
            len(self.rules),
            ", ".join(sorted(self.engine.sources)) or "none",
            display_url(self.config.store_url),
        )

    def _start_pruner(self, first: float) -> None:
        retention_settings = self.config.retention
        keep_for = self.config.keep_for
        if keep_for is None:
            return
        if retention_settings.max_age is not None and retention_settings.max_age < keep_for:
            log.info(
                "retention: keeping finished runs for %gs, the dedupe window, "
                "not retention.max_age (%gs)",
                keep_for,
                retention_settings.max_age,
            )
        self.pruner = Pruner(self.store, keep_for, retention_settings.interval, self.metrics, first)
        self.pruner.start()

    async def stop(self) -> None:
        if self.pruner is not None:
            await self.pruner.stop()
        if self.reloader is not None:
            await self.reloader.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.registry.shutdown(self.config)
        await self.close()
        log.info("hookwise stopped")

    # -- rules -------------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return self.engine.rules.rules

    def use_rules(self, rules: list[Rule]) -> None:
        """Swap in a new rule set: every later delivery is matched against it."""
        self.engine.use(RuleIndex(rules))

    # -- the pipeline ----------------------------------------------------------------

    async def receive(self, source: str, delivery: Delivery) -> list[AcceptResult]:
        """Verify, store and plan a delivery; its runs are executed in the background."""
        results = await self.engine.receive(source, delivery)
        self.wake()
        return results

    def wake(self) -> None:
        """Runs were added or decided: this process's worker looks at once."""
        if self.worker is not None:
            self.worker.notify()

    # -- reading -----------------------------------------------------------------------

    async def events(
        self, filters: dict[str, str], status: EventStatus | None = None, limit: int = 50
    ) -> list[EventSummary]:
        """Newest first."""
        return await self.store.list_events(filters, status, max(limit, 1))

    async def event(self, event_id: str) -> EventDetail | None:
        event = await self.store.get_event(event_id)
        if event is None:
            return None
        return EventDetail(event, await self.store.runs_of(event_id))

    async def run(self, run_id: str) -> RunDetail | None:
        return await self.store.run_detail(run_id)

    async def runs(self, statuses: list[RunStatus], limit: int) -> list[RunRecord]:
        """Most recently changed first."""
        return await self.store.recent_runs(statuses, limit)

    async def queue_depth(self) -> int:
        """Runs waiting to be executed or retried."""
        return await self.store.queue_depth()

    # -- acting ------------------------------------------------------------------------

    async def replay(self, event_id: str) -> list[str] | None:
        """New runs for a stored event under the current rules; None if it is unknown."""
        event: Event | None = await self.store.get_event(event_id)
        if event is None:
            return None
        runs = await self.engine.replay(event)
        self.wake()
        return runs

    async def decide(
        self, run_id: str, actor: str, decision: str, reason: str | None, via: str
    ) -> Decided:
        """Record an approve or reject; the run's worker acts on it and updates Slack."""
        noun = "approval" if decision == "approve" else "rejection"
        answer = "running"
        for _ in range(BUSY_RETRIES):
            answer = await self.store.decide(Decision(run_id, actor, decision, reason or None, via))
            if answer != "running":
                break
            await asyncio.sleep(BUSY_PAUSE)
        if answer == "recorded":
            self.wake()
            return Decided("recorded", f"{noun} of run {run_id} by {actor} recorded")
        if answer == "unknown":
            return Decided("unknown", f"no run {run_id}")
        if answer == "repeated":
            return Decided(
                "repeated", f"{actor} already decided on run {run_id}; one decision per person"
            )
        return Decided(
            "not_waiting",
            f"run {run_id} is {answer.replace('_', ' ')}, not waiting for approval",
        )


def config_secrets(
    config: Config, sources: dict[str, BoundSource], registry: Registry
) -> list[str]:
    """Every secret in the configuration: tokens, passwords, signing keys, the store's."""
    found = secret_values(config)
    found += [value for bound in sources.values() for value in secret_values(bound.options)]
    for name, block in config.integrations.items():
        spec = registry.integrations.get(name)
        if spec is not None:
            found += secret_values(spec.settings.model_validate(block))
    password = urlsplit(config.store).password
    return [*found, unquote(password)] if password else found


def build_service(config_path: str | os.PathLike[str]) -> Hookwise:
    """Everything that can be checked without I/O; raises ConfigError with all problems.

    The store is created but not connected: `open` or `start` does that.
    """
    config = load_config(config_path)
    plugins_dir = config.path(config.plugins_dir) if config.plugins_dir else None
    registry = load_registry(plugins_dir)
    sources = bind_sources(config, registry.sources)
    check_integrations(config, registry.integrations)
    secrets.known.add(config_secrets(config, sources, registry))
    templates = make_environment(
        registry.prepare_jinja,
        max_output=config.templates.max_output,
        timeout=config.templates.timeout,
    )
    loader = RuleLoader(registry.actions, templates, registry.integrations, config.integrations)
    rules = RuleIndex(loader.load(config.rules_path))
    metrics = Metrics()
    registry.pm.register(ActionMetrics(metrics), "hookwise.metrics")
    store = open_store(config.store_url)
    engine = Engine(config, sources, registry.actions, templates, store, rules)
    return Hookwise(config, registry, loader, engine, metrics)
