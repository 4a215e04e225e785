"""Glob patterns for rule matching.

`*` matches any run of characters except `/`, `**` any run including `/`, `?` one
character except `/`, `[...]` a class (`[!...]` negated, never matching `/`).
Matching is case-sensitive and anchored at both ends. Patterns compile once, when rules load.
"""

from __future__ import annotations

import re
from functools import lru_cache


class GlobError(ValueError):
    pass


@lru_cache(maxsize=4096)
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
    return not any(char in pattern for char in "*?[")


def glob_match(pattern: str, value: str) -> bool:
    return compile_glob(pattern).fullmatch(value) is not None
