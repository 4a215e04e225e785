"""Turning pydantic's errors into positioned, human messages with did-you-mean hints."""

from __future__ import annotations

import difflib
import types
from collections.abc import Iterable
from typing import Annotated, Any, Union, get_args, get_origin
from urllib.parse import urlsplit

from pydantic import ValidationError
from pydantic.fields import FieldInfo

from hookwise.errors import Problem
from hookwise.yamlpos import Document, Path, format_path


def did_you_mean(name: object, choices: Iterable[str]) -> str:
    close = difflib.get_close_matches(str(name), list(choices), n=1, cutoff=0.6)
    return f"; did you mean {close[0]!r}?" if close else ""


def http_url(value: str, name: str = "url", *, root: bool = False) -> str:
    """A validator for integration settings: an http(s) URL with a host and no credentials.

    With `root`, also no query or fragment: the URL is a base that paths are added to.
    Messages never repeat the value, which may carry a token (webhook URLs do).
    """
    parts = urlsplit(value)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ValueError(f"{name} must be an http:// or https:// URL with a host")
    if parts.username or parts.password:
        raise ValueError(f"{name} must not contain credentials; use the token settings")
    if root and (parts.query or parts.fragment):
        raise ValueError(f"{name} must be a root URL, without ? or #")
    return value


def summarize(exc: ValidationError) -> str:
    """One line for a run's history: `with.url: Input should be a valid string; ...`."""
    return "; ".join(
        f"{'.'.join(str(p) for p in e['loc']) or 'with'}: {_message(e['msg'])}"
        for e in exc.errors()
    )


def _message(text: str) -> str:
    return text.removeprefix("Value error, ").removeprefix("Assertion failed, ")


# A pydantic dataclass names these two as a function call would.
UNKNOWN = ("extra_forbidden", "unexpected_keyword_argument")
MISSING = ("missing", "missing_argument")


def problems_from(
    exc: ValidationError,
    doc: Document,
    model: type[Any],
    prefix: Path = (),
    data: Any = None,
) -> list[Problem]:
    """One Problem per pydantic error, at the position of the offending key or value.

    `data` is what was validated, when it is not (or not yet) at `prefix` in `doc.data`.
    """
    problems = []
    data = _at(doc.data, prefix) if data is None else data
    for error in exc.errors(include_url=False):
        loc = _user_path(data, error["loc"])
        path = (*prefix, *loc)
        where = format_path(path)
        kind = error["type"]
        if kind in UNKNOWN and loc:
            known = _fields_at(model, loc[:-1])
            hint = did_you_mean(loc[-1], known) or (
                f"; allowed keys: {', '.join(known)}" if known else ""
            )
            problems.append(
                doc.problem(path, f"{where}: unknown key {loc[-1]!r}{hint}", at_key=True)
            )
        elif kind in MISSING:
            problems.append(doc.problem(path[:-1], f"{where}: required key is missing"))
        else:
            message = _message(error["msg"])
            got = error.get("input")
            detail = (
                f", got {got!r}" if kind.endswith("_type") and not isinstance(got, dict) else ""
            )
            problems.append(doc.problem(path, f"{where}: {message}{detail}"))
    return problems


def _at(data: Any, path: Path) -> Any:
    for part in path:
        try:
            data = data[part]
        except (KeyError, IndexError, TypeError):
            return None
    return data


def _user_path(data: Any, loc: tuple[Any, ...]) -> Path:
    """The error's location as the user wrote it.

    pydantic puts union members (`str`, `list[str]`) and validator names into
    locations; a part is kept only when it names a key or index of the input.
    """
    path: list[str | int] = []
    for part in loc:
        if (isinstance(data, dict) and part in data) or (
            isinstance(data, list) and isinstance(part, int) and part < len(data)
        ):
            data = data[part]
        elif isinstance(part, str) and ("[" in part or part in {"str", "int", "float", "bool"}):
            continue
        elif part == 0 and data is not None and not isinstance(data, dict | list):
            continue  # a single value a validator made into a list of one
        else:
            data = None
        path.append(part)
    return tuple(path)


def _fields_at(model: type[Any], loc: Path) -> list[str]:
    current: Any = model
    for part in loc:
        current = _step(_unwrap(current), part)
        if current is None:
            return []
    fields = _fields_of(_unwrap(current))
    return [info.alias or name for name, info in fields.items() if not info.exclude]


def _fields_of(annotation: Any) -> dict[str, FieldInfo]:
    """A model's or a pydantic dataclass's fields; none for anything else."""
    fields = (
        getattr(annotation, "__pydantic_fields__", None) if isinstance(annotation, type) else None
    )
    return fields if isinstance(fields, dict) else {}


def _step(annotation: Any, part: str | int) -> Any:
    if fields := _fields_of(annotation):
        for name, info in fields.items():
            if part in (name, info.alias):
                return info.annotation
        return None
    if get_origin(annotation) in (list, dict, tuple):
        return get_args(annotation)[-1]
    return None


def _unwrap(annotation: Any) -> Any:
    while True:
        origin = get_origin(annotation)
        if origin is Annotated:
            annotation = get_args(annotation)[0]
        elif origin in (Union, types.UnionType):
            members = [a for a in get_args(annotation) if a is not type(None)]
            models = [m for m in members if _fields_of(m)]
            annotation = (models or members)[0]
        else:
            return annotation
