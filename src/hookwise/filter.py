"""Does one rule match one event, and if not, exactly why not. Pure: no I/O, no state."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from hookwise.globs import glob_match
from hookwise.paths import MISSING, lookup
from hookwise.rules import Rule, as_text
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


def check_dimensions(rule: Rule, event: dict[str, Any]) -> Verdict:
    for field in ("source", "domain", "event_type"):
        globs: list[str] = getattr(rule.when, field)
        if _matching_glob(event[field], globs) is None:
            return Verdict(False, f"{field} {event[field]!r} does not match {_show(globs)}")
    return MATCHED


def check_criteria(
    rule: Rule, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    """`match`, then `exclude`, then `if`: cheapest first, and the reason names the key."""
    for path, globs in rule.when.match.items():
        value = lookup(event, path)
        if value is MISSING:
            return Verdict(False, f"match {path}: the event has no {path}")
        if _matching_glob(value, globs) is None:
            return Verdict(False, f"match {path}: {_brief(value)} does not match {_show(globs)}")
    for path, globs in rule.when.exclude.items():
        value = lookup(event, path)
        if value is not MISSING and (glob := _matching_glob(value, globs)) is not None:
            return Verdict(False, f"exclude {path}: {_brief(value)} matches {glob!r}")
    if rule.when.if_ is not None:
        try:
            rule_vars = {"name": rule.name, "description": rule.description}
            result = templates.evaluate(rule.when.if_, {**context, "rule": rule_vars})
        except RenderError as exc:
            return Verdict(False, f"if {rule.when.if_!r} could not be evaluated: {exc}")
        if not result:
            return Verdict(False, f"if {rule.when.if_!r} is false")
    return MATCHED


def explain(
    rule: Rule, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    """The full verdict the dry run prints, including disabled rules."""
    if not rule.enabled:
        return Verdict(False, "rule is disabled (enabled: false)")
    verdict = check_dimensions(rule, event)
    return verdict if not verdict.matched else check_criteria(rule, event, templates, context)


def _show(globs: list[str]) -> str:
    return repr(globs[0]) if len(globs) == 1 else f"any of {globs!r}"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
