"""What a rule is: its `when`, flow-control blocks and actions, as validated models."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field, PrivateAttr, model_validator

from hookwise.durations import Duration
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


class RetryPolicy(BaseModel):
    model_config = ConfigDict(extra="forbid")

    attempts: int = Field(default=3, ge=1, le=100, description="Total tries, the first included.")
    backoff: Duration = Field(default=2.0, description="Delay before the 2nd try; doubles after.")
    max_backoff: Duration = Field(default=600.0, description="Upper bound for one delay.")


class ActionCall(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    id: str | None = Field(
        default=None, pattern=r"^[A-Za-z_][A-Za-z0-9_]*$", description="Name for `steps.<id>`."
    )
    uses: str = Field(description="The action's name, e.g. http.post (see `hookwise plugins`).")
    with_: dict[str, Any] = Field(default_factory=dict, alias="with")
    connection: dict[str, Any] = Field(
        default_factory=dict,
        description="Overrides the integration's settings from the config for this action.",
    )
    retry: RetryPolicy = Field(default_factory=RetryPolicy)
    timeout: Duration | None = Field(
        default=None, gt=0, description="Per attempt; default: worker.action_timeout."
    )


class Rule(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=NAME_PATTERN)
    description: str = ""
    enabled: bool = True
    when: When
    debounce: Debounce | None = None
    throttle: Throttle | None = None
    concurrency: Concurrency | None = None
    wait_for: WaitFor | None = None
    approval: Approval | None = None
    notify: Notify | None = None
    actions: list[ActionCall] = Field(min_length=1)
    _origin: str = PrivateAttr(default="")

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
        return self._origin

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
