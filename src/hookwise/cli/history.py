"""Reading the history: events, runs, and one of either in full."""

from __future__ import annotations

import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import click

from hookwise.cli.common import (
    config_option,
    main,
    print_json,
    run_with,
)
from hookwise.event import iso_time
from hookwise.queries import (
    EVENT_STATUSES,
    RUN_STATUSES,
    QueryError,
    event_query,
    run_query,
)
from hookwise.service import Found, Hookwise
from hookwise.slack.text import cut
from hookwise.store import EventDetail, EventQuery, RunDetail, RunQuery
from hookwise.views import event_view, run_summary_view, run_view, summary_view

Q = TypeVar("Q", EventQuery, RunQuery)
# What an exported event leaves out: a test case gives it a new id, time and source.
EXPORT_OMITS = ("id", "received_at", "source", "artifact")
F = TypeVar("F", bound=Callable[..., Any])


def _filters(**values: str | None) -> dict[str, str]:
    return {name: value for name, value in values.items() if value}


def _query(parse: Callable[[dict[str, str]], Q], values: dict[str, str]) -> Q:
    try:
        return parse(values)
    except QueryError as exc:
        hint = f"--{exc.parameter.replace('_', '-')}"
        raise click.BadParameter(str(exc), param_hint=hint) from None


_since = click.option("--since", help="ISO 8601 time, or a duration back from now (2h, 7d).")
_until = click.option("--until", help="ISO 8601 time, or a duration back from now.")
_before = click.option("--before", help="The last id of the previous page: the next page.")
_limit = click.option("--limit", default="20", show_default=True)
_json = click.option("--json", "as_json", is_flag=True, help="Print JSON, as the API does.")


@main.group(invoke_without_command=True)
@config_option
@click.option("--source")
@click.option("--domain")
@click.option("--event-type")
@click.option("--status", help=f"One of {', '.join(EVENT_STATUSES)}.")
@click.option("--text", help="Part of an artifact's name, tag or digest.")
@_since
@_until
@_before
@_limit
@_json
@click.pass_context
def events(ctx: click.Context, /, config_path: str, as_json: bool, **values: str | None) -> None:
    """List events, newest first; `hookwise events export ID` writes one as a test fixture."""
    if ctx.invoked_subcommand is not None:
        return
    query = _query(event_query, _filters(**values))
    found = run_with(config_path, lambda s: s.events(query))
    if as_json:
        print_json({"events": [summary_view(summary) for summary in found]})
        return
    for summary in found:
        event = summary.event
        click.echo(
            f"{event.id}  {iso_time(event.received_at)}  {event.source}/{event.domain}/"
            f"{event.event_type}  {summary.status}  runs={summary.runs}"
        )
    _more(found[-1].event.id if found else None, len(found), query.limit, "events")


def run_filters(command: F) -> F:
    """The options that pick runs: `runs` lists them, `retry --all` retries them."""
    for option in reversed(
        [
            click.option("--status", help=f"Comma-separated: {', '.join(RUN_STATUSES)}."),
            click.option("--rule"),
            click.option("--source"),
            click.option("--key", help="A flow-control key (concurrency, debounce, wait_for)."),
            _since,
            _until,
        ]
    ):
        command = option(command)
    return command


def runs_picked(values: dict[str, str | None]) -> RunQuery:
    return _query(run_query, _filters(**values))


@main.command()
@config_option
@run_filters
@_before
@_limit
@_json
def runs(config_path: str, as_json: bool, **values: str | None) -> None:
    """List runs, newest first: `--status dead` is what needs attention."""
    query = runs_picked(values)
    found = run_with(config_path, lambda s: s.runs(query))
    if as_json:
        print_json({"runs": [run_summary_view(run) for run in found]})
        return
    for run in found:
        error = f"  {cut(run.error, 120)}" if run.error else ""
        click.echo(
            f"{run.id}  {iso_time(run.created_at)}  {run.rule}  {run.status}  "
            f"attempts={run.attempts_total}{error}"
        )
    _more(found[-1].id if found else None, len(found), query.limit, "runs")


def _more(last: str | None, shown: int, limit: int, noun: str) -> None:
    if not shown:
        click.echo(f"no {noun}")
    elif shown == limit:
        click.echo(f"… more with --before {last}")


@main.command()
@config_option
@_json
@click.argument("wanted", metavar="ID")
def show(config_path: str, wanted: str, as_json: bool) -> None:
    """Show an event with every run it caused, or one run; ID may be a unique prefix."""

    async def look(service: Hookwise) -> tuple[Found, EventDetail | RunDetail | None]:
        found = await service.find(wanted)
        if found.kind == "event" and found.id:
            return found, await service.event(found.id)
        if found.kind == "run" and found.id:
            return found, await service.run(found.id)
        return found, None

    found, detail = run_with(config_path, look)
    if detail is None:
        click.echo(f"error: {found.problem or f'no event or run {wanted}'}", err=True)
        sys.exit(1)
    if isinstance(detail, RunDetail):
        runs = [run_view(detail)]
        if as_json:
            print_json({"run": runs[0]})
            return
        click.echo(f"event {detail.run.event_id}")
    else:
        shown = event_view(detail)
        if as_json:
            print_json(shown)
            return
        event, runs = shown["event"], shown["runs"]
        click.echo(
            f"event {event['id']}  {event['source']}/{event['domain']}/{event['event_type']}"
        )
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


@events.command("export")
@config_option
@click.option("-o", "--output", type=click.Path(dir_okay=False), help="Write here, not stdout.")
@click.argument("wanted", metavar="EVENT_ID")
def export(config_path: str, wanted: str, output: str | None) -> None:
    """Write a stored event as a rule test fixture (`stored:` in a test case): a real
    delivery that misbehaved becomes a regression test. It holds no credentials:
    hookwise never stores them."""

    async def look(service: Hookwise) -> tuple[Found, EventDetail | None]:
        found = await service.find(wanted, only="event")
        if found.kind == "event" and found.id:
            return found, await service.event(found.id)
        return found, None

    found, detail = run_with(config_path, look)
    if detail is None:
        problem = found.problem or f"{wanted} is a run, not an event; give its event's id"
        click.echo(f"error: {problem}", err=True)
        sys.exit(1)
    fixture = {k: v for k, v in detail.event.as_dict().items() if k not in EXPORT_OMITS}
    text = json.dumps({"exported_from": detail.event.id, **fixture}, indent=2) + "\n"
    if output is None:
        click.echo(text, nl=False)
        return
    Path(output).write_text(text)
    click.echo(f"wrote {output}; use it in a test case as `stored: {Path(output).name}`", err=True)
