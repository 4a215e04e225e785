"""What a rule is: its `when`, flow-control blocks and actions, as validated models."""

from __future__ import annotations

from dataclasses import field
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, model_validator

from hookwise.durations import Duration
from hookwise.rules.compact import Compact, compact
from hookwise.rules.flow import (
    BLOCKS,
    Approval,
    Concurrency,
    Debounce,
    Notify,
    Throttle,
    WaitFor,
)
from hookwise.rules.when import When
from hookwise.yamlpos import ENV_REF

NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9_.:-]*$"


# Fields are written `name: Annotated[type, Field(...)] = default`: a pydantic dataclass
# would list fields given as `= Field(...)` first in the schema, out of the order below.


# Frozen, so that every action without a `retry:` shares one.
@compact(frozen=True)
class RetryPolicy(Compact):
    attempts: Annotated[
        int, Field(ge=1, le=100, description="Total tries, the first included.")
    ] = 3
    backoff: Annotated[Duration, Field(description="Delay before the 2nd try; doubles after.")] = (
        2.0
    )
    max_backoff: Annotated[Duration, Field(description="Upper bound for one delay.")] = 600.0


DEFAULT_RETRY = RetryPolicy()


@compact(populate_by_name=True)
class ActionCall(Compact):
    id: Annotated[
        str | None, Field(pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name for `steps.<id>`.")
    ] = None
    uses: Annotated[
        str, Field(description="The action's name, e.g. http.post (see `hookwise plugins`).")
    ]
    with_: Annotated[dict[str, Any], Field(alias="with")] = field(default_factory=dict)
    connection: Annotated[
        dict[str, Any],
        Field(description="Overrides the integration's settings from the config for this action."),
    ] = field(default_factory=dict)
    retry: RetryPolicy = DEFAULT_RETRY
    timeout: Annotated[
        Duration | None, Field(gt=0, description="Per attempt; default: worker.action_timeout.")
    ] = None


class _Located:
    """Where a rule was read: set by the loader, not a key of the rule."""

    __slots__ = ("_origin",)
    _origin: str


@compact()
class Rule(Compact, _Located):
    name: Annotated[str, Field(pattern=NAME_PATTERN)]
    description: str = ""
    enabled: bool = True
    when: When
    debounce: Debounce | None = None
    throttle: Throttle | None = None
    concurrency: Concurrency | None = None
    wait_for: WaitFor | None = None
    approval: Approval | None = None
    notify: Notify | None = None
    actions: Annotated[list[ActionCall], Field(min_length=1)]

    @model_validator(mode="after")
    def _one_hold_at_a_time(self) -> Rule:
        if self.debounce is not None and self.wait_for is not None:
            raise ValueError(
                "debounce and wait_for cannot be combined: a batch has no single event to "
                "correlate; use two rules, or wait_for alone"
            )
        return self

    @model_validator(mode="after")
    def _unique_ids(self) -> Rule:
        ids = [a.id for a in self.actions if a.id]
        duplicates = sorted({i for i in ids if ids.count(i) > 1})
        if duplicates:
            raise ValueError(f"action ids must be unique within a rule: {', '.join(duplicates)}")
        return self

    @property
    def origin(self) -> str:
        """`file:line` of the rule, for messages and the dry run."""
        return getattr(self, "_origin", "")

    def snapshot(self) -> dict[str, Any]:
        """What a run needs of its rule, frozen at match time: later edits of the rule
        do not change runs already started."""
        spec = {
            "name": self.name,
            "description": self.description,
            "actions": [call.model_dump(by_alias=True, exclude_none=True) for call in self.actions],
            "env": sorted(referenced_env(self)),
        }
        for block in BLOCKS:
            value = getattr(self, block.name)
            if value is not None:
                spec[block.name] = value.model_dump(by_alias=True, exclude_none=True)
        return spec


class RuleFile(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rules: list[Rule] = Field(default_factory=list)


def strings_in(value: Any, path: tuple[Any, ...]) -> list[tuple[tuple[Any, ...], str]]:
    """Every string in a nested structure, with its path."""
    if isinstance(value, str):
        return [(path, value)]
    if isinstance(value, dict):
        return [s for k, v in value.items() for s in strings_in(v, (*path, k))]
    if isinstance(value, list):
        return [s for i, v in enumerate(value) for s in strings_in(v, (*path, i))]
    return []


def referenced_env(rule: Rule) -> set[str]:
    """Environment variables a rule's actions use: secrets, masked wherever text is shown."""
    names: set[str] = set()
    for call in rule.actions:
        for _, text in strings_in({"with": call.with_, "connection": call.connection}, ()):
            names.update(name for name, _ in ENV_REF.findall(text))
    return names
