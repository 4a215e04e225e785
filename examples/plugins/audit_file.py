"""`audit.append`: add one JSON line per run to an audit file.

A complete third-party plugin: it imports `hookwise.plugin` and nothing else from hookwise.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field

from hookwise.plugin import ActionContext, ActionSpec, PermanentFailure, RetryLater, hookimpl


class AuditParams(BaseModel):
    model_config = ConfigDict(extra="forbid")

    path: str = Field(description="Absolute path of the JSON Lines file.")
    record: dict[str, Any] = Field(default_factory=dict, description="Fields to write.")


def append(params: AuditParams, context: ActionContext) -> dict[str, Any]:
    path = Path(params.path)
    if not path.is_absolute():
        raise PermanentFailure(f"path must be absolute, got {params.path!r}")
    line = {
        "key": context.idempotency_key,
        "rule": context.rule,
        "event_id": context.event.id,
        **params.record,
    }
    try:
        # An earlier attempt of this same action may have written before a crash.
        if path.exists() and f'"key": "{context.idempotency_key}"' in path.read_text():
            context.log.info("already written by an earlier attempt; skipping")
            return {"written": False, "path": str(path)}
        with path.open("a", encoding="utf-8") as handle:
            handle.write(json.dumps(line) + "\n")
    except PermissionError as exc:
        raise PermanentFailure(f"cannot write {path}: permission denied") from exc
    except OSError as exc:
        raise RetryLater(f"cannot write {path}: {exc.strerror}", delay=30) from exc
    context.log.info(f"appended to {path}")
    return {"written": True, "path": str(path)}


@hookimpl
def hookwise_actions() -> list[ActionSpec]:
    return [
        ActionSpec(
            name="audit.append",
            params=AuditParams,
            run=append,
            description="Append one JSON line per run to a local audit file.",
        )
    ]
