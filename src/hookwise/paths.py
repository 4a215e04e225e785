"""Dotted paths into events (`data.platforms.0.os`), shared by rules and sources."""

from __future__ import annotations

from typing import Any

MISSING: Any = object()


def lookup(root: Any, dotted: str) -> Any:
    """Follow `a.b.0.c` through objects and lists; MISSING when any step is absent."""
    current = root
    for part in dotted.split("."):
        if isinstance(current, dict) and part in current:
            current = current[part]
        elif (
            isinstance(current, list)
            and part.isascii()
            and part.isdigit()
            and int(part) < len(current)
        ):
            current = current[int(part)]
        else:
            return MISSING
    return current
