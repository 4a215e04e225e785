"""Selecting candidate rules for an event without scanning every rule.

Rules are indexed in a three-level trie: source, then domain, then event type. A
literal pattern is a dict lookup; only wildcard patterns are tested one by one.

Below that, rules told apart only by `match` (one rule per image, per repository,
per team) are indexed by one of their `match` fields: by the exact value, or by the
literal text its globs start with (`team-a/*` → `team-a/`). An event then reaches
only the rules whose value it could match, whatever their number. A rule whose
`match` globs all start with a wildcard is a candidate for every event of its node.
"""

from __future__ import annotations

import bisect
import logging
from collections import defaultdict
from dataclasses import dataclass, field
from functools import partial
from typing import Any

from hookwise.filter import Verdict, explain, first_miss, with_rule
from hookwise.paths import MISSING, lookup
from hookwise.rules import Rule
from hookwise.rules.globs import Glob, is_literal
from hookwise.rules.when import as_text
from hookwise.templates import Templates

LEVELS = ("source", "domain", "event_type")

log = logging.getLogger("hookwise.matcher")


@dataclass
class _ByValue:
    """Rules reached through one `match` field: its exact values and literal prefixes."""

    exact: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    prefixed: defaultdict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    lengths: list[int] = field(default_factory=list)

    def add(self, position: int, globs: list[Glob]) -> None:
        for glob in globs:
            if is_literal(glob):
                self.exact[str(glob)].append(position)
                continue
            self.prefixed[glob.prefix].append(position)
            if len(glob.prefix) not in self.lengths:
                bisect.insort(self.lengths, len(glob.prefix))

    def positions(self, value: Any) -> list[int]:
        """Rules that may match `value`; a list reaches the rules of each of its scalars."""
        found: list[int] = []
        for item in value if isinstance(value, list) else [value]:
            if isinstance(item, dict | list):
                continue
            text = as_text(item)
            found.extend(self.exact.get(text, ()))
            for length in self.lengths:
                if length > len(text):
                    break
                found.extend(self.prefixed.get(text[:length], ()))
        return found


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    wild: dict[Glob, _Node] = field(default_factory=dict)
    # Candidates for every event reaching this node, and those indexed by a match field.
    rules: list[int] = field(default_factory=list)
    by_field: defaultdict[str, _ByValue] = field(default_factory=lambda: defaultdict(_ByValue))

    def child(self, pattern: Glob) -> _Node:
        table = self.literal if is_literal(pattern) else self.wild
        return table.setdefault(pattern, _Node())

    def children_for(self, value: str) -> list[_Node]:
        found = [self.literal[value]] if value in self.literal else []
        found.extend(node for glob, node in self.wild.items() if glob.matches(value))
        return found

    def add(self, position: int, rule: Rule) -> None:
        path = _index_field(rule)
        if path is None:
            self.rules.append(position)
        else:
            self.by_field[path].add(position, rule.when.match[path])

    def positions(self, event: dict[str, Any]) -> list[int]:
        found = list(self.rules)
        for path, by_value in self.by_field.items():
            value = lookup(event, path)
            if value is not MISSING:
                found.extend(by_value.positions(value))
        return found


def _index_field(rule: Rule) -> str | None:
    """The `match` field that narrows the rule best: the one whose globs' shortest
    literal start is longest (exact values preferred); None when every glob starts
    with a wildcard."""
    scored = [
        (all(map(is_literal, globs)), min(len(glob.prefix) for glob in globs), path)
        for path, globs in rule.when.match.items()
    ]
    usable = [score for score in scored if score[1] > 0]
    return max(usable)[2] if usable else None


class RuleIndex:
    """Enabled rules, in file order, reachable by the event's source/domain/event type."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        self.by_name = {rule.name: rule for rule in rules}
        # Rules whose waiting runs a later event may release (`wait_for`).
        self.awaiting = [rule for rule in rules if rule.enabled and rule.wait_for is not None]
        self._root = _Node()
        for position, rule in enumerate(rules):
            if rule.enabled:
                self._add(position, rule)

    def _add(self, position: int, rule: Rule) -> None:
        nodes = [self._root]
        for level in LEVELS:
            patterns: list[Glob] = getattr(rule.when, level)
            nodes = list({id(n): n for node in nodes for n in map(node.child, patterns)}.values())
        for node in nodes:
            node.add(position, rule)

    def candidates(self, event: dict[str, Any]) -> list[Rule]:
        """Every rule that may match, in file order: a superset of `match`, never a miss."""
        nodes = [self._root]
        for level in LEVELS:
            value = event.get(level)
            if not isinstance(value, str):
                return []
            nodes = [child for node in nodes for child in node.children_for(value)]
        positions = sorted({p for node in nodes for p in node.positions(event)})
        return [self.rules[p] for p in positions]

    def match(
        self, event: dict[str, Any], templates: Templates, context: dict[str, Any]
    ) -> list[Rule]:
        """Rules whose whole `when` holds for the event, in file order.

        An `if` that fails to evaluate (an error, or too slow) is a miss; it is logged,
        since nobody asked why this rule did not fire.
        """
        matched = []
        for rule in self.candidates(event):
            miss = first_miss(rule.when, event, templates, partial(with_rule, rule, context))
            if miss is None:
                matched.append(rule)
            elif miss.check == "if_error":
                log.warning(
                    "rule %s did not match event %s: %s", rule.name, event["id"], miss.reason
                )
        return matched


def verdicts(
    index: RuleIndex, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> list[tuple[Rule, Verdict]]:
    """Every rule with its verdict, for the dry run; uses the same checks as live matching."""
    return [(rule, explain(rule, event, templates, context)) for rule in index.rules]
