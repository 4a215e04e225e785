"""The flow keys an event renders: for the runs it starts, and for the runs it releases."""

from __future__ import annotations

import logging
from typing import Any

from hookwise.errors import RenderError
from hookwise.event import Event, new_id
from hookwise.filter import check_when, with_rule
from hookwise.rules.flow import BLOCKS
from hookwise.rules.model import Rule
from hookwise.rules.when import as_text
from hookwise.status import RunStatus
from hookwise.store import FlowKeys, NewRun
from hookwise.templates import Templates

log = logging.getLogger("hookwise.flow")


def new_run(rule: Rule, context: dict[str, Any], templates: Templates) -> NewRun:
    """The run a matching rule starts, its keys rendered; a key that cannot render
    starts the run `dead`, saying why, rather than losing the event."""
    keys: dict[str, str] = {}
    for block in BLOCKS:
        settings = getattr(rule, block.name)
        if settings is None or block.key is None or block.flow_key is None:
            continue
        where = f"rule {rule.name}, {block.name}.{block.key}"
        try:
            text = getattr(settings, block.key)
            keys[block.flow_key] = as_text(templates.render(text, with_rule(rule, context), where))
        except RenderError as exc:
            return NewRun(
                new_id(), rule.name, rule.snapshot(), status=RunStatus.DEAD, error=str(exc)
            )
    return NewRun(new_id(), rule.name, rule.snapshot(), FlowKeys(**keys))


def released(
    awaiting: list[Rule], event: Event, context: dict[str, Any], templates: Templates
) -> list[tuple[str, str]]:
    """(rule, correlation key) of the waiting runs this event may release."""
    found = []
    for rule in awaiting:
        assert rule.wait_for is not None
        own = with_rule(rule, context)
        if not check_when(rule.wait_for.when, context["event"], templates, own).matched:
            continue
        where = f"rule {rule.name}, wait_for.correlate"
        try:
            key = templates.render(rule.wait_for.correlate, own, where)
        except RenderError as exc:
            log.warning("event %s cannot release runs of %s: %s", event.id, rule.name, exc)
            continue
        found.append((rule.name, as_text(key)))
    return found
