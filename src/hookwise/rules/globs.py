"""Glob patterns for rule matching.

`*` matches any run of characters except `/`, `**` any run including `/`, `?` one
character except `/`, `[...]` a class (`[!...]` negated, never matching `/`).
Matching is case-sensitive and anchored at both ends. Patterns compile once, when rules load.
"""

from __future__ import annotations

import functools
import re
from typing import Any

from pydantic import GetCoreSchemaHandler
from pydantic_core import core_schema

from hookwise.errors import GlobError

WILDCARDS = "*?["


class Glob(str):
    """A pattern that is still its text (for messages, keys and the schema) and carries
    what matching needs, so matching an event never compiles anything.

    Most patterns are a literal, or a literal then `*` or `**` (`team-a/*`): each of
    those kinds matches by comparing text, in a subclass of its own. Only the others
    hold a compiled regex, which costs about 700 bytes, as much as the rest of a rule.
    """

    regex: re.Pattern[str] | None = None
    head: str  # the literal text before the first wildcard

    def __new__(cls, pattern: str) -> Glob:
        cut = next((i for i, char in enumerate(pattern) if char in WILDCARDS), len(pattern))
        kind = _BY_TAIL.get(pattern[cut:], _Compiled)
        glob = str.__new__(kind, pattern)
        glob.head = pattern[:cut]
        if kind is _Compiled:
            glob.regex = compile_glob(pattern)
        return glob

    @classmethod
    def __get_pydantic_core_schema__(
        cls, source: Any, handler: GetCoreSchemaHandler
    ) -> core_schema.CoreSchema:
        """A string to pydantic and in dumps; compiled once, when validated."""
        return core_schema.no_info_plain_validator_function(
            cls._validate,
            json_schema_input_schema=core_schema.str_schema(),
            serialization=core_schema.to_string_ser_schema(),
        )

    @classmethod
    def _validate(cls, value: Any) -> Glob:
        if isinstance(value, cls):
            return value
        if not isinstance(value, str):
            raise ValueError(f"expected a glob, got {value!r}")
        return interned(value)

    def matches(self, value: str) -> bool:
        raise NotImplementedError  # each kind below has its own

    @property
    def prefix(self) -> str:
        """The literal text every match starts with: the whole pattern when it has no wildcard."""
        return self.head


class _Literal(Glob):
    def matches(self, value: str) -> bool:
        return value == self


class _InSegment(Glob):
    """`head*`: the rest of the value has no `/`."""

    def matches(self, value: str) -> bool:
        return value.startswith(self.head) and value.find("/", len(self.head)) < 0


class _Prefix(Glob):
    """`head**`."""

    def matches(self, value: str) -> bool:
        return value.startswith(self.head)


class _Compiled(Glob):
    regex: re.Pattern[str]

    def matches(self, value: str) -> bool:
        return self.regex.fullmatch(value) is not None


_BY_TAIL: dict[str, type[Glob]] = {"": _Literal, "*": _InSegment, "**": _Prefix}


@functools.lru_cache(maxsize=1 << 16)
def interned(pattern: str) -> Glob:
    """One Glob per distinct pattern: ten thousand rules name the same few domains and
    event types, and each copy would carry its own compiled regex."""
    return Glob(pattern)


def compile_glob(pattern: str) -> re.Pattern[str]:
    """Translate to an anchored regex; raises GlobError naming what is wrong."""
    out: list[str] = []
    i, n = 0, len(pattern)
    while i < n:
        char = pattern[i]
        if char == "*":
            if pattern.startswith("**", i):
                out.append(".*")
                i += 2
                continue
            out.append("[^/]*")
        elif char == "?":
            out.append("[^/]")
        elif char == "[":
            end = _class_end(pattern, i)
            body = pattern[i + 1 : end]
            negate = body.startswith("!")
            body = body[1:] if negate else body
            body = body.replace("\\", "\\\\").replace("^", "\\^").replace("[", "\\[")
            body = body.replace("]", "\\]")
            # A negated class never matches `/`, like `*` and `?`.
            out.append(f"[^/{body}]" if negate else f"[{body}]")
            i = end
        else:
            out.append(re.escape(char))
        i += 1
    try:
        return re.compile("".join(out), re.DOTALL)
    except re.error as exc:
        raise GlobError(f"invalid glob {pattern!r}: {exc.msg}") from exc


def _class_end(pattern: str, start: int) -> int:
    i = start + 1
    if i < len(pattern) and pattern[i] == "!":
        i += 1
    if i < len(pattern) and pattern[i] == "]":
        i += 1
    end = pattern.find("]", i)
    if end == -1:
        raise GlobError(f"invalid glob {pattern!r}: '[' at position {start} is never closed")
    return end


def is_literal(pattern: str) -> bool:
    """True when the pattern has no wildcard, so an exact lookup can replace matching."""
    return not any(char in pattern for char in WILDCARDS)
