"""Does one rule match one event, and if not, exactly why not. Pure: no I/O, no state."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from hookwise.errors import RenderError
from hookwise.paths import MISSING, lookup
from hookwise.rules import Rule
from hookwise.rules.globs import Glob
from hookwise.rules.when import When, as_text
from hookwise.templates import Templates


@dataclass(frozen=True)
class Verdict:
    matched: bool
    reason: str


MATCHED = Verdict(True, "matched")


def _matching_glob(value: Any, globs: list[Glob]) -> Glob | None:
    """The first glob the value matches; a list matches when any of its scalars does."""
    values = value if isinstance(value, list) else [value]
    for item in values:
        if isinstance(item, dict | list):
            continue
        text = as_text(item)
        for glob in globs:
            if glob.matches(text):
                return glob
    return None


def check_dimensions(when: When, event: dict[str, Any]) -> Verdict:
    for field in ("source", "domain", "event_type"):
        globs: list[Glob] = getattr(when, field)
        if _matching_glob(event[field], globs) is None:
            return Verdict(False, f"{field} {event[field]!r} does not match {_show(globs)}")
    return MATCHED


@dataclass(frozen=True, slots=True)
class Miss:
    """The first check of `match`, `exclude` or `if` that failed, worded only when asked:
    live matching rejects most candidates and never reads why."""

    check: str  # match | missing | exclude | if | if_error
    subject: str
    value: Any = None
    globs: tuple[str, ...] = ()

    @property
    def reason(self) -> str:
        if self.check == "missing":
            return f"match {self.subject}: the event has no {self.subject}"
        if self.check == "match":
            return f"match {self.subject}: {_brief(self.value)} does not match {_show(self.globs)}"
        if self.check == "exclude":
            return f"exclude {self.subject}: {_brief(self.value)} matches {self.globs[0]!r}"
        if self.check == "if_error":
            return f"if {self.subject!r} could not be evaluated: {self.value}"
        return f"if {self.subject!r} is false"


def first_miss(
    when: When, event: dict[str, Any], templates: Templates, context: Callable[[], dict[str, Any]]
) -> Miss | None:
    """`match`, then `exclude`, then `if`: cheapest first. `context` is only built for `if`."""
    for path, globs in when.match.items():
        value = lookup(event, path)
        if value is MISSING:
            return Miss("missing", path)
        if _matching_glob(value, globs) is None:
            return Miss("match", path, value, tuple(globs))
    for path, globs in when.exclude.items():
        value = lookup(event, path)
        if value is not MISSING and (glob := _matching_glob(value, globs)) is not None:
            return Miss("exclude", path, value, (glob,))
    if when.if_ is not None:
        try:
            result = templates.evaluate(when.if_, context())
        except RenderError as exc:
            return Miss("if_error", when.if_, exc)
        if not result:
            return Miss("if", when.if_)
    return None


def check_criteria(
    when: When, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> Verdict:
    """The verdict on `match`, `exclude` and `if`, with the reason naming the key."""
    miss = first_miss(when, event, templates, lambda: context)
    return MATCHED if miss is None else Verdict(False, miss.reason)


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
    """The full verdict the dry run prints; a disabled rule says whether it would match."""
    verdict = check_when(rule.when, event, templates, with_rule(rule, context))
    if rule.enabled:
        return verdict
    if verdict.matched:
        return Verdict(False, "rule is disabled (enabled: false); enabled, it would match")
    return Verdict(
        False, f"rule is disabled (enabled: false); enabled, it would not: {verdict.reason}"
    )


def _show(globs: Sequence[str]) -> str:
    return repr(globs[0]) if len(globs) == 1 else f"any of {list(globs)!r}"


def _brief(value: Any) -> str:
    text = repr(value)
    return text if len(text) <= 120 else text[:117] + "..."
