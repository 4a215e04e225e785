"""Edits to files in a working tree: a YAML path, a Kustomize image, or a regex.

YAML files are read and written with ruamel.yaml's round-trip mode, with the file's own
indentation, so comments, key order, quoting and layout stay as written and a diff
shows only the changed value. An edit that finds its value already in place changes
nothing, which is what makes a repeated commit a no-op.
"""

from __future__ import annotations

import json
import re
from pathlib import Path
from typing import Any

from pydantic import BaseModel, ConfigDict, Field, model_validator
from ruamel.yaml import YAML
from ruamel.yaml.comments import CommentedMap
from ruamel.yaml.error import YAMLError

from hookwise.plugin import PermanentFailure, SkipRun, VersionPolicy, tag_of

# `a.b[0].c[name=app].image`: keys, list indexes, and list items picked by a field.
STEP = re.compile(r"([^.\[\]]+)|\[(\d+)\]|\[([^=\]]+)=([^\]]*)\]")


class Edit(BaseModel):
    """One change to one file. Give exactly one of `yaml_path`, `kustomize_image`, `regex`."""

    model_config = ConfigDict(extra="forbid")

    file: str = Field(description="Path inside the repository, e.g. apps/web/deployment.yaml.")
    yaml_path: str | None = Field(
        default=None,
        description="Dotted path to a scalar, with [n] for list indexes and [key=value] "
        "to pick a list item by a field: spec.template.spec.containers[name=app].image, "
        "or image.tag in Helm values.",
    )
    kustomize_image: str | None = Field(
        default=None,
        description="The `name` of an entry of a kustomization's `images`; `value` becomes "
        "its newTag, or its digest when it starts with sha256:.",
    )
    regex: str | None = Field(
        default=None,
        description="A regular expression over the whole file; its first group (or the "
        "whole match) is replaced by `value` wherever it matches.",
    )
    value: str = Field(description="The new value, templated, e.g. {{ artifact.tag }}.")
    policy: VersionPolicy | None = Field(
        default=None,
        description="Change the value only when the new tag qualifies against the one in "
        "the file (e.g. semver: minor); otherwise the run ends skipped, saying why.",
    )

    @model_validator(mode="after")
    def _one_target(self) -> Edit:
        given = [name for name in ("yaml_path", "kustomize_image", "regex") if getattr(self, name)]
        if len(given) != 1:
            raise ValueError(
                "give exactly one of yaml_path, kustomize_image or regex "
                f"(got {', '.join(given) or 'none'})"
            )
        if self.yaml_path is not None and "{{" not in self.yaml_path:
            parse_path(self.yaml_path)
        if self.regex is not None and "{{" not in self.regex:
            try:
                re.compile(self.regex)
            except re.error as exc:
                raise ValueError(f"regex {self.regex!r} is invalid: {exc}") from exc
        return self

    def describe(self) -> str:
        target = self.yaml_path or (self.kustomize_image and f"images[name={self.kustomize_image}]")
        return f"{self.file}: {target or f'/{self.regex}/'}"


def parse_path(path: str) -> list[str | int | tuple[str, str]]:
    """The steps of a YAML path; ValueError naming the first part that is not one."""
    steps: list[str | int | tuple[str, str]] = []
    position = 0
    for part in path.split("."):
        found = STEP.match(part)
        if not part or found is None:
            raise ValueError(f"yaml_path {path!r}: cannot read {part!r} (at character {position})")
        rest = part
        while rest:
            found = STEP.match(rest)
            if found is None:
                raise ValueError(f"yaml_path {path!r}: cannot read {rest!r}")
            key, index, field, wanted = found.groups()
            steps.append(key if key is not None else int(index) if index else (field, wanted))
            rest = rest[found.end() :]
        position += len(part) + 1
    return steps


def apply(root: Path, edit: Edit) -> bool:
    """Apply one edit under `root`; True when the file changed."""
    path = (root / edit.file).resolve()
    if not path.is_relative_to(root.resolve()):
        raise PermanentFailure(f"edit {edit.file!r}: the path leaves the repository")
    try:
        with path.open(encoding="utf-8", newline="") as handle:  # keep \r\n as written
            text = handle.read()
    except FileNotFoundError as exc:
        raise PermanentFailure(
            f"edit {edit.describe()}: no such file on the branch; check `file`"
        ) from exc
    if edit.regex is not None:
        changed = _replace(text, edit)
    else:
        steps = parse_path(edit.yaml_path) if edit.yaml_path else _kustomize_steps(edit)
        changed = _set_yaml(text, steps, edit)
    if changed == text:
        return False
    with path.open("w", encoding="utf-8", newline="") as handle:
        handle.write(changed)
    return True


def _admit(edit: Edit, current: str | None) -> None:
    """Raise SkipRun when the edit's policy refuses the new value over the current one.

    Image references are compared by their tags: registry/web:1.5.0 against ...:1.4.1.
    """
    if edit.policy is None:
        return
    new = tag_of(edit.value) or edit.value
    old = (tag_of(current) or current) if current is not None else None
    refusal = edit.policy.refusal(new, old, "committed")
    if refusal is not None:
        raise SkipRun(f"{edit.describe()}: {refusal}")


def _kustomize_steps(edit: Edit) -> list[str | int | tuple[str, str]]:
    field = "digest" if edit.value.startswith("sha256:") else "newTag"
    return ["images", ("name", edit.kustomize_image or ""), field]


def _replace(text: str, edit: Edit) -> str:
    pattern = re.compile(edit.regex or "", re.MULTILINE)
    first = pattern.search(text)
    if first is None:
        raise PermanentFailure(f"edit {edit.describe()}: the regex matches nothing in the file")
    current = first.group(1) if pattern.groups else first.group(0)
    if current != edit.value:
        _admit(edit, current)

    def swap(found: re.Match[str]) -> str:
        if not found.re.groups:
            return edit.value
        start, end = found.span(1)
        whole = found.group(0)
        offset = found.start(0)
        return whole[: start - offset] + edit.value + whole[end - offset :]

    return pattern.sub(swap, text)


def _set_yaml(text: str, steps: list[str | int | tuple[str, str]], edit: Edit) -> str:
    """The text with one scalar replaced where it stands: every other byte stays."""
    try:
        document = YAML().load(text)
    except YAMLError as exc:
        message = f"edit {edit.describe()}: the file is not valid YAML: {exc}"
        raise PermanentFailure(message) from exc
    parent, last = _walk(document, steps, edit)
    lines = text.splitlines(keepends=True)
    if isinstance(parent, dict) and last not in parent:
        _admit(edit, None)
        return "".join(_insert(lines, parent, str(last), edit.value))
    current = parent[last]
    if isinstance(current, dict | list):
        message = f"edit {edit.describe()}: the path ends at a mapping or list, not a value"
        raise PermanentFailure(message)
    if current is not None and str(current) == edit.value:
        return text
    _admit(edit, None if current is None else str(current))
    position = parent.lc.value if isinstance(parent, CommentedMap) else parent.lc.item
    line, column = position(last)
    row = lines[line]
    if row[column : column + 1] in ("|", ">"):
        raise PermanentFailure(f"edit {edit.describe()}: a block scalar (| or >) cannot be set")
    end = _scalar_end(row, column, flow=bool(parent.fa.flow_style()))
    lines[line] = row[:column] + _written(row[column:end], edit.value) + row[end:]
    return "".join(lines)


def _scalar_end(row: str, start: int, *, flow: bool) -> int:
    """Where the scalar token starting at `start` ends: its closing quote, or before a
    comment or the line's end."""
    quote = row[start : start + 1]
    if quote in ("'", '"'):
        at = start + 1
        while at < len(row):
            if quote == '"' and row[at] == "\\":
                at += 2
                continue
            if row[at] == quote:
                if quote == "'" and row[at + 1 : at + 2] == "'":
                    at += 2
                    continue
                return at + 1
            at += 1
        return len(row.rstrip("\r\n"))
    content = row.rstrip("\r\n")
    comment = content.find(" #", start)
    stop = comment if comment != -1 else len(content)
    if flow:  # inside {…} or […], a plain value also ends at the next separator
        stop = min([stop] + [i for c in ",}]" if (i := content.find(c, start, stop)) != -1])
    return len(content[:stop].rstrip())


PLAIN = re.compile(r"[A-Za-z0-9_/][A-Za-z0-9_./:@+-]*")
NOT_TEXT = re.compile(r"(?i)(true|false|yes|no|on|off|null|~|[-+]?(\d[\d_]*)?\.?\d+(e[-+]?\d+)?)")


def _written(old: str, value: str) -> str:
    """`value` as a YAML scalar in the quoting the old one used, when that can hold it."""
    if old.startswith("'"):
        return "'" + value.replace("'", "''") + "'"
    if old.startswith('"') or not PLAIN.fullmatch(value) or NOT_TEXT.fullmatch(value):
        return json.dumps(value)
    return value


def _insert(lines: list[str], mapping: Any, key: str, value: str) -> list[str]:
    """A new `key: value` line at the end of a block mapping, indented as its first key."""
    first = next(iter(mapping))
    _, column = mapping.lc.key(first)
    last_line = max(mapping.lc.value(k)[0] for k in mapping)
    written = _written("", value)
    return [*lines[: last_line + 1], f"{' ' * column}{key}: {written}\n", *lines[last_line + 1 :]]


def _walk(document: Any, steps: list[str | int | tuple[str, str]], edit: Edit) -> tuple[Any, Any]:
    """The container holding the path's last step, and that step."""
    node = document
    for number, step in enumerate(steps[:-1]):
        node = _step(node, step, steps[: number + 1], edit)
    last = steps[-1]
    if isinstance(last, tuple):
        raise PermanentFailure(f"edit {edit.describe()}: the path must end at a key or index")
    if isinstance(last, str) and isinstance(node, dict) and last not in node:
        if last in ("newTag", "digest"):  # a kustomize image entry may not have it yet
            return node, last
        raise PermanentFailure(f"edit {edit.describe()}: no key {last!r} there")
    if isinstance(last, int) and (not isinstance(node, list) or last >= len(node)):
        raise PermanentFailure(f"edit {edit.describe()}: no item [{last}] there")
    return node, last


def _shown(steps: list[Any]) -> str:
    """Steps written back as a path: a.b[0][name=app]."""
    text = ""
    for step in steps:
        if isinstance(step, tuple):
            text += f"[{step[0]}={step[1]}]"
        elif isinstance(step, int):
            text += f"[{step}]"
        else:
            text += f".{step}" if text else step
    return text


def _step(node: Any, step: str | int | tuple[str, str], done: list[Any], edit: Edit) -> Any:
    where = _shown(done[:-1]) if isinstance(step, tuple) else _shown(done)
    if isinstance(step, tuple):
        field, wanted = step
        if isinstance(node, list):
            for item in node:
                if isinstance(item, dict) and str(item.get(field)) == wanted:
                    return item
            present = [str(item.get(field)) for item in node if isinstance(item, dict)]
            raise PermanentFailure(
                f"edit {edit.describe()}: no item with {field}={wanted} at {where}; "
                f"there are: {', '.join(present) or 'none'}"
            )
    elif isinstance(step, int):
        if isinstance(node, list) and step < len(node):
            return node[step]
    elif isinstance(node, dict) and step in node:
        return node[step]
    raise PermanentFailure(f"edit {edit.describe()}: {where} is not in the file")
