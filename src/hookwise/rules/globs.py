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
    its compiled form, so matching an event never compiles anything."""

    regex: re.Pattern[str]

    def __new__(cls, pattern: str) -> Glob:
        glob = super().__new__(cls, pattern)
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
        return self.regex.fullmatch(value) is not None

    @property
    def prefix(self) -> str:
        """The literal text every match starts with: the whole pattern when it has no wildcard."""
        end = next((i for i, char in enumerate(self) if char in WILDCARDS), len(self))
        return str(self[:end])


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
