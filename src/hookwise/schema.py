"""JSON Schema of rule files, with each installed action's parameters, for editors."""

from __future__ import annotations

import copy
from typing import Any

from hookwise.actions import ActionSpec
from hookwise.rules import RuleFile

TEMPLATE = {"type": "string", "pattern": r"\{\{|\{%|\$\{", "description": "A template."}


def rules_schema(actions: dict[str, ActionSpec]) -> dict[str, Any]:
    schema = RuleFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hookwise rules"
    defs = schema.setdefault("$defs", {})
    call = defs["ActionCall"]
    call["properties"]["uses"]["enum"] = sorted(actions)
    branches = []
    for name, spec in sorted(actions.items()):
        params = copy.deepcopy(spec.params.model_json_schema())
        defs.update(params.pop("$defs", {}))
        for key, prop in params.get("properties", {}).items():
            # Any value may be a template, checked once rendered.
            params["properties"][key] = {"anyOf": [prop, TEMPLATE]}
        branches.append(
            {
                "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
                "then": {"properties": {"with": params}},
            }
        )
    call["allOf"] = branches
    return schema
