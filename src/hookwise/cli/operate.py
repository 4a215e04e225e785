"""People acting on runs and events: replay, approve, reject, retry, cancel."""

from __future__ import annotations

import dataclasses
import getpass
import sys
from collections.abc import Awaitable, Callable

import click

from hookwise.cli.common import (
    config_option,
    main,
    run_with,
)
from hookwise.cli.history import run_filters, runs_picked
from hookwise.queries import MAX_LIMIT as MAX_BULK
from hookwise.service import Answer, Hookwise


@main.command()
@config_option
@click.argument("event_id")
def replay(config_path: str, event_id: str) -> None:
    """Re-evaluate a stored event against the current rules; a running service executes the runs."""
    runs = run_with(config_path, lambda s: s.replay(event_id))
    if runs is None:
        click.echo(f"no event {event_id}", err=True)
        sys.exit(1)
    click.echo(f"replayed {event_id}: {len(runs)} new runs {' '.join(runs)}".rstrip())


def _act(config_path: str, wanted: str, act: Callable[[Hookwise, str], Awaitable[Answer]]) -> None:
    """Apply `act` to the run `wanted` names: a run id, or a unique beginning of one."""

    async def resolved(service: Hookwise) -> Answer:
        found = await service.find(wanted, only="run")
        if found.kind == "run" and found.id:
            return await act(service, found.id)
        return Answer("unknown", found.problem)

    answer = run_with(config_path, resolved)
    if not answer.ok:
        click.echo(f"error: {answer.message}", err=True)
        sys.exit(1)
    click.echo(f"{answer.message}; a running service acts on it")


_by_option = click.option(
    "--by",
    default=lambda: getpass.getuser(),
    show_default="your login name",
    help="Who acts, as recorded in the run's history.",
)


@main.command()
@config_option
@click.argument("run_id")
@_by_option
def approve(config_path: str, run_id: str, by: str) -> None:
    """Approve a run waiting for approval."""
    _act(config_path, run_id, lambda s, run: s.decide(run, by, "approve", None, "cli"))


@main.command()
@config_option
@click.argument("run_id")
@click.option("--reason", required=True, help="Why; shown in Slack and the run's history.")
@_by_option
def reject(config_path: str, run_id: str, reason: str, by: str) -> None:
    """Reject a run waiting for approval; it ends as `rejected`."""
    _act(config_path, run_id, lambda s, run: s.decide(run, by, "reject", reason, "cli"))


@main.command()
@config_option
@click.argument("run_id", required=False)
@click.option(
    "--from-start",
    is_flag=True,
    help="Start over at the first action, under the rule as loaded now.",
)
@click.option("--all", "every", is_flag=True, help="Retry every dead run the filters pick.")
@run_filters
@click.option("--yes", is_flag=True, help="Do not ask before a bulk retry.")
@_by_option
def retry(
    config_path: str,
    run_id: str | None,
    from_start: bool,
    every: bool,
    yes: bool,
    by: str,
    **filters: str | None,
) -> None:
    """Run a dead run again from the action that failed (or --from-start), with its
    retries renewed; or, with --all, every dead run the filters pick."""
    if every == bool(run_id):
        raise click.UsageError("give a RUN_ID, or --all with filters, not both")
    if run_id:
        _act(config_path, run_id, lambda s, run: s.retry(run, by, "cli", from_start=from_start))
        return
    query = runs_picked({**filters, "status": "dead"})
    count = len(run_with(config_path, lambda s: s.runs(dataclasses.replace(query, limit=MAX_BULK))))
    if not count:
        click.echo("no dead runs match")
        return
    more = "+" if count == MAX_BULK else ""
    if not yes:
        click.confirm(f"retry {count}{more} dead runs?", abort=True)
    answers = run_with(config_path, lambda s: s.retry_all(query, by, "cli", from_start=from_start))
    for _, answer in answers:
        if not answer.ok:
            click.echo(f"error: {answer.message}", err=True)
    done = sum(answer.ok for _, answer in answers)
    click.echo(f"retried {done} of {len(answers)} dead runs; a running service acts on them")
    if done < len(answers):
        sys.exit(1)


@main.command()
@config_option
@click.argument("run_id")
@click.option("--reason", help="Why; recorded in the run's history.")
@_by_option
def cancel(config_path: str, run_id: str, reason: str | None, by: str) -> None:
    """Stop a run that has not finished; it ends as `cancelled`."""
    _act(config_path, run_id, lambda s, run: s.cancel(run, by, reason, "cli"))
