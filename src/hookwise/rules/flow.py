"""Per-rule flow control as a rule author writes it, and `BLOCKS`, the one table of it.

Each block is optional. Keys are templates rendered against the triggering event
(`hookwise.flow.keys`); runs with equal keys share a debounce batch, a throttle period
or concurrency slots. The store applies them, so they hold across restarts and
processes; `hookwise.flow.gates` holds a run at its awaited event and its approval.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from hookwise.durations import Duration
from hookwise.rules.when import When

SLACK_ID = re.compile(r"^[UWS][A-Z0-9]{2,}$")


class Debounce(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(default="", description="Template; events with equal keys form one batch.")
    window: Duration = Field(gt=0, description="Run once the key has been quiet this long.")
    max_wait: Duration | None = Field(
        default=None, gt=0, description="Run at the latest this long after the batch's first event."
    )

    @model_validator(mode="after")
    def _max_wait_after_window(self) -> Debounce:
        if self.max_wait is not None and self.max_wait < self.window:
            raise ValueError("max_wait must be at least window")
        return self


class Throttle(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(default="", description="Template; at most one run per key per period.")
    once_per: Duration = Field(gt=0, description="The period, e.g. 10m.")


class Concurrency(BaseModel):
    model_config = ConfigDict(extra="forbid")

    key: str = Field(default="", description="Template; the limit counts runs per key.")
    limit: int = Field(default=1, ge=1, description="Runs of this rule and key at a time.")
    on_conflict: Literal["queue", "supersede"] = Field(
        default="queue",
        description="queue: wait in order; supersede: a newer run cancels waiting older ones.",
    )


class WaitFor(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    when: When = Field(description="Which later event: the same keys as a rule's `when`.")
    correlate: str = Field(
        description="Template evaluated on both events; the run waits for an equal key."
    )
    timeout: Duration = Field(gt=0, description="Then the run ends as `expired`.")
    if_: str | None = Field(
        default=None,
        alias="if",
        description="Condition on `awaited`; false ends the run as `skipped`.",
    )


class Approval(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="Slack channel ID or #name for the request.")
    approvers: list[str] = Field(
        min_length=1, description="Slack user (U…/W…) or user-group (S…) ids."
    )
    required: int = Field(default=1, ge=1, description="Distinct approvals needed.")
    timeout: Duration = Field(default=24 * 3600.0, gt=0, description="Then `expired`.")
    message: str = Field(default="", description="Template; the request's text.")

    @field_validator("approvers")
    @classmethod
    def _slack_ids(cls, approvers: list[str]) -> list[str]:
        wrong = [a for a in approvers if not SLACK_ID.match(a)]
        if wrong:
            raise ValueError(
                f"approvers must be Slack ids (U…, W… for people, S… for user groups), "
                f"not {', '.join(map(repr, wrong))}; find an id under the person's profile, "
                "More → Copy member ID"
            )
        return approvers

    @model_validator(mode="after")
    def _enough_people(self) -> Approval:
        groups = any(a.startswith("S") for a in self.approvers)
        if not groups and self.required > len(self.approvers):
            raise ValueError(
                f"required is {self.required} but only {len(self.approvers)} approvers are listed"
            )
        return self


class SlackNotify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    channel: str = Field(description="Slack channel ID or #name for the status message.")


class Notify(BaseModel):
    model_config = ConfigDict(extra="forbid")

    slack: SlackNotify


@dataclass(frozen=True)
class Block:
    """What hookwise needs to know about one flow-control block, in one place.

    `key` names the field rendered when an event matches; the rendered value goes in
    the run's `FlowKeys.<flow_key>`. `templates` are the fields `check` compiles;
    `conditions` those compiled as bare expressions. `needs_slack` blocks talk to Slack.
    """

    name: str
    model: type[BaseModel]
    key: str | None = None
    flow_key: str | None = None
    templates: tuple[str, ...] = ()
    conditions: tuple[str, ...] = ()
    needs_slack: bool = False


BLOCKS = (
    Block("debounce", Debounce, key="key", flow_key="debounce", templates=("key",)),
    Block("throttle", Throttle, key="key", flow_key="throttle", templates=("key",)),
    Block("concurrency", Concurrency, key="key", flow_key="concurrency", templates=("key",)),
    Block(
        "wait_for",
        WaitFor,
        key="correlate",
        flow_key="wait",
        templates=("correlate",),
        conditions=("if",),
    ),
    Block("approval", Approval, templates=("message",), needs_slack=True),
    Block("notify", Notify, needs_slack=True),
)
