"""`hookwise db`: the store's schema and retention, without plugins or rules."""

from __future__ import annotations

import sys

import click

from hookwise import retention
from hookwise.cli.common import (
    complete,
    config_option,
    loaded,
    main,
    on_store,
)
from hookwise.config import load_config
from hookwise.durations import parse_duration
from hookwise.event import iso_time
from hookwise.store import Pruned, Schema, Store, display_url


@main.group()
def db() -> None:
    """The store's database."""


@db.command()
@config_option
def upgrade(config_path: str) -> None:
    """Apply the schema migrations this hookwise needs; back the database up first."""
    config = loaded(load_config, config_path)

    async def found(store: Store, schema: Schema) -> Schema:
        return schema

    schema = complete(on_store(config, found, upgrade=True))
    where = display_url(config.store_url)
    if schema.found == schema.current:
        click.echo(f"{where}: schema version {schema.current}, up to date")
    else:
        click.echo(f"{where}: schema upgraded from version {schema.found} to {schema.current}")


def _duration(ctx: click.Context, param: click.Parameter, value: str | None) -> float | None:
    try:
        return None if value is None else parse_duration(value)
    except ValueError as exc:
        raise click.BadParameter(str(exc)) from None


@db.command()
@config_option
@click.option(
    "--max-age",
    metavar="DURATION",
    callback=_duration,
    help="Prune what is older than this (e.g. 90d) instead of retention.max_age.",
)
def prune(config_path: str, max_age: float | None) -> None:
    """Delete finished runs and events older than retention.max_age, now."""
    config = loaded(load_config, config_path)
    if max_age is not None:
        config.retention.max_age = max_age
    keep_for = config.keep_for
    if keep_for is None:
        click.echo(
            "error: retention.max_age is null, so hookwise keeps everything; "
            "pass --max-age to prune anyway",
            err=True,
        )
        sys.exit(1)

    async def pass_once(store: Store, schema: Schema) -> tuple[float, Pruned]:
        return await retention.prune(store, keep_for)

    before, pruned = complete(on_store(config, pass_once))
    where, cutoff = display_url(config.store_url), iso_time(before)
    if pruned.events or pruned.runs or not pruned.busy:
        click.echo(f"{where}: pruned {retention.describe(pruned)} older than {cutoff}")
    if pruned.busy:
        click.echo(f"{where}: another hookwise process is pruning it now and carries on")
