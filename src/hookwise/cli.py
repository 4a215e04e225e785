"""The `hookwise` command line."""

from __future__ import annotations

import asyncio
import contextlib
import getpass
import ipaddress
import json
import logging
import signal
import socket
import sys
from collections.abc import AsyncIterator, Awaitable, Callable, Coroutine
from pathlib import Path
from typing import Any, TypeVar

import click
import uvicorn

from hookwise import logs, retention
from hookwise.config import DEFAULT_PATH, Config, load_config
from hookwise.connections import protocol_for
from hookwise.durations import parse_duration
from hookwise.errors import ConfigError, HookwiseError, RequestError, StoreError
from hookwise.event import iso_time
from hookwise.plugins import Registry, load_registry
from hookwise.rules.schema import rules_schema
from hookwise.service import Hookwise, build_service
from hookwise.sources import Delivery
from hookwise.status import EventStatus
from hookwise.store import Pruned, Schema, Store, display_url, open_store
from hookwise.views import event_view, summary_view

T = TypeVar("T")
config_option = click.option(
    "--config",
    "config_path",
    default=DEFAULT_PATH,
    show_default=True,
    type=click.Path(dir_okay=False),
    help="The service configuration file.",
)


log = logging.getLogger("hookwise")


def _loaded(load: Callable[[str], T], config_path: str) -> T:
    """What `load` makes of the config file, or exit 1 with every problem as file:line:col."""
    try:
        return load(config_path)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        noun = "problem" if len(exc.problems) == 1 else "problems"
        click.echo(f"{len(exc.problems)} {noun} found; nothing was started.", err=True)
        sys.exit(1)


def _service(config_path: str) -> Hookwise:
    """Build the service or exit 1 with every problem as file:line:col."""
    return _loaded(build_service, config_path)


def _log_to_stderr() -> None:
    logs.configure(logging.INFO)


def _registry(config_path: str) -> Registry:
    """Plugins only: `schema` and `plugins` must work while rules are still broken."""
    try:
        config = load_config(config_path) if Path(config_path).exists() else Config()
        return load_registry(config.path(config.plugins_dir) if config.plugins_dir else None)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)


def _print_json(value: Any) -> None:
    click.echo(json.dumps(value, indent=2, default=str))


@click.group()
@click.version_option(package_name="hookwise")
def main() -> None:
    """hookwise: registry webhooks in, YAML rules match, actions run durably."""


@main.command()
@config_option
@click.option("--listen", help="host:port, overriding `listen` in the config.")
def serve(config_path: str, listen: str | None) -> None:
    """Receive webhooks and run the rules' actions."""
    _log_to_stderr()
    service = _service(config_path)
    host, _, port = (listen or service.config.listen).rpartition(":")
    host = host.strip("[]")
    if not port.isdigit() or int(port) > 65535:
        raise click.BadParameter(f"expected host:port, got {listen!r}", param_hint="--listen")
    config = service.config
    if config.api_token is None and not config.allow_unauthenticated_api and not _loopback(host):
        click.echo(
            f"error: refusing to listen on {host}:{port} without api_token: anyone who can reach "
            "it could read the event history and replay events. Set api_token (e.g. "
            "`api_token: ${HOOKWISE_API_TOKEN}`), listen on 127.0.0.1, or set "
            "allow_unauthenticated_api: true to serve the API open on purpose.",
            err=True,
        )
        sys.exit(1)
    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    # IPPROTO_TCP explicitly: asyncio sets TCP_NODELAY only on sockets that name it, and
    # without it every answer on a kept-alive connection waits ~40 ms for a delayed ACK.
    sock = socket.socket(family, socket.SOCK_STREAM, socket.IPPROTO_TCP)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, int(port)))
    except OSError as exc:
        sock.close()
        click.echo(f"error: cannot listen on {host}:{port}: {exc.strerror or exc}", err=True)
        sys.exit(1)
    sock.listen(2048)
    bound_port = sock.getsockname()[1]
    from hookwise.app import create_app

    shown = f"[{host}]" if family == socket.AF_INET6 else host

    def ready() -> None:
        click.echo(f"hookwise listening on http://{shown}:{bound_port}", err=True)

    app = create_app(service, on_ready=ready)
    server = uvicorn.Server(
        uvicorn.Config(
            app,
            http=protocol_for(service.config.server),
            log_level="warning",
            access_log=False,
            lifespan="on",
            log_config=None,  # uvicorn's lines go through hookwise's masked handler too
        )
    )
    server.run(sockets=[sock])


def _loopback(host: str) -> bool:
    """Only this machine can connect: 127.0.0.0/8, ::1, or localhost."""
    if host.lower() == "localhost":
        return True
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


@main.command()
@config_option
def worker(config_path: str) -> None:
    """Execute runs without receiving webhooks: one more process on a shared store."""
    _log_to_stderr()
    service = _service(config_path)
    try:
        asyncio.run(_work(service))
    except HookwiseError as exc:
        log.error("hookwise cannot start: %s", exc)
        sys.exit(1)


async def _work(service: Hookwise) -> None:
    """Run the worker until SIGTERM or SIGINT, then stop it as `serve` does."""
    await service.start(watch=False)
    stop = asyncio.Event()
    loop = asyncio.get_running_loop()
    for signum in (signal.SIGTERM, signal.SIGINT):
        loop.add_signal_handler(signum, stop.set)
    # SIGHUP reloads the rules of `serve`; a worker executes the snapshots runs carry.
    loop.add_signal_handler(
        signal.SIGHUP, lambda: log.info("SIGHUP: a worker has no rules to reload")
    )
    log.info("hookwise worker running; SIGTERM or Ctrl-C stops it")
    try:
        await stop.wait()
        log.info("stopping: finishing the runs under way")
    finally:
        await service.stop()


@main.command()
@config_option
def check(config_path: str) -> None:
    """Validate the config and every rule file; exit 1 listing all problems."""
    service = _service(config_path)
    rules = service.rules
    click.echo(
        f"ok: {len(rules)} rules, {len(service.engine.sources)} sources, "
        f"{len(service.registry.actions)} actions installed"
    )


@main.command("test")
@config_option
@click.option("--source", "source_name", required=True, help="The configured source to test as.")
@click.option("--header", "headers", multiple=True, help="K:V, repeatable (e.g. auth headers).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.argument("event_file", type=click.Path(exists=True, dir_okay=False))
def test_command(
    config_path: str, source_name: str, headers: tuple[str, ...], as_json: bool, event_file: str
) -> None:
    """Dry run: show the normalized event and, for every rule, whether and why it matches."""
    service = _service(config_path)
    parsed = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep:
            raise click.BadParameter(f"expected K:V, got {header!r}", param_hint="--header")
        parsed[name.strip().lower()] = value.strip()
    delivery = Delivery(parsed, Path(event_file).read_bytes())
    try:
        report = service.engine.dry_run(source_name, delivery)
    except RequestError as exc:
        click.echo(f"{event_file}: refused ({exc.reason}): {exc}", err=True)
        sys.exit(1)
    if as_json:
        _print_json(report)
        return
    for item in report["events"]:
        event = item["event"]
        click.echo(f"event  {event['source']} / {event['domain']} / {event['event_type']}")
        click.echo(f"data   {json.dumps(event['data'], default=str)[:300]}")
        for verdict in item["rules"]:
            mark = "MATCH" if verdict["matched"] else "no   "
            click.echo(f"{mark}  {verdict['rule']}  ({verdict['origin']})")
            if not verdict["matched"]:
                click.echo(f"         {verdict['reason']}")
            for action in verdict.get("actions", []):
                click.echo(f"         {action['action']} ({action['uses']})")
                if "params" in action:
                    click.echo(f"           with {json.dumps(action['params'], default=str)}")
                if "error" in action:
                    click.echo(f"           error: {action['error']}")
        if not item["rules"]:
            click.echo("no rules are loaded")


@contextlib.asynccontextmanager
async def _opened(service: Hookwise) -> AsyncIterator[Hookwise]:
    await service.open()
    try:
        yield service
    finally:
        await service.close()


def _complete(work: Coroutine[Any, Any, T]) -> T:
    """Run `work` to its end; a store that cannot be used exits 1 saying why."""
    try:
        return asyncio.run(work)
    except (StoreError, OSError) as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)


def _run(config_path: str, work: Callable[[Hookwise], Awaitable[T]]) -> T:
    async def main() -> T:
        async with _opened(_service(config_path)) as service:
            return await work(service)

    return _complete(main())


async def _on_store(
    config: Config, work: Callable[[Store, Schema], Awaitable[T]], upgrade: bool = False
) -> T:
    """The config's store alone, without plugins or rules: `hookwise db` commands must
    work while a rule file is broken, and touch nothing but the database."""
    store = open_store(config.store_url)
    try:
        return await work(store, await store.open(upgrade=upgrade))
    finally:
        await store.close()


@main.command()
@config_option
@click.option("--source")
@click.option("--domain")
@click.option("--event-type")
@click.option("--status", type=click.Choice([status.value for status in EventStatus]))
@click.option("--limit", default=20, show_default=True)
@click.option("--json", "as_json", is_flag=True)
def events(
    config_path: str,
    source: str | None,
    domain: str | None,
    event_type: str | None,
    status: str | None,
    limit: int,
    as_json: bool,
) -> None:
    """List recent events, newest first."""
    filters = {
        k: v for k, v in {"source": source, "domain": domain, "event_type": event_type}.items() if v
    }
    wanted = EventStatus(status) if status else None
    found = _run(config_path, lambda s: s.events(filters, wanted, limit))
    if as_json:
        _print_json({"events": [summary_view(summary) for summary in found]})
        return
    for summary in found:
        event = summary.event
        click.echo(
            f"{event.id}  {iso_time(event.received_at)}  {event.source}/{event.domain}/"
            f"{event.event_type}  {summary.status}  runs={summary.runs}"
        )
    if not found:
        click.echo("no events")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
@click.argument("event_id")
def show(config_path: str, event_id: str, as_json: bool) -> None:
    """Show one event and every run it caused, with each attempt."""

    detail = _run(config_path, lambda s: s.event(event_id))
    if detail is None:
        click.echo(f"no event {event_id}", err=True)
        sys.exit(1)
    shown = event_view(detail)
    if as_json:
        _print_json(shown)
        return
    event, runs = shown["event"], shown["runs"]
    click.echo(f"event {event['id']}  {event['source']}/{event['domain']}/{event['event_type']}")
    click.echo(f"  received {event['received_at']}")
    click.echo(f"  data {json.dumps(event['data'], default=str)[:500]}")
    for run in runs:
        click.echo(
            f"run {run['id']}  rule={run['rule']}  {run['status']}  attempts={run['attempts']}"
        )
        if run["error"]:
            click.echo(f"  error: {run['error']}")
        for attempt in run["history"]:
            why = f"  {attempt['error']}" if attempt["error"] else ""
            click.echo(
                f"  - {attempt['action']} #{attempt['attempt']} {attempt['status']} "
                f"({attempt['duration_ms']} ms){why}"
            )
        for line in run["log"]:
            click.echo(f"    log [{line['level']}] {line['message']}")


@main.command()
@config_option
@click.argument("event_id")
def replay(config_path: str, event_id: str) -> None:
    """Re-evaluate a stored event against the current rules; a running service executes the runs."""
    runs = _run(config_path, lambda s: s.replay(event_id))
    if runs is None:
        click.echo(f"no event {event_id}", err=True)
        sys.exit(1)
    click.echo(f"replayed {event_id}: {len(runs)} new runs {' '.join(runs)}".rstrip())


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def plugins(config_path: str, as_json: bool) -> None:
    """Installed actions and source kinds, with their parameter schemas."""
    registry = _registry(config_path)
    report: dict[str, Any] = {
        "plugins": registry.plugin_names(),
        "actions": {
            name: {
                "description": spec.description,
                "integration": spec.integration,
                "params": spec.params.model_json_schema(),
            }
            for name, spec in sorted(registry.actions.items())
        },
        "sources": {
            name: {"description": kind.description, "options": kind.options.model_json_schema()}
            for name, kind in sorted(registry.sources.items())
        },
        "integrations": {
            name: {"description": spec.description, "settings": spec.settings.model_json_schema()}
            for name, spec in sorted(registry.integrations.items())
        },
    }
    if as_json:
        _print_json(report)
        return
    for section in ("actions", "sources", "integrations"):
        click.echo(f"{section}:")
        for name, info in report[section].items():
            schema = info.get("params") or info.get("options") or info.get("settings") or {}
            required = set(schema.get("required", []))
            fields = ", ".join(
                f"{key}{'' if key in required else '?'}" for key in schema.get("properties", {})
            )
            click.echo(f"  {name}: {info['description']}")
            click.echo(f"      {fields}")


@main.command()
@config_option
def schema(config_path: str) -> None:
    """JSON Schema of rule files, for yaml-language-server and other editors."""
    registry = _registry(config_path)
    _print_json(rules_schema(registry.actions, registry.integrations))


@main.group()
def db() -> None:
    """The store's database."""


@db.command()
@config_option
def upgrade(config_path: str) -> None:
    """Apply the schema migrations this hookwise needs; back the database up first."""
    config = _loaded(load_config, config_path)

    async def found(store: Store, schema: Schema) -> Schema:
        return schema

    schema = _complete(_on_store(config, found, upgrade=True))
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
    config = _loaded(load_config, config_path)
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

    before, pruned = _complete(_on_store(config, pass_once))
    where, cutoff = display_url(config.store_url), iso_time(before)
    if pruned.events or pruned.runs or not pruned.busy:
        click.echo(f"{where}: pruned {retention.describe(pruned)} older than {cutoff}")
    if pruned.busy:
        click.echo(f"{where}: another hookwise process is pruning it now and carries on")


def _decide(config_path: str, run_id: str, decision: str, by: str, reason: str | None) -> None:
    decided = _run(config_path, lambda s: s.decide(run_id, by, decision, reason, "cli"))
    if not decided.ok:
        click.echo(f"error: {decided.message}", err=True)
        sys.exit(1)
    click.echo(f"{decided.message}; a running service acts on it")


_by_option = click.option(
    "--by",
    default=lambda: getpass.getuser(),
    show_default="your login name",
    help="Who decides, as recorded in the run's audit trail.",
)


@main.command()
@config_option
@click.argument("run_id")
@_by_option
def approve(config_path: str, run_id: str, by: str) -> None:
    """Approve a run waiting for approval."""
    _decide(config_path, run_id, "approve", by, None)


@main.command()
@config_option
@click.argument("run_id")
@click.option("--reason", required=True, help="Why; shown in Slack and the run's history.")
@_by_option
def reject(config_path: str, run_id: str, reason: str, by: str) -> None:
    """Reject a run waiting for approval; it ends as `rejected`."""
    _decide(config_path, run_id, "reject", by, reason)
