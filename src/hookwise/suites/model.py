"""The rule test file format, validated like every other YAML hookwise reads."""

from __future__ import annotations

from datetime import datetime
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator


class Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class Delivery(Strict):
    """One delivery: a fixture file (relative to the test file) or an inline body."""

    source: str | None = Field(default=None, description="Defaults to the case's source.")
    event: str | None = Field(default=None, description="A fixture file: the raw body.")
    body: Any = Field(default=None, description="The body inline, as YAML or a JSON string.")
    stored: str | None = Field(
        default=None,
        description="A stored event, as `hookwise events export` writes it: already "
        "normalized, so it is matched as it was received.",
    )
    headers: dict[str, str] = Field(default_factory=dict)
    at: datetime | None = Field(default=None, description="When it arrives (ISO 8601).")

    @model_validator(mode="after")
    def _one_body(self) -> Delivery:
        given = [self.event, self.body, self.stored]
        if sum(value is not None for value in given) != 1:
            raise ValueError(
                "give the event one way: `event: <fixture file>`, `body:` inline, or "
                "`stored: <file from hookwise events export>`"
            )
        return self


class RunExpectation(Strict):
    """What a matching rule's run looks like right after intake."""

    status: str | None = Field(
        default=None,
        description="pending, debouncing (joined or opened a batch), skipped (throttled), "
        "waiting_event (wait_for), superseded, dead (a flow key did not render).",
    )
    batch: int | None = Field(default=None, description="Events in its debounce batch.")
    approval: bool | None = Field(default=None, description="Waits for approval first.")
    keys: dict[str, str] | None = Field(
        default=None,
        description="Its flow keys as rendered, by block: debounce, throttle, concurrency, wait.",
    )


class PolicyExpectation(Strict):
    """A version policy's verdict, given what the deploy target holds now."""

    current: str | None = Field(
        description="What the target runs or holds now: an image reference or a tag "
        "(null: nothing yet)."
    )
    deploys: bool = Field(description="true: the action acts; false: the run is skipped.")
    reason: str | None = Field(default=None, description="Part of the reason it is skipped.")


class Expect(Strict):
    match: list[str] = Field(default_factory=list, description="Rules that must match.")
    no_match: list[str] = Field(default_factory=list, description="Rules that must not.")
    miss: dict[str, str] = Field(
        default_factory=dict, description="Rule → part of the reason it does not match."
    )
    params: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Rule → action label → parameters its action gets (a subset).",
    )
    render_error: dict[str, dict[str, str]] = Field(
        default_factory=dict, description="Rule → action label → part of the render error."
    )
    runs: dict[str, RunExpectation] = Field(default_factory=dict)
    policy: dict[str, dict[str, PolicyExpectation]] = Field(
        default_factory=dict,
        description="Rule → action label → the verdict of the action's version policy.",
    )


class Case(Delivery):
    name: str = Field(min_length=1)
    source: str = Field(description="The configured source the event comes from.")
    before: list[Delivery] = Field(
        default_factory=list, description="Earlier deliveries, for flow control."
    )
    expect: Expect


class SuiteFile(Strict):
    tests: list[Case] = Field(min_length=1)
