"""Assembling hookwise from its config: plugins, sources, rules, store, worker."""

from __future__ import annotations

import gc
import logging
import os
import socket
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

from hookwise import secrets
from hookwise.config import BoundSource, Config, bind_sources, check_integrations, load_config
from hookwise.engine import Engine
from hookwise.matcher import RuleIndex
from hookwise.metrics import Metrics
from hookwise.plugins import Registry, load_registry
from hookwise.reload import Reloader
from hookwise.retention import FIRST_PASS, Pruner
from hookwise.rules import RuleLoader
from hookwise.runner import Runner
from hookwise.secrets import secret_values
from hookwise.store import Store, display_url, open_store
from hookwise.templates import make_environment
from hookwise.worker import Worker

log = logging.getLogger("hookwise")


@dataclass
class Service:
    config: Config
    registry: Registry
    loader: RuleLoader
    engine: Engine
    metrics: Metrics
    worker: Worker | None = None
    reloader: Reloader | None = None
    pruner: Pruner | None = None

    async def start(
        self, *, with_worker: bool = True, watch: bool = True, first_prune: float = FIRST_PASS
    ) -> None:
        """Open the store, then start the worker and the rule watcher as asked, and the
        pruner unless retention is off (its first pass `first_prune` seconds later).

        `hookwise worker` starts without the watcher: runs carry a snapshot of their
        rule's actions, so executing them never needs the current rules.
        """
        store = open_store(self.config.store_url)
        await store.open()
        self.engine.store = store
        await self.registry.startup(self.config)
        if with_worker:
            owner = f"{socket.gethostname()}:{os.getpid()}"
            runner = Runner(
                store,
                self.registry,
                self.engine.templates,
                self.config,
                self.metrics,
            )
            self.worker = Worker(store, runner, self.config.worker, owner)
            self.engine.on_new_runs = self.worker.notify
            await self.worker.start()
        if watch:
            self.reloader = Reloader(self.loader, self.config.rules_path, self.engine)
            await self.reloader.start()
        self._start_pruner(store, first_prune)
        # Everything loaded so far lives as long as the process: take it out of the
        # collector's sight, so a full collection does not stall every request for
        # tens of milliseconds walking the imported libraries.
        gc.freeze()
        log.info(
            "hookwise started: %d rules, sources %s, store %s",
            len(self.engine.rules.rules),
            ", ".join(sorted(self.engine.sources)) or "none",
            display_url(self.config.store_url),
        )

    def _start_pruner(self, store: Store, first: float) -> None:
        retention = self.config.retention
        keep_for = self.config.keep_for
        if keep_for is None:
            return
        if retention.max_age is not None and retention.max_age < keep_for:
            log.info(
                "retention: keeping finished runs for %gs, the dedupe window, "
                "not retention.max_age (%gs)",
                keep_for,
                retention.max_age,
            )
        self.pruner = Pruner(store, keep_for, retention.interval, self.metrics, first)
        self.pruner.start()

    async def stop(self) -> None:
        if self.pruner is not None:
            await self.pruner.stop()
        if self.reloader is not None:
            await self.reloader.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.registry.shutdown(self.config)
        if self.engine.store is not None:
            await self.engine.store.close()
        log.info("hookwise stopped")


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


def build_service(config_path: str | os.PathLike[str]) -> Service:
    """Everything that can be checked without I/O; raises ConfigError with all problems."""
    config = load_config(config_path)
    plugins_dir = config.path(config.plugins_dir) if config.plugins_dir else None
    registry = load_registry(plugins_dir)
    sources = bind_sources(config, registry.sources)
    check_integrations(config, registry.integrations)
    templates = make_environment(
        registry.prepare_jinja,
        max_output=config.templates.max_output,
        timeout=config.templates.timeout,
    )
    secrets.known.add(config_secrets(config, sources, registry))
    loader = RuleLoader(registry.actions, templates, registry.integrations, config.integrations)
    rules = loader.load(config.rules_path)
    engine = Engine(config, sources, registry.actions, templates, RuleIndex(rules))
    return Service(config, registry, loader, engine, Metrics())
