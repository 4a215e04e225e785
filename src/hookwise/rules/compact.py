"""Rule parts as slotted pydantic dataclasses: validated like models, held like tuples.

A BaseModel instance carries a `__dict__` and the set of fields it was given. Ten
thousand rules, each a graph of four of them, held about 3 KB a rule; slots keep only
the values.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import field
from typing import Any, Self, TypeVar, cast, dataclass_transform

from pydantic import ConfigDict, Field, TypeAdapter
from pydantic.dataclasses import dataclass

T = TypeVar("T")


class Compact:
    """`model_validate` and `model_dump`, as the rest of hookwise knows them from models."""

    __slots__ = ()

    @classmethod
    def model_validate(cls, data: Any) -> Self:
        validated: Self = _adapter(cls).validate_python(data)
        return validated

    def model_dump(self, **options: Any) -> dict[str, Any]:
        dumped: dict[str, Any] = _adapter(type(self)).dump_python(self, **options)
        return dumped


_adapters: dict[type, TypeAdapter[Any]] = {}


def _adapter(cls: type) -> TypeAdapter[Any]:
    if cls not in _adapters:
        _adapters[cls] = TypeAdapter(cls)
    return _adapters[cls]


@dataclass_transform(kw_only_default=True, field_specifiers=(Field, field))
def compact(*, frozen: bool = False, **config: Any) -> Callable[[type[T]], type[T]]:
    """A slotted pydantic dataclass that refuses unknown keys, like the rule file's models."""
    settings = ConfigDict(extra="forbid", **config)  # type: ignore[typeddict-item]
    return cast(
        Callable[[type[T]], type[T]],
        dataclass(config=settings, slots=True, frozen=frozen, kw_only=True),
    )
