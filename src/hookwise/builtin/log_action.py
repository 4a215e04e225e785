"""`log`: write a message into the run's history. The smallest possible action plugin."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from hookwise.actions import ActionContext, ActionSpec
from hookwise.hookspecs import hookimpl


class LogParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message: str = Field(description="Text to record; a template like every `with` string.")
    level: Literal["info", "warning", "error"] = "info"


def log_message(params: LogParams, context: ActionContext) -> dict[str, str]:
    getattr(context.log, params.level)(params.message)
    return {"message": params.message}


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="log",
            params=LogParams,
            run=log_message,
            description="Record a message in the run's history and the service log.",
        )
    ]
