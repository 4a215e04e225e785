"""What a rule matches on: globs over event dimensions and fields, and a condition.

Shared by a rule's `when` and by `wait_for.when`, which picks the awaited event.
"""

from __future__ import annotations

import json
from dataclasses import field
from typing import Annotated, Any

from pydantic import BeforeValidator, Field

from hookwise.rules.compact import Compact, compact
from hookwise.rules.globs import Glob, interned


def as_text(value: Any) -> str:
    """The string form scalars are matched by: JSON spelling for true/false/null."""
    if isinstance(value, str):
        return value
    if isinstance(value, bool) or value is None:
        return json.dumps(value)
    return str(value)


def _as_list(value: Any) -> list[Any]:
    """A glob or a list of them; each is compiled on its own, so a mistake in a list is
    reported at its element."""
    items = value if isinstance(value, list) else [value]
    if not items or isinstance(value, dict):
        raise ValueError(f"expected a glob or a list of globs, got {value!r}")
    return items


def _as_glob(item: Any) -> Glob:
    if isinstance(item, dict | list):
        raise ValueError(f"expected a glob (text), got {item!r}")
    return interned(as_text(item))


def _everything() -> list[Glob]:
    return [interned("*")]


Scalar = str | int | float | bool
Globs = Annotated[
    list[Annotated[Glob, BeforeValidator(_as_glob)]],
    BeforeValidator(_as_list, json_schema_input_type=Scalar | list[Scalar]),
]


@compact(populate_by_name=True)
class When(Compact):
    # Annotated, not `= Field(...)`: see rules/model.py.
    source: Globs = field(default_factory=_everything)
    domain: Globs = field(default_factory=_everything)
    event_type: Globs = field(default_factory=_everything)
    match: Annotated[dict[str, Globs], Field(description="Every key must match.")] = field(
        default_factory=dict
    )
    exclude: Annotated[dict[str, Globs], Field(description="Any match excludes.")] = field(
        default_factory=dict
    )
    if_: Annotated[str | None, Field(alias="if", description="A bare Jinja expression.")] = None
