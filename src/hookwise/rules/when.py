"""What a rule matches on: globs over event dimensions and fields, and a condition.

Shared by a rule's `when` and by `wait_for.when`, which picks the awaited event.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

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


class When(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    source: Globs = Field(default_factory=_everything)
    domain: Globs = Field(default_factory=_everything)
    event_type: Globs = Field(default_factory=_everything)
    match: dict[str, Globs] = Field(default_factory=dict, description="Every key must match.")
    exclude: dict[str, Globs] = Field(default_factory=dict, description="Any match excludes.")
    if_: str | None = Field(default=None, alias="if", description="A bare Jinja expression.")
