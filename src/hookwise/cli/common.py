"""What every command shares: the `hookwise` group, loading the config, the service
or the store alone, and printing JSON."""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import os
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click

from hookwise import logs
from hookwise.config import DEFAULT_PATH, Config, load_config
from hookwise.errors import ConfigError, StoreError
from hookwise.plugins import Registry, load_registry
from hookwise.service import Hookwise, build_service
from hookwise.store import Schema, Store, open_store

T = TypeVar("T")
config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The service configuration file.",
)


def loaded(load: Callable[[str], T], config_path: str) -> T:
    """What `load` makes of the config file, or exit 1 with every problem as file:line:col."""
    try:
        return load(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        noun = "problem" if len(exc.problems) == 1 else "problems"
        click.echo(f"{len(exc.problems)} {noun} found; nothing was started.", err=True)
        sys.exit(1)


def service_for(config_path: str, *, strict: bool = False) -> Hookwise:
    """Build the service or exit 1 with every problem as file:line:col.

    Only `serve` and `worker` are `strict`: they receive and act, so every `${VAR}` must
    be set. The other commands do without the secrets they do not use.
    """
    return loaded(lambda path: build_service(path, lenient=not strict), config_path)


LOG_LEVELS = {"debug": logging.DEBUG, "info": logging.INFO, "warning": logging.WARNING}


def log_to_stderr() -> None:
    """INFO, or HOOKWISE_LOG_LEVEL (debug, info, warning): debug adds every run's log lines."""
    wanted = os.environ.get("HOOKWISE_LOG_LEVEL", "info").strip().lower()
    if wanted not in LOG_LEVELS:
        click.echo(
            f"error: HOOKWISE_LOG_LEVEL={wanted!r}; use one of {', '.join(LOG_LEVELS)}", err=True
        )
        sys.exit(2)
    logs.configure(LOG_LEVELS[wanted])


def registry_for(config_path: str) -> Registry:
    """Plugins only: `schema` and `plugins` must work while rules are still broken."""
    try:
        config = load_config(config_path, lenient=True) if Path(config_path).exists() else Config()
        return load_registry(config.path(config.plugins_dir) if config.plugins_dir else None)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)


def print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
@click.version_option(package_name="hookwise")
def main() -> None:
    """hookwise: registry webhooks in, YAML rules match, actions run durably."""


@contextlib.asynccontextmanager
async def opened(service: Hookwise) -> AsyncIterator[Hookwise]:
    await service.open()
    try:
        yield service
    finally:
        await service.close()


def complete(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end; a store that cannot be used exits 1 saying why."""
    try:
        return asyncio.run(work)
    except (StoreError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def run_with(config_path: str, work: Callable[[Hookwise], Awaitable[T]]) -> T:
    async def main() -> T:
        async with opened(service_for(config_path)) as service:
            return await work(service)

    return complete(main())


async def on_store(
    config: Config, work: Callable[[Store, Schema], Awaitable[T]], upgrade: bool = False
) -> T:
    """The config's store alone, without plugins or rules: `hookwise db` commands must
    work while a rule file is broken, and touch nothing but the database."""
    store = open_store(config.store_url)
    try:
        return await work(store, await store.open(upgrade=upgrade))
    finally:
        await store.close()
