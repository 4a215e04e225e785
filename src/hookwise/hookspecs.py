"""The plugin contract: every hook hookwise calls, with the arguments it passes.

Built-in actions and sources use these same hooks, so `hookwise/builtin/` is the
reference for plugin authors. Argument names are part of the contract: an
implementation may take any subset of them, and pluggy rejects unknown ones.
"""

from __future__ import annotations

from collections.abc import Awaitable
from typing import TYPE_CHECKING

import pluggy
from jinja2.sandbox import SandboxedEnvironment

from hookwise.actions import ActionSpec, IntegrationSpec
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
