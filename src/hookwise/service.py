"""Assembling hookwise from its config: plugins, sources, rules, store, worker."""

from __future__ import annotations

import logging
import os
import socket
from dataclasses import dataclass

from hookwise.config import Config, bind_sources, check_integrations, load_config
from hookwise.engine import Engine
from hookwise.matcher import RuleIndex
from hookwise.metrics import Metrics
from hookwise.plugins import Registry, load_registry
from hookwise.reload import Reloader
from hookwise.rules import RuleLoader
from hookwise.runner import Runner
from hookwise.store import open_store
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

    async def start(self, *, with_worker: bool = True, watch: bool = True) -> None:
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
            self.worker.start()
        if watch:
            self.reloader = Reloader(self.loader, self.config.rules_path, self.engine)
            await self.reloader.start()
        log.info(
            "hookwise started: %d rules, sources %s, store %s",
            len(self.engine.rules.rules),
            ", ".join(sorted(self.engine.sources)) or "none",
            self.config.store_url.split("@")[-1],
        )

    async def stop(self) -> None:
        if self.reloader is not None:
            await self.reloader.stop()
        if self.worker is not None:
            await self.worker.stop()
        await self.registry.shutdown(self.config)
        if self.engine.store is not None:
            await self.engine.store.close()
        log.info("hookwise stopped")


def build_service(config_path: str | os.PathLike[str]) -> Service:
    """Everything that can be checked without I/O; raises ConfigError with all problems."""
    config = load_config(config_path)
    plugins_dir = config.path(config.plugins_dir) if config.plugins_dir else None
    registry = load_registry(plugins_dir)
    sources = bind_sources(config, registry.sources)
    check_integrations(config, registry.integrations)
    templates = make_environment(registry.prepare_jinja)
    loader = RuleLoader(registry.actions, templates, registry.integrations, config.integrations)
    rules = loader.load(config.rules_path)
    engine = Engine(config, sources, registry.actions, templates, RuleIndex(rules))
    return Service(config, registry, loader, engine, Metrics())
