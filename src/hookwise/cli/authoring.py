"""Commands for rule and plugin authors: check, test (the dry run), plugins, schema."""

from __future__ import annotations

import json
import sys
from pathlib import Path
from typing import Any

import click

from hookwise.cli.common import (
    complete,
    config_option,
    main,
    print_json,
    registry_for,
    service_for,
)
from hookwise.config import unset_in
from hookwise.errors import ConfigError, RequestError
from hookwise.rules.loader import TESTS_FOLDER
from hookwise.rules.schema import rules_schema
from hookwise.service import Hookwise
from hookwise.sources import Delivery
from hookwise.suites import CaseResult, report, run_suites, suite_files


@main.command()
@config_option
def check(config_path: str) -> None:
    """Validate the config and every rule file; exit 1 listing all problems."""
    service = service_for(config_path)
    rules = service.rules
    for warning in service.warnings():
        click.echo(warning, err=True)
    doc = service.config.document
    for (line, col), name in sorted(doc.unset.items()):
        click.echo(
            f"{doc.file}:{line}:{col}: [warning] environment variable {name} is not set; "
            "`serve` and `worker` need it",
            err=True,
        )
    for problem in service.loader.warnings:
        click.echo(str(problem), err=True)
    click.echo(
        f"ok: {len(rules)} rules, {len(service.engine.sources)} sources, "
        f"{len(service.registry.actions)} actions installed"
    )


@main.command("test")
@config_option
@click.option("--source", "source_name", help="The configured source to test as.")
@click.option("--header", "headers", multiple=True, help="K:V, repeatable (e.g. auth headers).")
@click.option("--json", "as_json", is_flag=True, help="Print the full report as JSON.")
@click.option(
    "--suite",
    "suites",
    multiple=True,
    type=click.Path(exists=True),
    help="Rule test files or folders to run (default: the `tests` folder of the rules).",
)
@click.option("--junit", type=click.Path(dir_okay=False), help="Also write JUnit XML here.")
@click.argument("event_file", required=False, type=click.Path(exists=True, dir_okay=False))
def test_command(
    config_path: str,
    source_name: str | None,
    headers: tuple[str, ...],
    as_json: bool,
    suites: tuple[str, ...],
    junit: str | None,
    event_file: str | None,
) -> None:
    """Run the rule test suites; or, given EVENT_FILE and --source, dry-run one payload:
    the normalized event and, for every rule, whether and why it matches."""
    if event_file is None:
        _run_suites(config_path, suites, junit)
        return
    if source_name is None:
        raise click.UsageError("a dry run of EVENT_FILE needs --source NAME")
    service = service_for(config_path)
    parsed = {}
    for header in headers:
        name, sep, value = header.partition(":")
        if not sep:
            raise click.BadParameter(f"expected K:V, got {header!r}", param_hint="--header")
        parsed[name.strip().lower()] = value.strip()
    delivery = Delivery(parsed, Path(event_file).read_bytes())
    unset = unset_in(service.config, ("sources", source_name))
    if unset:
        click.echo(
            f"note: not verified: {', '.join(unset)} is not set, so the sender's credential "
            "cannot be checked; the rules see the event all the same",
            err=True,
        )
    try:
        report = service.engine.dry_run(source_name, delivery, verify=not unset)
    except RequestError as exc:
        click.echo(f"{event_file}: refused ({exc.reason}): {exc}", err=True)
        sys.exit(1)
    if as_json:
        print_json(report)
        return
    for item in report["events"]:
        event = item["event"]
        click.echo(f"event     {event['source']} / {event['domain']} / {event['event_type']}")
        click.echo(f"data      {_brief(event['data'])}")
        artifact = {k: v for k, v in (event.get("artifact") or {}).items() if v is not None}
        if artifact:
            click.echo(f"artifact  {_brief(artifact)}")
        if event.get("meta"):
            click.echo(f"meta      {_brief(event['meta'])}")
        for verdict in item["rules"]:
            mark = "MATCH" if verdict["matched"] else "no   "
            click.echo(f"{mark}  {verdict['rule']}  ({verdict['origin']})")
            if not verdict["matched"]:
                click.echo(f"         {verdict['reason']}")
            for action in verdict.get("actions", []):
                click.echo(f"         {action['action']} ({action['uses']})")
                if "params" in action:
                    click.echo(f"           with {_brief(action['params'], 500)}")
                if "error" in action:
                    click.echo(f"           error: {action['error']}")
        if not item["rules"]:
            click.echo("no rules are loaded")


@main.command()
@config_option
@click.option("--json", "as_json", is_flag=True)
def plugins(config_path: str, as_json: bool) -> None:
    """Installed actions and source kinds, with their parameter schemas."""
    registry = registry_for(config_path)
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
        print_json(report)
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
    registry = registry_for(config_path)
    print_json(rules_schema(registry.actions, registry.integrations))


def _run_suites(config_path: str, given: tuple[str, ...], junit_path: str | None) -> None:
    service = service_for(config_path)
    default = service.config.rules_path / TESTS_FOLDER
    roots = [Path(path) for path in given] or [default]
    files = [file for root in roots for file in suite_files(root)]
    if not files:
        click.echo(f"error: no rule test files in {', '.join(map(str, roots))}", err=True)
        sys.exit(1)
    results = complete(_suites_of(service, files))
    for line in report.text(results):
        click.echo(line)
    if junit_path:
        report.junit(results, Path(junit_path))
    if any(result.failures for result in results):
        sys.exit(1)


async def _suites_of(service: Hookwise, files: list[Path]) -> list[CaseResult]:
    try:
        return await run_suites(service, files)
    except ConfigError as exc:
        for problem in exc.problems:
            click.echo(str(problem), err=True)
        sys.exit(1)
    finally:
        service.engine.templates.close()


def _brief(value: Any, limit: int = 300) -> str:
    """JSON on one line; a long value is cut where it shows, with an ellipsis."""
    text = json.dumps(value, default=str, ensure_ascii=False)
    return text if len(text) <= limit else text[: limit - 1] + "…"
