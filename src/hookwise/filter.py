"""Does one rule match one event, and if not, exactly why not. Pure: no I/O, no state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookwise.conditions import When, as_text
from hookwise.globs import glob_match
from hookwise.paths import MISSING, lookup
from hookwise.rules import Rule
from hookwise.templates import RenderError, Templates


@dataclass(frozen=True)
class Verdict:
    matched: bool
    reason: str


MATCHED = Verdict(True, "matched")


def _matching_glob(value: Any, globs: list[str]) -> str | None:
    """The first glob the value matches; a list matches when any of its scalars does."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, dict | list):
            continue
        text = as_text(item)
        for glob in globs:
            if glob_match(glob, text):
                return glob
    return None


def check_dimensions(when: When, event: dict[str, Any]) -> Verdict:
    for field in ("source", "domain", "event_type"):
        globs: list[str] = getattr(when, field)
        if _matching_glob(event[field], globs) is None:
            return Verdict(False, f"{field} {event[field]!r} does not match {_show(globs)}")
    return MATCHED


def check_criteria(
    when: When, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    """`match`, then `exclude`, then `if`: cheapest first, and the reason names the key."""
    for path, globs in when.match.items():
        value = lookup(event, path)
        if value is MISSING:
            return Verdict(False, f"match {path}: the event has no {path}")
        if _matching_glob(value, globs) is None:
            return Verdict(False, f"match {path}: {_brief(value)} does not match {_show(globs)}")
    for path, globs in when.exclude.items():
        value = lookup(event, path)
        if value is not MISSING and (glob := _matching_glob(value, globs)) is not None:
            return Verdict(False, f"exclude {path}: {_brief(value)} matches {glob!r}")
    if when.if_ is not None:
        try:
            result = templates.evaluate(when.if_, context)
        except RenderError as exc:
            return Verdict(False, f"if {when.if_!r} could not be evaluated: {exc}")
        if not result:
            return Verdict(False, f"if {when.if_!r} is false")
    return MATCHED


def check_when(
    when: When, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    verdict = check_dimensions(when, event)
    return verdict if not verdict.matched else check_criteria(when, event, templates, context)


def with_rule(rule: Rule, context: dict[str, Any]) -> dict[str, Any]:
    """The context a rule's own `if` sees: `rule.name` and `rule.description` filled in."""
    return {**context, "rule": {"name": rule.name, "description": rule.description}}


def explain(
    rule: Rule, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    """The full verdict the dry run prints, including disabled rules."""
    if not rule.enabled:
        return Verdict(False, "rule is disabled (enabled: false)")
    return check_when(rule.when, event, templates, with_rule(rule, context))


def _show(globs: list[str]) -> str:
    return repr(globs[0]) if len(globs) == 1 else f"any of {globs!r}"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
