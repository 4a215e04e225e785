"""JSON Schema of rule files, with each installed action's parameters, for editors."""

from __future__ import annotations

import copy
from typing import Any

from pydantic import BaseModel

from hookwise.actions import ActionSpec, IntegrationSpec
from hookwise.rules.model import RuleFile

TEMPLATE = {"type": "string", "pattern": r"\{\{|\{%|\$\{", "description": "A template."}


def rules_schema(
    actions: dict[str, ActionSpec], integrations: dict[str, IntegrationSpec]
) -> dict[str, Any]:
    schema = RuleFile.model_json_schema()
    schema["$schema"] = "https://json-schema.org/draft/2020-12/schema"
    schema["title"] = "hookwise rules"
    defs = schema.setdefault("$defs", {})
    call = defs["ActionCall"]
    call["properties"]["uses"]["enum"] = sorted(actions)
    branches = []
    for name, spec in sorted(actions.items()):
        then = {"with": _templated(spec.params, defs)}
        if spec.integration in integrations:
            # A partial override of the config's settings: nothing in it is required.
            connection = _templated(integrations[spec.integration].settings, defs)
            connection.pop("required", None)
            then["connection"] = connection
        branches.append(
            {
                "if": {"properties": {"uses": {"const": name}}, "required": ["uses"]},
                "then": {"properties": then},
            }
        )
    call["allOf"] = branches
    return schema


def _templated(model: type[BaseModel], defs: dict[str, Any]) -> dict[str, Any]:
    """The model's schema where any value may also be a template, checked once rendered."""
    schema = copy.deepcopy(model.model_json_schema())
    defs.update(schema.pop("$defs", {}))
    for key, prop in schema.get("properties", {}).items():
        schema["properties"][key] = {"anyOf": [prop, TEMPLATE]}
    return schema
