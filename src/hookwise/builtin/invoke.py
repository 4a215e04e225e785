"""How an action attempt is started: hookwise's own `hookwise_invoke_action`.

Registered last, so a plugin's wrapper (`@hookimpl(wrapper=True)`) sees every attempt.
"""

from __future__ import annotations

import asyncio
import inspect
from collections.abc import Awaitable
from typing import Any

from pydantic import BaseModel

from hookwise.actions import ActionContext, ActionSpec
from hookwise.hookspecs import hookimpl


@hookimpl(trylast=True)
def hookwise_invoke_action(
    spec: ActionSpec, params: BaseModel, context: ActionContext
) -> Awaitable[Any]:
    return _run(spec, params, context)


async def _run(spec: ActionSpec, params: BaseModel, context: ActionContext) -> Any:
    """Async actions are awaited; sync ones run in a thread so they never block the loop."""
    if inspect.iscoroutinefunction(spec.run):
        return await spec.run(params, context)
    return await asyncio.to_thread(spec.run, params, context)
