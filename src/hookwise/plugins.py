"""Loading plugins, and a typed facade so the rest of hookwise never touches `pm.hook`."""

from __future__ import annotations

import importlib
import importlib.util
import inspect
import os
import sys
import traceback
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import pluggy
from jinja2.sandbox import SandboxedEnvironment

from hookwise import hookspecs
from hookwise.actions import ActionContext, ActionSpec, IntegrationSpec
from hookwise.errors import ConfigError, Problem
from hookwise.sources import SourceKind

if TYPE_CHECKING:
    from hookwise.config import Config

DEFAULT_PLUGINS = (
    "hookwise.builtin.invoke",
    "hookwise.builtin.log_action",
    "hookwise.builtin.http_post",
    "hookwise.builtin.artifactory",
    "hookwise.builtin.harbor",
    "hookwise.builtin.cloudevents",
    "hookwise.builtin.standard_webhooks",
    "hookwise.builtin.generic",
    "hookwise.slack.actions",
)
# Comma-separated plugin names to leave unregistered, e.g. to replace a built-in.
BLOCK_ENV = "HOOKWISE_BLOCK_PLUGINS"

T = TypeVar("T")


async def await_me_maybe(value: T | Awaitable[T] | Callable[[], Any]) -> Any:
    """Accept a value, a callable, or an awaitable, so hooks can be sync or async."""
    if callable(value):
        value = value()
    if inspect.isawaitable(value):
        value = await value
    return value


def get_plugin_manager(
    plugins_dir: Path | None = None, *, entry_points: bool = True
) -> pluggy.PluginManager:
    """A fresh manager: built-ins, then `hookwise` entry points, then `plugins_dir/*.py`."""
    pm = pluggy.PluginManager("hookwise")
    pm.add_hookspecs(hookspecs)
    blocked = {name.strip() for name in os.environ.get(BLOCK_ENV, "").split(",") if name.strip()}
    for name in blocked:
        pm.set_blocked(name)
    for name in DEFAULT_PLUGINS:
        if name not in blocked:
            pm.register(importlib.import_module(name), name)
    if entry_points:
        pm.load_setuptools_entrypoints("hookwise")
    if plugins_dir is not None:
        problems = [p for path in sorted(plugins_dir.glob("*.py")) for p in _load_file(pm, path)]
        if problems:
            raise ConfigError(problems)
    try:
        pm.check_pending()
    except pluggy.PluginValidationError as exc:
        raise ConfigError([Problem(_plugin_file(exc.plugin), 1, 1, str(exc))]) from exc
    return pm


def _load_file(pm: pluggy.PluginManager, path: Path) -> list[Problem]:
    name = f"hookwise_plugins.{path.stem}"
    spec = importlib.util.spec_from_file_location(name, path)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    try:
        sys.modules[name] = module
        spec.loader.exec_module(module)
        pm.register(module, path.stem)
    except Exception as exc:
        sys.modules.pop(name, None)
        return [Problem(str(path), _error_line(exc, path), 1, f"plugin failed to load: {exc!r}")]
    return []


def _error_line(exc: Exception, path: Path) -> int:
    if isinstance(exc, SyntaxError) and exc.lineno:
        return exc.lineno
    frames = [f for f in traceback.extract_tb(exc.__traceback__) if f.filename == str(path)]
    return (frames[-1].lineno or 1) if frames else 1


def _plugin_file(plugin: object) -> str:
    return getattr(plugin, "__file__", None) or repr(plugin)


class Registry:
    """Actions and sources by name, collected once from the plugin manager."""

    def __init__(self, pm: pluggy.PluginManager) -> None:
        self.pm = pm
        self.actions: dict[str, ActionSpec] = self._collect(
            "hookwise_actions", "action", lambda spec: spec.name
        )
        self.sources: dict[str, SourceKind] = self._collect(
            "hookwise_sources", "source kind", lambda spec: spec.kind
        )
        self.integrations: dict[str, IntegrationSpec] = self._collect(
            "hookwise_integrations", "integration", lambda spec: spec.name
        )

    def _collect(self, hook_name: str, what: str, key: Callable[[Any], str]) -> dict[str, Any]:
        found: dict[str, Any] = {}
        owners: dict[str, str] = {}
        problems: list[Problem] = []
        hook = getattr(self.pm.hook, hook_name)
        for impl in hook.get_hookimpls():
            for item in impl.function() or []:
                name = key(item)
                plugin = self.pm.get_name(impl.plugin) or repr(impl.plugin)
                if name in found:
                    problems.append(
                        Problem(
                            _plugin_file(impl.plugin),
                            1,
                            1,
                            f"{what} {name!r} is provided by both {owners[name]} and {plugin}; "
                            f"block one with {BLOCK_ENV}",
                        )
                    )
                found[name] = item
                owners[name] = plugin
        if problems:
            raise ConfigError(problems)
        return found

    def invoke_action(self, spec: ActionSpec, params: Any, context: ActionContext) -> Any:
        """The awaitable of one action attempt, through every plugin's wrappers."""
        return self.pm.hook.hookwise_invoke_action(spec=spec, params=params, context=context)

    def prepare_jinja(self, env: SandboxedEnvironment) -> None:
        self.pm.hook.hookwise_prepare_jinja(env=env)

    async def startup(self, config: Config) -> None:
        for result in self.pm.hook.hookwise_startup(config=config):
            await await_me_maybe(result)

    async def shutdown(self, config: Config) -> None:
        for result in self.pm.hook.hookwise_shutdown(config=config):
            await await_me_maybe(result)

    def plugin_names(self) -> list[str]:
        return sorted(name for name, plugin in self.pm.list_name_plugin() if plugin is not None)


def load_registry(plugins_dir: Path | None = None) -> Registry:
    return Registry(get_plugin_manager(plugins_dir))
