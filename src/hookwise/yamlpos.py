"""YAML loading that remembers where every key and value came from.

PyYAML forgets positions once it builds Python objects and silently keeps the last
of two duplicate keys. Config and rule errors must say `file:line:col`, so we walk
the composed node tree ourselves and keep a map from each path to its position.

A long list at the top of a file (10,000 rules) is read one item at a time: each item
is built and handed to a callback as soon as PyYAML has composed it, and its node tree and
positions are dropped before the next, so loading never holds the whole file as nodes.

A file is input too: nesting is limited (PyYAML's composer recurses, so a 5,000-deep
list would end in RecursionError), and so is what aliases may expand to (a 600-byte
"billion laughs" file names 10^9 values). Both are reported at their position.
"""

from __future__ import annotations

import functools
import re
import sys
from collections import ChainMap
from collections.abc import Callable, Mapping, MutableMapping
from dataclasses import dataclass, field
from typing import Any

import yaml

from hookwise.errors import Problem

Path = tuple[Any, ...]  # keys (str, int, float, bool, None) and list positions
ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)(?::-([^}]*))?\}")
MERGE_TAG = "tag:yaml.org,2002:merge"
STR_TAG = "tag:yaml.org,2002:str"
MAX_DEPTH = 64
# Aliases may repeat what the file holds, within reason: `<<: *defaults` in every rule
# of a big file is fine, a tree of aliases of aliases is not.
ALIAS_FACTOR = 10
INTERN_MAX = 256  # characters: longer strings are rarely repeated
ALIAS_ALLOWANCE = 10_000


class LimitExceeded(yaml.MarkedYAMLError):
    """The document is deeper, or expands to more, than hookwise reads."""


class _Loader(yaml.SafeLoader):
    """SafeLoader that counts what it composes, refuses to nest too deep, and hands each
    item of the streamed top-level list to `settle` as soon as it is composed."""

    def __init__(self, stream: str, items_of: str | None = None) -> None:
        super().__init__(stream)
        self.depth = 0
        self.composed = 0
        self.items_of = items_of
        self.settle: Callable[[yaml.Node, int, bool], None] | None = None
        self._in_items = self._keep_items = False

    def compose_node(self, parent: yaml.Node | None, index: Any) -> yaml.Node | None:
        self.depth += 1
        try:
            if self.depth > MAX_DEPTH:
                raise LimitExceeded(
                    problem=f"nested more than {MAX_DEPTH} levels deep; flatten the structure",
                    problem_mark=self.peek_event().start_mark,  # type: ignore[no-untyped-call]
                )
            self.composed += 1
            # What is anchored (or an alias) may be built again later: it is handed over
            # like the rest, but its nodes are kept.
            anchored = getattr(self.peek_event(), "anchor", None) is not None  # type: ignore[no-untyped-call]
            if self.depth == 2:  # a value of the root mapping: is it the streamed list?
                self._in_items = _names(index, self.items_of) and isinstance(
                    parent, yaml.MappingNode
                )
                self._keep_items = anchored
            node: yaml.Node | None = super().compose_node(parent, index)
            if node is not None:
                # Only the line and column are ever read; PyYAML's marks also carry the
                # buffer and name, and two per node made loading 10,000 rules peak at
                # several times the memory the rules keep.
                node.start_mark = node.end_mark = _Mark(node.start_mark)
                item = self.depth == 3 and self._in_items
                if item and self.settle is not None and isinstance(parent, yaml.SequenceNode):
                    self.settle(node, index, anchored or self._keep_items)
            return node
        finally:
            self.depth -= 1


def _names(key: Any, name: str | None) -> bool:
    return isinstance(key, yaml.ScalarNode) and key.tag == STR_TAG and key.value == name


Positions = MutableMapping[Path, tuple[int, int]]
# What a streamed item is replaced by in `Document.data`: called with the document (its
# positions cover the item while the call lasts), the item's path and its value.
ItemHandler = Callable[["Document", Path, Any], Any]


@dataclass
class Document:
    """Plain Python data plus the positions needed to report problems in it."""

    file: str
    data: Any
    key_pos: Positions = field(default_factory=dict)
    value_pos: Positions = field(default_factory=dict)
    problems: list[Problem] = field(default_factory=list)
    # Leniently loaded: where a `${VAR}` not in the environment was kept as written.
    unset: dict[tuple[int, int], str] = field(default_factory=dict)

    def problem(self, path: Path, message: str, *, at_key: bool = False) -> Problem:
        """Position a message at `path`, or at its nearest ancestor that has a position."""
        table = self.key_pos if at_key else self.value_pos
        for depth in range(len(path), -1, -1):
            prefix = path[:depth]
            if prefix in table:
                line, col = table[prefix]
                return Problem(self.file, line, col, message)
            if prefix in self.value_pos:
                line, col = self.value_pos[prefix]
                return Problem(self.file, line, col, message)
        return Problem(self.file, 1, 1, message)


def format_path(path: Path) -> str:
    """`("rules", 2, "when")` → `rules[2].when`, the breadcrumb users see in errors."""
    out = ""
    for part in path:
        if isinstance(part, int):
            out += f"[{part}]"
        else:
            out += f".{part}" if out else str(part)
    return out


def load_file(
    filename: str,
    *,
    env: Mapping[str, str] | None = None,
    lenient: bool = False,
    stream: tuple[str, ItemHandler] | None = None,
) -> Document:
    """Load one YAML file; with `env`, `${VAR}` and `${VAR:-default}` in strings are expanded.

    `lenient`: a variable that is not set is no problem; it stays as written, and
    `Document.unset` says where, for commands that do not use the value.
    `stream=(key, handle)`: each item of the root mapping's `key` list goes to `handle`
    as soon as it is read, in order, and what `handle` returns takes its place in the
    data; the item's positions other than its own are dropped after the call. An item
    an alias may refer to (anchored, or in an anchored list) keeps its value instead.
    """
    try:
        with open(filename, encoding="utf-8") as handle:
            text = handle.read()
    except OSError as exc:
        doc = Document(filename, None)
        doc.problems.append(Problem(filename, 1, 1, f"cannot read file: {exc.strerror}"))
        return doc
    except UnicodeDecodeError as exc:
        doc = Document(filename, None)
        line = text_line(exc.object, exc.start)
        doc.problems.append(
            Problem(filename, line, 1, "the file is not UTF-8 text; save it as UTF-8")
        )
        return doc
    return load_text(text, filename, env=env, lenient=lenient, stream=stream)


def load_text(
    text: str,
    filename: str,
    *,
    env: Mapping[str, str] | None = None,
    lenient: bool = False,
    stream: tuple[str, ItemHandler] | None = None,
) -> Document:
    doc = Document(filename, None)
    loader: _Loader | None = None
    try:
        loader = _Loader(text, stream[0] if stream else None)
        walker = _Walker(doc, loader, env, lenient)
        if stream is not None:
            loader.settle = functools.partial(walker.settle, stream)
        node = loader.get_single_node()
        if node is not None:
            doc.data = walker.build(node, ())
        # A kept item is built twice, when streamed and where it stands: once per problem.
        doc.problems = list(dict.fromkeys(doc.problems))
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line, col = (mark.line + 1, mark.column + 1) if mark else (1, 1)
        kind = "YAML too large" if isinstance(exc, LimitExceeded) else "YAML syntax error"
        hint = ""
        if (exc.problem or "").startswith("found undefined alias"):
            # `*-SNAPSHOT` unquoted: YAML reads a leading * as an alias to an anchor.
            hint = '; a value starting with * must be quoted, e.g. "*-SNAPSHOT"'
        doc.problems.append(Problem(filename, line, col, f"{kind}: {exc.problem}{hint}"))
        doc.data = None  # what was built so far is dropped: no half-read document
    except yaml.reader.ReaderError as exc:
        # A character YAML does not allow in a file at all, such as a stray control code.
        at = exc.position
        line, col = text.count("\n", 0, at) + 1, at - text.rfind("\n", 0, at)
        message = (
            f"YAML syntax error: character #x{exc.character:02x} is not allowed in a YAML file; "
            "remove it"
        )
        doc.problems.append(Problem(filename, line, col, message))
        doc.data = None
    finally:
        if loader is not None:
            loader.dispose()
    return doc


class _Walker:
    def __init__(
        self,
        doc: Document,
        loader: _Loader,
        env: Mapping[str, str] | None,
        lenient: bool = False,
    ) -> None:
        self.doc = doc
        self.lenient = lenient
        self.loader = loader
        self.env = env
        self.built = 0  # values built so far; aliases build theirs again and again
        self._open: set[int] = set()  # collections being built: an alias to one is a cycle
        self._settled: dict[int, Any] = {}  # streamed items, by node, already handled

    def settle(
        self, stream: tuple[str, ItemHandler], node: yaml.Node, index: int, keep: bool
    ) -> None:
        """Build one streamed item, hand it over, then forget its nodes and positions.

        With `keep` (an alias may refer to the item), its nodes stay, and the item is
        built again where it stands in the document.
        """
        key, handle = stream
        path = (key, index)
        outer_keys, outer_values = self.doc.key_pos, self.doc.value_pos
        self.doc.key_pos, self.doc.value_pos = ChainMap({}, outer_keys), ChainMap({}, outer_values)
        try:
            value = handle(self.doc, path, self.build(node, path))
        finally:
            self.doc.key_pos, self.doc.value_pos = outer_keys, outer_values
        outer_values[path] = _pos(node)
        # PyYAML's constructor caches every value by its node, which keeps the nodes alive;
        # a scalar built again later (through an alias) comes out the same.
        self.loader.constructed_objects.clear()
        if not keep:
            self._settled[id(node)] = value
            if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
                node.value = []

    def build(self, node: yaml.Node, path: Path) -> Any:
        if id(node) in self._settled:
            return self._settled.pop(id(node))
        self.built += 1
        # Aliases may expand to ALIAS_FACTOR times what has been read so far, and more.
        if self.built > ALIAS_FACTOR * self.loader.composed + ALIAS_ALLOWANCE:
            raise LimitExceeded(
                problem=f"{format_path(path) or 'document'}: aliases expand to far more values "
                f"than the file holds (more than {ALIAS_FACTOR} times); use fewer nested aliases",
                problem_mark=node.start_mark,
            )
        self.doc.value_pos.setdefault(path, _pos(node))
        if isinstance(node, yaml.MappingNode | yaml.SequenceNode):
            if id(node) in self._open:
                message = f"{format_path(path) or 'document'}: an alias refers to itself"
                self.doc.problems.append(Problem(self.doc.file, *_pos(node), message))
                return None
            self._open.add(id(node))
            try:
                if isinstance(node, yaml.MappingNode):
                    return self._mapping(node, path)
                return [self.build(item, (*path, i)) for i, item in enumerate(node.value)]
            finally:
                self._open.discard(id(node))
        value = self.loader.construct_object(node, deep=True)
        if isinstance(value, str) and self.env is not None:
            value = self._expand(value, node)
        return _shared(value)

    def _mapping(self, node: yaml.MappingNode, path: Path) -> dict[Any, Any]:
        result: dict[Any, Any] = {}
        merges = []
        for key_node, value_node in node.value:
            if key_node.tag == MERGE_TAG:
                merges.append(value_node)
                continue
            key = _shared(self.loader.construct_object(key_node, deep=True))
            if not isinstance(key, str | int | float | bool) and key is not None:
                self.doc.problems.append(
                    Problem(self.doc.file, *_pos(key_node), "mapping keys must be plain scalars")
                )
                continue
            key_path = (*path, key)
            if key in result:
                first_line = self.doc.key_pos[key_path][0]
                self.doc.problems.append(
                    Problem(
                        self.doc.file,
                        *_pos(key_node),
                        f"{format_path(key_path)}: duplicate key {key!r} "
                        f"(first defined on line {first_line}); remove one of them",
                    )
                )
                continue
            # setdefault: a merged anchor built later at this path must not move the
            # position of the mapping's own key.
            self.doc.key_pos.setdefault(key_path, _pos(key_node))
            result[key] = self.build(value_node, key_path)
        # `<<: *base` fills in what the mapping does not say itself: explicit keys win.
        for value_node in merges:
            merged = self.build(value_node, path)
            for part in merged if isinstance(merged, list) else [merged]:
                if isinstance(part, dict):
                    for key, value in part.items():
                        result.setdefault(key, value)
        return result

    def _expand(self, value: str, node: yaml.Node) -> str:
        def replace(match: re.Match[str]) -> str:
            name, default = match.group(1), match.group(2)
            assert self.env is not None
            if name in self.env:
                return self.env[name]
            if default is not None:
                return default
            if self.lenient:
                self.doc.unset[_pos(node)] = name
                return match.group(0)
            self.doc.problems.append(
                Problem(
                    self.doc.file,
                    *_pos(node),
                    f"environment variable {name} is not set; "
                    f"export it or write ${{{name}:-default}}",
                )
            )
            return ""

        return ENV_REF.sub(replace, value)


def _shared(value: Any) -> Any:
    """Short strings interned: thousands of rules repeat the same keys, event types and
    templates, and each copy would otherwise stay in memory as long as the rules."""
    return sys.intern(value) if isinstance(value, str) and len(value) <= INTERN_MAX else value


def text_line(raw: bytes, offset: int) -> int:
    return raw.count(b"\n", 0, offset) + 1


class _Mark:
    """Where a node starts: all of a PyYAML mark that positions need, in two slots."""

    __slots__ = ("column", "line")

    def __init__(self, mark: Any) -> None:
        self.line, self.column = mark.line, mark.column

    def __str__(self) -> str:
        return f"line {self.line + 1}, column {self.column + 1}"


def _pos(node: yaml.Node) -> tuple[int, int]:
    return node.start_mark.line + 1, node.start_mark.column + 1
