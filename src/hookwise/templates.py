"""Jinja rendering: compiled once, run in the sandbox, bounded in size and in time.

Rule authors are trusted less than the service: templates run in `sandbox.Sandbox`
(no `__class__`, no mutation, nothing that outgrows `templates.max_output`) with
`StrictUndefined`, so a typo fails loudly instead of rendering an empty string.
A string that is exactly one `{{ expression }}` keeps the expression's native
type, so `json: "{{ data }}"` passes an object rather than its text.

Every render and every condition runs under a deadline (`templates.timeout`, or
less when the caller has less time): a loop that would run for minutes is stopped
by `interrupt.watchdog` and reported as a RenderError. Callers on the event loop use
`off_loop`, which runs template work in threads of its own.
"""

from __future__ import annotations

import asyncio
import functools
import os
import re
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, Literal, ParamSpec, TypeVar

from jinja2 import TemplateError, Undefined, UndefinedError
from jinja2.exceptions import SecurityError

from hookwise.errors import RenderError
from hookwise.event import Event
from hookwise.interrupt import Interrupted, watchdog
from hookwise.sandbox import DEFAULT_MAX_OUTPUT, Sandbox, TooLarge, size_of
from hookwise.yamlpos import ENV_REF

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}$", re.DOTALL)
DEFAULT_TIMEOUT = 2.0
COMPILED_KEPT = 4096  # distinct texts kept compiled; others are compiled again when used
Lane = Literal["intake", "runs"]
LANES: dict[str, int] = {"intake": 4, "runs": 8}  # threads per lane
P = ParamSpec("P")
T = TypeVar("T")


def make_environment(
    prepare: Callable[[Sandbox], None] | None = None,
    *,
    max_output: int = DEFAULT_MAX_OUTPUT,
    timeout: float = DEFAULT_TIMEOUT,
) -> Templates:
    env = Sandbox(max_output)
    if prepare:
        prepare(env)
    env.bound_filters()
    return Templates(env, timeout)


def is_template(value: str) -> bool:
    """Plain strings skip Jinja entirely: cheaper, and nothing in them is interpreted."""
    return "{{" in value or "{%" in value or "{#" in value or "${" in value


def _env_calls(text: str) -> str:
    """`${VAR}` becomes a call to `_env`, which the runner binds to the environment.

    Only the rule author's text is translated, so event data that happens to contain
    `${...}` is never expanded, and the dry run can show references unexpanded.
    """
    return ENV_REF.sub(lambda m: f"{{{{ _env({m.group(1)!r}, {m.group(2)!r}) }}}}", text)


class Templates:
    """Compiles each distinct text once while it is in use; rules reuse the same strings
    on every event.

    Checking a rule file compiles every template in it and keeps none: ten thousand
    rules with a message each would otherwise hold about 3 KB of compiled Jinja a rule,
    used or not. What runs is kept compiled, up to `COMPILED_KEPT` texts.
    """

    def __init__(self, env: Sandbox, timeout: float = DEFAULT_TIMEOUT) -> None:
        self.env = env
        self.timeout = timeout
        self.compile = functools.lru_cache(maxsize=COMPILED_KEPT)(self._compile)
        self.compile_condition = functools.lru_cache(maxsize=COMPILED_KEPT)(self._compile_condition)
        self._lanes: dict[str, ThreadPoolExecutor] = {}

    async def off_loop(
        self, lane: Lane, function: Callable[P, T], *args: P.args, **kwargs: P.kwargs
    ) -> T:
        """Run template work (rendering, conditions, matching) away from the event loop.

        In threads of its own, so a slow template never waits behind a slow action
        client; and in two lanes, so runs' rendering never holds up the matching of new
        deliveries (`intake`), nor the other way round.
        """
        threads = self._lanes.get(lane)
        if threads is None:
            threads = ThreadPoolExecutor(LANES[lane], thread_name_prefix=f"hookwise-{lane}")
            self._lanes[lane] = threads
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(threads, lambda: function(*args, **kwargs))

    def close(self) -> None:
        """Let the lanes' threads go; a render still running ends at its deadline."""
        for threads in self._lanes.values():
            threads.shutdown(wait=False, cancel_futures=True)
        self._lanes.clear()

    def check(self, text: str, *, bare: bool) -> None:
        """Raises jinja2.TemplateSyntaxError for text that does not compile; keeps nothing."""
        self._compile(text, bare=bare, condition=self._compile_condition)

    def _compile(
        self,
        text: str,
        *,
        bare: bool = False,
        condition: Callable[[str], Callable[[dict[str, Any]], Any]] | None = None,
    ) -> Callable[[dict[str, Any]], Any]:
        """`condition` compiles bare expressions: the cached one, unless checking."""
        condition = condition or self.compile_condition
        if bare:
            return condition(text)
        source = _env_calls(text)
        match = _SINGLE_EXPRESSION.match(source)
        if match:
            return condition(match.group("expr"))
        render = self.env.from_string(source).render
        return lambda context: render(**context)

    def _compile_condition(self, expression: str) -> Callable[[dict[str, Any]], Any]:
        """A bare expression (`if:` and `{{ x }}`-only strings), keeping its native value."""
        evaluate = self.env.compile_expression(expression, undefined_to_none=False)
        env = self.env

        def compiled(context: dict[str, Any]) -> Any:
            value = evaluate(**context)
            if isinstance(value, Undefined):
                # A bare `{{ typo }}` or a blocked `{{ x.__class__ }}` must fail, not pass on
                # a placeholder: raises UndefinedError or SecurityError.
                value._fail_with_undefined_error()
            env.refuse_over(size_of(value, env.max_output), "the value")
            return value

        return compiled

    def render(
        self, value: Any, context: dict[str, Any], where: str, *, timeout: float | None = None
    ) -> Any:
        """Render every string in a nested structure; errors name the path of the string.

        The whole structure shares one deadline: `timeout` or `templates.timeout`,
        whichever is shorter.
        """
        current = _Current(where, "")
        limit = self._limit(timeout)
        try:
            with watchdog.limit(limit):
                return self._render(value, context, where, current)
        except Interrupted:
            raise RenderError(current.where, current.template, _too_slow(limit)) from None

    def _render(self, value: Any, context: dict[str, Any], where: str, current: _Current) -> Any:
        if isinstance(value, str):
            if not is_template(value):
                return value
            current.where, current.template = where, value
            return self._run(value, where, lambda: self.compile(value)(context))
        if isinstance(value, dict):
            return {k: self._render(v, context, f"{where}.{k}", current) for k, v in value.items()}
        if isinstance(value, list):
            return [self._render(v, context, f"{where}[{i}]", current) for i, v in enumerate(value)]
        return value

    def evaluate(
        self, expression: str, context: dict[str, Any], *, timeout: float | None = None
    ) -> Any:
        """Evaluate a bare condition; raises RenderError like `render`."""
        limit = self._limit(timeout)
        try:
            with watchdog.limit(limit):
                return self._run(
                    expression, "if", lambda: self.compile_condition(expression)(context)
                )
        except Interrupted:
            raise RenderError("if", expression, _too_slow(limit)) from None

    def _limit(self, timeout: float | None) -> float:
        return self.timeout if timeout is None else max(0.0, min(timeout, self.timeout))

    @staticmethod
    def _run(template: str, where: str, work: Callable[[], Any]) -> Any:
        try:
            return work()
        except TemplateError as exc:
            raise RenderError(where, template, _describe(exc)) from exc
        except Exception as exc:  # a filter or expression raised: still the author's input
            raise RenderError(where, template, f"{type(exc).__name__}: {exc}") from exc


class _Current:
    """The string being rendered, so a deadline can say which one was too slow."""

    def __init__(self, where: str, template: str) -> None:
        self.where = where
        self.template = template


def _too_slow(limit: float) -> str:
    return (
        f"took longer than {limit:g}s and was stopped (templates.timeout, or the action's "
        "timeout); does it loop over more than it needs?"
    )


def _describe(exc: TemplateError) -> str:
    if isinstance(exc, TooLarge):
        return f"refused: {exc.message}"
    if isinstance(exc, SecurityError):
        return f"blocked by the sandbox ({exc.message})"
    if isinstance(exc, UndefinedError):
        return f"{exc.message} (check the spelling; `hookwise test` shows the event's fields)"
    return exc.message or type(exc).__name__


def template_context(
    event: Event,
    rule: dict[str, Any],
    outputs: dict[str, Any] | None = None,
    *,
    reveal: bool = True,
    batch: list[Event] | None = None,
    awaited: Event | None = None,
) -> dict[str, Any]:
    """What `with` templates and `if` see.

    `event` is the latest event; `events` the debounced batch, oldest first (just
    `event` without debounce); `awaited` the event `wait_for` waited for.

    `_env` expands the rule's `${VAR}` references (see templates.py) and nothing else,
    so a template cannot read an environment variable the rule did not declare. With
    `reveal=False` (the dry run) references render as `${VAR}`, never as their values.
    """
    declared = set(rule.get("env", ()))

    def env(name: str, default: str | None = None) -> str:
        if name not in declared:
            raise SecurityError(f"environment variable {name} is not referenced as ${{{name}}}")
        return os.environ.get(name, default or "") if reveal else f"${{{name}}}"

    event_dict = event.as_dict()
    return {
        "event": event_dict,
        "data": event.data,
        "artifact": event_dict["artifact"],
        "artifacts": event.artifacts,
        "meta": event.meta,
        "rule": {"name": rule["name"], "description": rule.get("description", "")},
        "events": [e.as_dict() for e in batch] if batch else [event_dict],
        "awaited": awaited.as_dict() if awaited else None,
        "steps": {key: {"output": value} for key, value in (outputs or {}).items()},
        "_env": env,
    }
