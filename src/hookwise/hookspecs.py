"""The plugin contract: every hook hookwise calls, with the arguments it passes.

Built-in actions and sources use these same hooks, so `hookwise/builtin/` is the
reference for plugin authors. Argument names are part of the contract: an
implementation may take any subset of them, and pluggy rejects unknown ones.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING, Any

import pluggy
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel

from hookwise.actions import ActionContext, ActionSpec, IntegrationSpec
from hookwise.sources import SourceKind

if TYPE_CHECKING:
    from hookwise.config import Config

hookspec = pluggy.HookspecMarker("hookwise")
hookimpl = pluggy.HookimplMarker("hookwise")


@hookspec
def hookwise_actions() -> list[ActionSpec]:
    """Return the actions this plugin provides, usable in rules as `uses: <name>`."""


@hookspec
def hookwise_integrations() -> list[IntegrationSpec]:
    """Return the connection settings your actions share, configured as `integrations.<name>`."""


@hookspec
def hookwise_sources() -> list[SourceKind]:
    """Return the source kinds this plugin provides, usable in config as `kind: <name>`."""


@hookspec
def hookwise_prepare_jinja(env: SandboxedEnvironment) -> None:
    """Add filters or tests to the sandboxed environment every template renders in.

    :param env: the environment; add to ``env.filters`` and ``env.tests``.
    """


@hookspec(firstresult=True)
def hookwise_invoke_action(
    spec: ActionSpec, params: BaseModel, context: ActionContext
) -> Awaitable[Any]:
    """Start one attempt of an action; return an awaitable of its output.

    hookwise's own implementation calls `spec.run` (a sync one in a thread). Implement it
    as `@hookimpl(wrapper=True)` to time, trace or log every action of every plugin:
    `attempt = yield` gives the awaitable, return one that awaits it.

    :param spec: the action, as its plugin declared it.
    :param params: its rendered and validated parameters.
    :param context: the event, rule, attempt, idempotency key, egress policy and log.
    """


@hookspec
def hookwise_startup(config: Config) -> Awaitable[None] | None:
    """Open clients or check connectivity when the service starts (may be async).

    :param config: the validated service configuration.
    """


@hookspec
def hookwise_shutdown(config: Config) -> Awaitable[None] | None:
    """Close what `hookwise_startup` opened (may be async).

    :param config: the validated service configuration.
    """
