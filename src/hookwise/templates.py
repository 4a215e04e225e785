"""Jinja rendering in a sandbox.

Rule authors are trusted less than the service: templates run in a
`SandboxedEnvironment` (no `__class__`, `__globals__`, unsafe attributes) with
`StrictUndefined`, so a typo fails loudly instead of rendering an empty string.
A string that is exactly one `{{ expression }}` keeps the expression's native
type, so `json: "{{ data }}"` passes an object rather than its text.
"""

from __future__ import annotations

import json
import re
from collections.abc import Callable
from typing import Any

from jinja2 import StrictUndefined, TemplateError, Undefined
from jinja2.exceptions import SecurityError
from jinja2.sandbox import ImmutableSandboxedEnvironment, SandboxedEnvironment

from hookwise.yamlpos import ENV_REF

_SINGLE_EXPRESSION = re.compile(r"^\{\{(?P<expr>(?:(?!\}\}|\{\{).)*)\}\}$", re.DOTALL)


class RenderError(ValueError):
    """A template failed; `where` says which string, for the rule author."""

    def __init__(self, where: str, template: str, reason: str) -> None:
        self.where = where
        self.template = template
        super().__init__(f"{where}: template {template!r} failed: {reason}")


MAX_REPEAT = 100_000
MAX_EXPONENT = 1_000


class _Sandbox(ImmutableSandboxedEnvironment):
    """No mutation of events (`data.pop()`), and no `'x' * 10**9` stalling the event loop."""

    intercepted_binops = frozenset({"*", "**"})

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*" and _repeats(left, right) > MAX_REPEAT:
            raise SecurityError(f"a repetition longer than {MAX_REPEAT} items is not allowed")
        if operator == "**" and isinstance(right, int | float) and abs(right) > MAX_EXPONENT:
            raise SecurityError(f"exponents above {MAX_EXPONENT} are not allowed")
        return super().call_binop(context, operator, left, right)


def _repeats(left: Any, right: Any) -> int:
    """How long `left * right` would be, when it is a sequence repetition."""
    for sequence, count in ((left, right), (right, left)):
        if isinstance(sequence, str | list | tuple) and isinstance(count, int):
            return len(sequence) * count
    return 0


def make_environment(prepare: Callable[[SandboxedEnvironment], None] | None = None) -> Templates:
    env = _Sandbox(undefined=StrictUndefined, autoescape=False)
    env.filters["tojson"] = lambda value: json.dumps(value, default=str)
    if prepare:
        prepare(env)
    return Templates(env)


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
    """Compiles once per distinct text; rules reuse the same strings on every event."""

    def __init__(self, env: SandboxedEnvironment) -> None:
        self.env = env
        self._cache: dict[str, Callable[[dict[str, Any]], Any]] = {}

    def compile(self, text: str) -> Callable[[dict[str, Any]], Any]:
        """Raises jinja2.TemplateSyntaxError for text that does not compile."""
        compiled = self._cache.get(text)
        if compiled is None:
            source = _env_calls(text)
            match = _SINGLE_EXPRESSION.match(source)
            if match:
                compiled = self.compile_condition(match.group("expr"))
            else:
                render = self.env.from_string(source).render
                compiled = lambda context: render(**context)  # noqa: E731
            self._cache[text] = compiled
        return compiled

    def compile_condition(self, expression: str) -> Callable[[dict[str, Any]], Any]:
        """A bare expression (`if:` and `{{ x }}`-only strings), keeping its native value."""
        key = "\0expr\0" + expression
        compiled = self._cache.get(key)
        if compiled is None:
            evaluate = self.env.compile_expression(expression, undefined_to_none=False)

            def compiled(context: dict[str, Any]) -> Any:
                value = evaluate(**context)
                if isinstance(value, Undefined):
                    # A bare `{{ typo }}` or a blocked `{{ x.__class__ }}` must fail, not pass on
                    # a placeholder: raises UndefinedError or SecurityError.
                    value._fail_with_undefined_error()
                return value

            self._cache[key] = compiled
        return compiled

    def render(self, value: Any, context: dict[str, Any], where: str) -> Any:
        """Render every string in a nested structure; errors name the path of the string."""
        if isinstance(value, str):
            if not is_template(value):
                return value
            try:
                return self.compile(value)(context)
            except TemplateError as exc:
                raise RenderError(where, value, _describe(exc)) from exc
            except Exception as exc:  # a filter or expression raised: still the author's input
                raise RenderError(where, value, f"{type(exc).__name__}: {exc}") from exc
        if isinstance(value, dict):
            return {k: self.render(v, context, f"{where}.{k}") for k, v in value.items()}
        if isinstance(value, list):
            return [self.render(v, context, f"{where}[{i}]") for i, v in enumerate(value)]
        return value

    def evaluate(self, expression: str, context: dict[str, Any]) -> Any:
        """Evaluate a bare condition; raises RenderError like `render`."""
        try:
            return self.compile_condition(expression)(context)
        except TemplateError as exc:
            raise RenderError("if", expression, _describe(exc)) from exc
        except Exception as exc:
            raise RenderError("if", expression, f"{type(exc).__name__}: {exc}") from exc


def _describe(exc: TemplateError) -> str:
    name = type(exc).__name__
    if name == "SecurityError":
        return f"blocked by the sandbox ({exc})"
    if name == "UndefinedError":
        return f"{exc.message} (check the spelling; `hookwise test` shows the event's fields)"
    return exc.message or name
