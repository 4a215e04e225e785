"""The Jinja environment every template renders in: sandboxed, and bounded in size.

Jinja's sandbox keeps templates away from Python's internals. What it does not stop
is a template that asks for a lot: `"x"|center(200000000)` allocates 200 MB in one
call, and `ns.s ~ ns.s` in a loop doubles a string until memory runs out. Here every
operation that can produce more than it was given is checked *before* it allocates:

- `*`, `+`, `~`, `%`, `str.format`, and the string methods and filters that pad,
  repeat, join or replace, against `max_output` characters (or list items);
- `*` and `**` on integers, against MAX_INT_BITS;
- every filter's input and result, and the template's output as a whole;
- methods of plain data (str, int, list, dict) are limited to the ones that cannot
  amplify; `int.to_bytes(10**9)` and `str.translate` are not among them.

Time is bounded separately (`interrupt.py`): a loop that is merely long stops at its
deadline. Refusals raise `TooLarge`, which names the operation and the limit.
"""

from __future__ import annotations

import functools
import json
import re
import types
from collections.abc import Callable, Iterable, Iterator
from string import Formatter
from typing import Any

from jinja2 import StrictUndefined
from jinja2.compiler import CodeGenerator, Frame, optimizeconst
from jinja2.exceptions import SecurityError
from jinja2.nodes import Concat
from jinja2.sandbox import ImmutableSandboxedEnvironment
from jinja2.utils import _PassArg

# About 4,900 decimal digits: more than any real value, and Python itself refuses to
# print integers of more than 4,300 digits.
MAX_INT_BITS = 16_384
DEFAULT_MAX_OUTPUT = 1024 * 1024

# Methods of plain data a template may call: none of them returns more than it was given.
_STR_METHODS = frozenset(
    [
        "capitalize",
        "casefold",
        "count",
        "endswith",
        "find",
        "index",
        "isalnum",
        "isalpha",
        "isascii",
        "isdecimal",
        "isdigit",
        "isidentifier",
        "islower",
        "isnumeric",
        "isprintable",
        "isspace",
        "istitle",
        "isupper",
        "lower",
        "lstrip",
        "partition",
        "removeprefix",
        "removesuffix",
        "rfind",
        "rindex",
        "rpartition",
        "rsplit",
        "rstrip",
        "split",
        "splitlines",
        "startswith",
        "strip",
        "swapcase",
        "title",
        "upper",
        "center",
        "ljust",
        "rjust",
        "zfill",
        "expandtabs",
        "replace",
        "join",
        "format",
        "format_map",
    ]
)
_METHODS: dict[type, frozenset[str]] = {
    dict: frozenset({"get", "items", "keys", "values", "copy"}),
    list: frozenset({"count", "index", "copy"}),
    tuple: frozenset({"count", "index"}),
    int: frozenset({"bit_length", "bit_count", "is_integer"}),
    float: frozenset({"is_integer", "as_integer_ratio"}),
}
_PERCENT_SPEC = re.compile(
    r"%(?:\([^)]*\))?[#0\- +]*(\*|\d+)?(?:\.(\*|\d+))?[hlL]?[diouxXeEfFgGcrsa%]"
)
_NUMBERS = re.compile(r"\d+")


class TooLarge(SecurityError):
    """A template asked for more than the limits allow."""


def size_of(value: Any, budget: int) -> int:
    """About how long `str(value)` would be; counting stops once past `budget`.

    Shared references count every time they would be printed, which is what makes
    `[[s] * 1000] * 1000` large although it holds little memory.
    """
    total, stack = 0, [value]
    while stack and total <= budget:
        item = stack.pop()
        if isinstance(item, str):
            total += len(item)
        elif isinstance(item, bool) or item is None:
            total += 5
        elif isinstance(item, int):
            total += item.bit_length() // 3 + 1
        elif isinstance(item, dict):
            total += 2 + 4 * len(item)
            stack.extend(item.keys())
            stack.extend(item.values())
        elif isinstance(item, list | tuple | set | frozenset):
            total += 2 + 2 * len(item)
            stack.extend(item)
        else:
            total += 8
    return total


class _CodeGenerator(CodeGenerator):
    """`a ~ b` goes through the environment, where its length can be checked."""

    @optimizeconst
    def visit_Concat(self, node: Concat, frame: Frame) -> None:
        self.write("environment.join_pieces((")
        for arg in node.nodes:
            self.visit(arg, frame)
            self.write(", ")
        self.write("))")


class Sandbox(ImmutableSandboxedEnvironment):
    """Immutable sandbox (no `data.pop()`), StrictUndefined, and the size limits above."""

    intercepted_binops = frozenset({"*", "**", "+", "%"})
    code_generator_class = _CodeGenerator

    def __init__(self, max_output: int = DEFAULT_MAX_OUTPUT) -> None:
        super().__init__(undefined=StrictUndefined, autoescape=False, finalize=self._finalize)
        self.max_output = max_output
        self.globals.pop("lipsum", None)  # lipsum(10**8) writes a book; no rule needs it
        # urlize's regex is quadratic: one call on a long field runs for hours, and a
        # single C call cannot be stopped by the deadline.
        self.filters.pop("urlize", None)
        self.filters["tojson"] = self._tojson
        self.concat = self._concat  # type: ignore[method-assign]

    def bound_filters(self) -> None:
        """Wrap every filter, plugins' included, so its input and result are checked.

        Call once the filters are all in place (after `hookwise_prepare_jinja`).
        """
        for name, function in list(self.filters.items()):
            if not getattr(function, "_hookwise_bounded", False):
                self.filters[name] = self._bounded_filter(name, function)

    # -- the checks --------------------------------------------------------------------

    def refuse_over(self, size: int, what: str) -> None:
        if size > self.max_output:
            raise TooLarge(
                f"{what} would be longer than {self.max_output} characters (templates.max_output)"
            )

    def _finalize(self, value: Any) -> Any:
        """Every `{{ }}` output, before it is turned into text."""
        self.refuse_over(size_of(value, self.max_output), "an output")
        return value

    def _concat(self, pieces: Iterable[str]) -> str:
        """The whole output of a template (or macro), counted as it is produced."""
        kept, size = [], 0
        for piece in pieces:
            size += len(piece)
            self.refuse_over(size, "the rendered text")
            kept.append(piece)
        return "".join(kept)

    def join_pieces(self, pieces: tuple[Any, ...]) -> str:
        """`a ~ b ~ c`."""
        self.refuse_over(sum(size_of(p, self.max_output) for p in pieces), "a `~` concatenation")
        return "".join(str(p) for p in pieces)

    def call_binop(self, context: Any, operator: str, left: Any, right: Any) -> Any:
        if operator == "*":
            self._check_product(left, right)
        elif operator == "**":
            _check_power(left, right)
        elif operator == "+" and isinstance(left, str | list | tuple):
            size = size_of(left, self.max_output) + size_of(right, self.max_output)
            self.refuse_over(size, "a `+` concatenation")
        elif operator == "%" and isinstance(left, str):
            self.check_percent(left, right)
        return super().call_binop(context, operator, left, right)

    def _check_product(self, left: Any, right: Any) -> None:
        for sequence, count in ((left, right), (right, left)):
            if isinstance(sequence, str | list | tuple) and isinstance(count, int):
                size = size_of(sequence, self.max_output) * max(count, 0)
                self.refuse_over(size, "a repetition")
                self.refuse_over(len(sequence) * count, "a repetition")
        if (
            _is_int(left)
            and _is_int(right)
            and left.bit_length() + right.bit_length() > MAX_INT_BITS
        ):
            raise TooLarge(f"a product of integers would exceed {MAX_INT_BITS} bits")

    def _biggest(self, values: Iterable[Any]) -> int:
        return max((size_of(v, self.max_output) for v in values), default=0)

    def check_percent(self, text: str, arguments: Any) -> None:
        """`'%10000000s' % x`: widths count against the limit, and every field as if it
        printed the largest argument (`'%(a)s%(a)s…' % {'a': s}` prints `s` each time)."""
        if isinstance(arguments, dict):
            values: Iterable[Any] = arguments.values()
        else:
            values = arguments if isinstance(arguments, tuple) else (arguments,)
        specs = [m for m in _PERCENT_SPEC.finditer(text) if not m.group(0).endswith("%%")]
        size = len(text) + len(specs) * self._biggest(values)
        for spec in specs:
            width, precision = spec.group(1), spec.group(2)
            if "*" in (width, precision):
                raise TooLarge("`*` widths in %-formatting are not allowed in templates")
            size += int(width or 0) + int(precision or 0)
        self.refuse_over(size, "a %-formatted string")

    def _check_format(self, text: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        """`'{:>10000000}'.format(x)`: the same for str.format and format_map."""
        fields = [entry for entry in Formatter().parse(text) if entry[1] is not None]
        size = len(text) + len(fields) * self._biggest((*args, *kwargs.values()))
        for _, _, spec, _ in fields:
            if spec and "{" in spec:
                raise TooLarge("nested fields in a format spec are not allowed in templates")
            size += sum(int(n) for n in _NUMBERS.findall(spec or ""))
        self.refuse_over(size, "a formatted string")

    def take(self, items: Iterable[Any], what: str) -> list[Any]:
        """The items of an iterable, refused as soon as they add up past the limit: a
        generator (`range(400)|map('center', 10**6)`) is only counted as it runs."""
        kept, size = [], 0
        for item in items:
            size += size_of(item, self.max_output) + 2
            self.refuse_over(size, what)
            kept.append(item)
        return kept

    # -- methods of plain data -----------------------------------------------------------

    def is_safe_attribute(self, obj: Any, attr: str, value: Any) -> bool:
        if not super().is_safe_attribute(obj, attr, value):
            return False
        if not callable(value):
            return True
        if isinstance(obj, str):
            return attr in _STR_METHODS
        allowed = next((m for kind, m in _METHODS.items() if isinstance(obj, kind)), None)
        return allowed is None or attr in allowed

    def wrap_str_format(self, value: Any) -> Callable[..., str] | None:
        wrapped = super().wrap_str_format(value)
        if wrapped is None:
            return None
        text, is_map = value.__self__, value.__name__ == "format_map"

        @functools.wraps(wrapped)
        def checked(*args: Any, **kwargs: Any) -> str:
            mapping = args[0] if is_map and args and isinstance(args[0], dict) else {}
            self._check_format(text, () if is_map else args, mapping or kwargs)
            return wrapped(*args, **kwargs)

        return checked

    def call(__self, __context: Any, __obj: Any, *args: Any, **kwargs: Any) -> Any:
        owner = getattr(__obj, "__self__", None)
        if isinstance(owner, str) and isinstance(__obj, types.BuiltinMethodType | types.MethodType):
            # Markup's methods are Python wrappers around str's: the same checks apply.
            args = __self._check_str_method(owner, __obj.__name__, args, kwargs)
        return super().call(__context, __obj, *args, **kwargs)

    def _check_str_method(
        self, text: str, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
    ) -> tuple[Any, ...]:
        """Pre-checks for the str methods that can grow a string; returns the arguments."""
        if name in ("center", "ljust", "rjust", "zfill"):
            width = args[0] if args else kwargs.get("width", 0)
            self.refuse_over(width if isinstance(width, int) else 0, f"str.{name}")
        elif name == "expandtabs":
            tabsize = args[0] if args else kwargs.get("tabsize", 8)
            growth = text.count("\t") * (tabsize if isinstance(tabsize, int) else 0)
            self.refuse_over(len(text) + growth, "str.expandtabs")
        elif name == "replace" and len(args) >= 2:
            self.refuse_over(_replaced_size(text, *args[:3]), "str.replace")
        elif name == "join" and args:
            items = self.take(args[0], "the items of a join")
            self.check_join(text, items)
            return (items, *args[1:])
        return args

    def check_join(self, separator: str, items: list[Any]) -> None:
        size = sum(size_of(i, self.max_output) for i in items)
        self.refuse_over(size + len(separator) * max(len(items) - 1, 0), "a join")

    # -- filters -----------------------------------------------------------------------

    def _bounded_filter(self, name: str, function: Callable[..., Any]) -> Callable[..., Any]:
        check = _FILTER_CHECKS.get(name)
        # Filters marked pass_context / pass_environment get that first, the value second.
        position = 1 if _PassArg.from_obj(function) is not None else 0

        @functools.wraps(function)
        def bounded(*args: Any, **kwargs: Any) -> Any:
            value = args[position] if len(args) > position else None
            if isinstance(value, Iterator):  # a generator can be read once: keep what it gave
                value = self.take(value, f"the input of |{name}")
                args = (*args[:position], value, *args[position + 1 :])
            self.refuse_over(size_of(value, self.max_output), f"the input of |{name}")
            if check is not None:
                check(self, value, *args[position + 1 :], **kwargs)
            result = function(*args, **kwargs)
            self.refuse_over(size_of(result, self.max_output), f"the result of |{name}")
            return result

        bounded._hookwise_bounded = True  # type: ignore[attr-defined]
        return bounded

    def _tojson(self, value: Any, indent: int | None = None) -> str:
        if indent is not None:
            self.refuse_over(indent if isinstance(indent, int) else 0, "|tojson indent")
        encoder = json.JSONEncoder(default=str, indent=indent)
        pieces, size = [], 0
        for piece in encoder.iterencode(value):
            size += len(piece)
            self.refuse_over(size, "|tojson")
            pieces.append(piece)
        return "".join(pieces)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _check_power(base: Any, exponent: Any) -> None:
    """`((10**1000)**1000)**5` is refused before Python spends minutes computing it."""
    huge = _is_int(base) and _is_int(exponent) and exponent > 0 and abs(base) > 1
    if huge and base.bit_length() * exponent > MAX_INT_BITS:
        raise TooLarge(f"a power would exceed {MAX_INT_BITS} bits")


def _replaced_size(text: str, old: Any, new: Any, count: Any = -1) -> int:
    old, new = str(old), str(new)  # |replace(1, s) replaces "1"
    found = text.count(old) if old else len(text) + 1
    if isinstance(count, int) and count >= 0:
        found = min(found, count)
    return len(text) + found * max(len(new) - len(old), 0)


def _lines_of(value: Any) -> int:
    return str(value).count("\n") + 1


def _check_center(env: Sandbox, value: Any, width: Any = 80, *_: Any, **__: Any) -> None:
    env.refuse_over(width if isinstance(width, int) else 0, "|center")


def _check_indent(env: Sandbox, value: Any, width: Any = 4, *_: Any, **kwargs: Any) -> None:
    width = kwargs.get("width", width)
    per_line = len(width) if isinstance(width, str) else width if isinstance(width, int) else 0
    env.refuse_over(len(str(value)) + _lines_of(value) * per_line, "|indent")


def _check_wordwrap(env: Sandbox, value: Any, width: Any = 79, *args: Any, **kwargs: Any) -> None:
    wrap = kwargs.get("wrapstring", args[1] if len(args) > 1 else None) or "\n"
    width = kwargs.get("width", width)
    lines = len(str(value)) // max(width if isinstance(width, int) else 1, 1) + _lines_of(value)
    env.refuse_over(len(str(value)) + lines * len(str(wrap)), "|wordwrap")


def _check_format(env: Sandbox, value: Any, *args: Any, **kwargs: Any) -> None:
    env.check_percent(str(value), tuple(args) if args else kwargs)


def _check_join_filter(env: Sandbox, value: Any, d: Any = "", *_: Any, **kwargs: Any) -> None:
    separator = str(kwargs.get("d", d))
    items = [] if isinstance(value, str | dict) else env.take(value, "the items of |join")
    env.check_join(separator, items)


def _check_replace(env: Sandbox, value: Any, old: Any, new: Any, count: Any = None) -> None:
    size = _replaced_size(str(value), old, new, -1 if count is None else count)
    env.refuse_over(size, "|replace")


def _check_count(what: str) -> Callable[..., None]:
    def check(env: Sandbox, value: Any, count: Any = 0, *_: Any, **__: Any) -> None:
        env.refuse_over(count if isinstance(count, int) else 0, what)

    return check


def _check_sum(env: Sandbox, value: Any, *args: Any, **kwargs: Any) -> None:
    start = kwargs.get("start", args[1] if len(args) > 1 else 0)
    if isinstance(start, str | list | tuple) and isinstance(value, list | tuple):
        env.refuse_over(sum(size_of(v, env.max_output) for v in value), "|sum")


_FILTER_CHECKS: dict[str, Callable[..., None]] = {
    "center": _check_center,
    "indent": _check_indent,
    "wordwrap": _check_wordwrap,
    "format": _check_format,
    "join": _check_join_filter,
    "replace": _check_replace,
    "batch": _check_count("|batch"),
    "slice": _check_count("|slice"),
    "sum": _check_sum,
}
