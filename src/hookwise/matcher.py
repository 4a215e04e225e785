"""Selecting candidate rules for an event without scanning every rule.

Rules are indexed in a three-level trie: source, then domain, then event type.
A literal pattern is a dict lookup; only wildcard patterns are tested one by one.
Ten thousand rules that name their source cost about as much as ten.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from hookwise.filter import Verdict, check_criteria, explain, with_rule
from hookwise.globs import glob_match, is_literal
from hookwise.rules import Rule
from hookwise.templates import Templates

LEVELS = ("source", "domain", "event_type")


@dataclass
class _Node:
    literal: dict[str, _Node] = field(default_factory=dict)
    wild: dict[str, _Node] = field(default_factory=dict)
    rules: list[int] = field(default_factory=list)

    def child(self, pattern: str) -> _Node:
        table = self.literal if is_literal(pattern) else self.wild
        return table.setdefault(pattern, _Node())

    def children_for(self, value: str) -> list[_Node]:
        found = [self.literal[value]] if value in self.literal else []
        found.extend(node for glob, node in self.wild.items() if glob_match(glob, value))
        return found


class RuleIndex:
    """Enabled rules, in file order, reachable by the event's source/domain/event type."""

    def __init__(self, rules: list[Rule]) -> None:
        self.rules = rules
        # Rules whose waiting runs a later event may release (`wait_for`).
        self.awaiting = [rule for rule in rules if rule.enabled and rule.wait_for is not None]
        self._root = _Node()
        for position, rule in enumerate(rules):
            if rule.enabled:
                self._add(position, rule)

    def _add(self, position: int, rule: Rule) -> None:
        nodes = [self._root]
        for level in LEVELS:
            patterns: list[str] = getattr(rule.when, level)
            nodes = list({id(n): n for node in nodes for n in map(node.child, patterns)}.values())
        for node in nodes:
            node.rules.append(position)

    def candidates(self, event: dict[str, Any]) -> list[Rule]:
        nodes = [self._root]
        for level in LEVELS:
            value = event.get(level)
            if not isinstance(value, str):
                return []
            nodes = [child for node in nodes for child in node.children_for(value)]
        positions = sorted({p for node in nodes for p in node.rules})
        return [self.rules[p] for p in positions]

    def match(
        self, event: dict[str, Any], templates: Templates, context: dict[str, Any]
    ) -> list[Rule]:
        """Rules whose whole `when` holds for the event, in file order."""
        return [
            rule
            for rule in self.candidates(event)
            if check_criteria(rule.when, event, templates, with_rule(rule, context)).matched
        ]


def verdicts(
    index: RuleIndex, event: dict[str, Any], templates: Templates, context: dict[str, Any]
) -> list[tuple[Rule, Verdict]]:
    """Every rule with its verdict, for the dry run; uses the same checks as live matching."""
    return [(rule, explain(rule, event, templates, context)) for rule in index.rules]
