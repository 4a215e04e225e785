"""Loading rule files: discovery, and whole-file validation with a position for every mistake."""

from __future__ import annotations

import dataclasses
import os
from collections.abc import Collection
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from jinja2 import TemplateSyntaxError
from pydantic import BaseModel, ValidationError

from hookwise import secrets
from hookwise.actions import ActionSpec, IntegrationSpec
from hookwise.errors import ConfigError, Problem
from hookwise.rules.flow import BLOCKS
from hookwise.rules.globs import is_literal
from hookwise.rules.model import ActionCall, Rule, RuleFile, referenced_env, strings_in
from hookwise.templates import Templates, is_template
from hookwise.validation import did_you_mean, problems_from
from hookwise.yamlpos import ENV_REF, Document, format_path, load_file

RULE_SUFFIXES = (".yaml", ".yml")


TESTS_FOLDER = "tests"


def rule_files(path: Path) -> list[Path]:
    """Rule files under `path`, shown relative to the working directory when inside it."""
    found = (
        sorted(
            p
            for p in path.rglob("*")
            if p.suffix in RULE_SUFFIXES and p.is_file() and not _in_tests(path, p)
        )
        if path.is_dir()
        else [path]
    )
    return [display_path(p) for p in found]


def _in_tests(root: Path, path: Path) -> bool:
    """`<rules>/tests/` holds rule test suites (`hookwise test`), not rules."""
    return TESTS_FOLDER in path.relative_to(root).parts[:-1]


def display_path(path: Path) -> Path:
    relative = os.path.relpath(path)
    return Path(relative) if not relative.startswith("..") else path


@dataclass
class RuleLoader:
    """Validates rule files against the installed actions; needs the plugins loaded first."""

    actions: dict[str, ActionSpec]
    templates: Templates
    integrations: dict[str, IntegrationSpec] = field(default_factory=dict)
    connections: dict[str, dict[str, Any]] = field(default_factory=dict)
    # The configured sources' names: a rule's `when.source` naming none of them (and no
    # glob) can never match. None skips the check (a loader without a config).
    sources: Collection[str] | None = None
    # False for commands that never act: a `${VAR}` not set is then a warning, kept here.
    require_env: bool = True
    warnings: list[Problem] = field(default_factory=list)

    def load(self, path: Path) -> list[Rule]:
        """All rules from a file or folder; raises ConfigError with every problem found.

        Each rule is checked as soon as it is read (`load_file`'s stream), so 10,000 rules
        never sit in memory as YAML nodes and positions all at once.
        """
        if not path.exists():
            raise ConfigError([Problem(str(path), 1, 1, "rules path does not exist")])
        problems: list[Problem] = []
        rules: list[Rule] = []
        first_seen: dict[str, str] = {}
        for file in rule_files(path):
            intake = _Intake(self, str(file), first_seen)
            warned = len(self.warnings)
            doc = load_file(str(file), stream=("rules", intake.take))
            if doc.problems:  # the YAML itself is broken: its rules are not judged
                problems.extend(doc.problems)
                del self.warnings[warned:]
                continue
            intake.take_unstreamed(doc)
            problems.extend(_file_problems(doc))
            problems.extend(intake.problems)
            first_seen.update((rule.name, rule.origin) for rule in intake.rules)
            rules.extend(intake.rules)
        if problems:
            raise ConfigError(problems)
        # What `${VAR}` expands to is a secret: masked in history and logs from now on.
        names = {name for rule in rules for name in referenced_env(rule)}
        secrets.known.add(os.environ[name] for name in names if name in os.environ)
        return rules

    def check(
        self, doc: Document, where: tuple[Any, ...], raw: Any
    ) -> tuple[Rule | None, list[Problem]]:
        """One rule as read: the schema's verdict and the semantic checks, in one pass."""
        problems = self._semantic(doc, where[-1], raw) if isinstance(raw, dict) else []
        try:
            rule = Rule.model_validate(raw)
        except ValidationError as exc:
            return None, [*problems_from(exc, doc, Rule, prefix=where, data=raw), *problems]
        return (None if problems else rule), problems

    def _semantic(self, doc: Document, index: int, raw: dict[str, Any]) -> list[Problem]:
        """What the schema alone cannot know: installed actions, their params, templates."""
        problems: list[Problem] = []
        base = ("rules", index)
        when = raw.get("when")
        if isinstance(when, dict) and isinstance(when.get("if"), str):
            condition = when["if"]
            problems.extend(self._compile(doc, (*base, "when", "if"), condition, bare=True))
            if ENV_REF.search(condition):
                where = format_path((*base, "when", "if"))
                problems.append(
                    doc.problem(
                        (*base, "when", "if"),
                        f"{where}: ${{VAR}} is not expanded in conditions; "
                        "match on event fields instead",
                    )
                )
        problems.extend(self._check_sources(doc, base, raw))
        problems.extend(self._check_flow(doc, base, raw))
        actions = raw.get("actions")
        for position, raw_call in enumerate(actions if isinstance(actions, list) else []):
            try:
                call = ActionCall.model_validate(raw_call)
            except ValidationError:
                continue  # already reported by the schema check
            at = (*base, "actions", position)
            for path, text in strings_in(call.with_, (*at, "with")):
                problems.extend(self._compile(doc, path, text, bare=False))
            spec = self.actions.get(call.uses)
            if spec is None:
                hint = did_you_mean(call.uses, self.actions) or (
                    f"; installed actions: {', '.join(sorted(self.actions))}"
                )
                where = format_path((*at, "uses"))
                problems.append(
                    doc.problem((*at, "uses"), f"{where}: unknown action {call.uses!r}{hint}")
                )
                continue
            problems.extend(self._check_params(doc, (*at, "with"), spec.params, call.with_))
            if spec.integration and raw.get("enabled", True) is not False:
                problems.extend(self._check_connection(doc, at, spec, call))
        return problems

    def _check_sources(
        self, doc: Document, base: tuple[Any, ...], raw: dict[str, Any]
    ) -> list[Problem]:
        """A source name that is not configured is a typo: the rule would never fire."""
        if self.sources is None:
            return []
        problems = []
        for block in (("when",), ("wait_for", "when")):
            when: Any = raw
            for key in block:
                when = when.get(key) if isinstance(when, dict) else None
            named = when.get("source") if isinstance(when, dict) else None
            values = named if isinstance(named, list) else [named]
            for position, value in enumerate(values):
                if not isinstance(value, str) or not is_literal(value):
                    continue
                if value in self.sources:
                    continue
                path = (*base, *block, "source", *([position] if isinstance(named, list) else []))
                hint = did_you_mean(value, self.sources) or (
                    f"; configured sources: {', '.join(sorted(self.sources)) or 'none'}"
                )
                problem = doc.problem(
                    path, f"{format_path(path)}: no source {value!r} is configured{hint}"
                )
                if raw.get("enabled", True) is False:  # it cannot fire anyway: a warning
                    self.warnings.append(dataclasses.replace(problem, level="warning"))
                else:
                    problems.append(problem)
        return problems

    def _check_flow(
        self, doc: Document, base: tuple[Any, ...], raw: dict[str, Any]
    ) -> list[Problem]:
        """Flow keys and messages must compile; approvals and notices need Slack configured."""
        problems: list[Problem] = []
        slack = self.connections.get("slack") or {}
        enabled = raw.get("enabled", True) is not False
        for block in BLOCKS:
            value = raw.get(block.name)
            if not isinstance(value, dict):
                continue
            for field_name in block.templates:
                text = value.get(field_name)
                if isinstance(text, str):
                    problems.extend(self._flow_template(doc, (*base, block.name, field_name), text))
            for field_name in block.conditions:
                text = value.get(field_name)
                if isinstance(text, str):
                    path = (*base, block.name, field_name)
                    problems.extend(self._compile(doc, path, text, bare=True))
            if block.needs_slack and enabled and not slack.get("token"):
                where = format_path((*base, block.name))
                problems.append(
                    doc.problem(
                        (*base, block.name),
                        f"{where}: needs Slack: set integrations.slack.token (a bot token) "
                        "in the config file; see docs/chatops.md",
                        at_key=True,
                    )
                )
        return problems

    def _flow_template(self, doc: Document, path: tuple[Any, ...], text: str) -> list[Problem]:
        problems = self._compile(doc, path, text, bare=False)
        if ENV_REF.search(text):
            problems.append(
                doc.problem(
                    path,
                    f"{format_path(path)}: ${{VAR}} is not expanded here; flow keys and "
                    "messages see event fields only",
                )
            )
        return problems

    def _check_connection(
        self, doc: Document, at: tuple[Any, ...], spec: ActionSpec, call: ActionCall
    ) -> list[Problem]:
        """The config's settings plus this action's `connection:` must make a usable whole."""
        assert spec.integration is not None
        integration = self.integrations.get(spec.integration)
        if integration is None:
            message = f"{spec.name} needs the {spec.integration!r} integration, not installed"
            return [doc.problem((*at, "uses"), f"{format_path((*at, 'uses'))}: {message}")]
        base = self.connections.get(spec.integration, {})
        if spec.integration not in self.connections and not call.connection:
            where = format_path((*at, "uses"))
            return [
                doc.problem(
                    (*at, "uses"),
                    f"{where}: {spec.name} needs `integrations.{spec.integration}` in the config "
                    f"file, or `connection:` on this action (see `hookwise plugins`)",
                )
            ]
        merged = {**base, **call.connection}
        problems = self._check_params(doc, (*at, "connection"), integration.settings, merged)
        for path, text in strings_in(call.connection, (*at, "connection")):
            problems.extend(self._compile(doc, path, text, bare=False))
        return problems

    def _check_params(
        self, doc: Document, at: tuple[Any, ...], model: type[BaseModel], params: dict[str, Any]
    ) -> list[Problem]:
        try:
            model.model_validate(params)
        except ValidationError as exc:
            # A templated value is checked after rendering; only literal mistakes count now.
            real = [
                e
                for e in exc.errors()
                if e["type"] in ("extra_forbidden", "missing") or not _templated(params, e["loc"])
            ]
            if real:
                narrowed = ValidationError.from_exception_data(exc.title, real)  # type: ignore[arg-type]
                return problems_from(narrowed, doc, model, prefix=at, data=params)
            return [doc.problem(at, f"{format_path(at)}: {message}") for message in
                    _across_fields(model, params)]  # fmt: skip
        return []

    def _compile(
        self, doc: Document, path: tuple[Any, ...], text: str, bare: bool
    ) -> list[Problem]:
        problems = []
        try:
            if bare or is_template(text):
                self.templates.check(text, bare=bare)
        except TemplateSyntaxError as exc:
            problems.append(
                doc.problem(path, f"{format_path(path)}: template does not compile: {exc.message}")
            )
        for ref in ENV_REF.finditer(text if not bare else ""):
            name, default = ref.group(1), ref.group(2)
            if name in os.environ or default is not None:
                continue
            where = f"{format_path(path)}: environment variable {name} is not set"
            if self.require_env:
                problems.append(doc.problem(path, f"{where}; export it before starting hookwise"))
            else:
                warning = doc.problem(path, f"{where}; `serve` and `worker` need it")
                self.warnings.append(dataclasses.replace(warning, level="warning"))
        return problems


@dataclass
class _Intake:
    """The rules of one file, taken one at a time while the file is read."""

    loader: RuleLoader
    file: str
    earlier: dict[str, str]  # names of rules from files already loaded, and where
    rules: list[Rule] = field(default_factory=list)
    problems: list[Problem] = field(default_factory=list)
    _names: dict[str, str] = field(default_factory=dict)  # this file's, and where
    taken: int = 0

    def take_unstreamed(self, doc: Document) -> None:
        """Rules the stream never saw, because `rules:` came from a root `<<:` merge: the
        whole document is loaded by now, so they are taken from it, in order."""
        items = doc.data.get("rules") if isinstance(doc.data, dict) else None
        if self.taken or not isinstance(items, list):
            return
        for index, raw in enumerate(items):
            self.take(doc, ("rules", index), raw)

    def take(self, doc: Document, where: tuple[Any, ...], raw: Any) -> None:
        self.taken += 1
        rule, problems = self.loader.check(doc, where, raw)
        self.problems.extend(problems)
        if rule is None:
            return
        seen = self.earlier.get(rule.name) or self._names.get(rule.name)
        if seen is not None:
            self.problems.append(
                doc.problem(
                    (*where, "name"),
                    f"{format_path(where)}.name: rule name {rule.name!r} is already used at "
                    f"{seen}; names must be unique across all files",
                )
            )
            return
        line, _ = doc.value_pos.get(where, (1, 1))
        rule._origin = self._names[rule.name] = f"{self.file}:{line}"
        self.rules.append(rule)


def _file_problems(doc: Document) -> list[Problem]:
    """What is wrong outside the rules themselves: the file's shape and its other keys."""
    data = doc.data if doc.data is not None else {"rules": []}
    if not isinstance(data, dict):
        return [doc.problem((), "a rule file must be a mapping with a `rules:` list")]
    if isinstance(data.get("rules"), list):
        data = {**data, "rules": []}  # each rule was judged as it was read
    try:
        RuleFile.model_validate(data)
    except ValidationError as exc:
        return problems_from(exc, doc, RuleFile, data=data)
    return []


def _across_fields(model: type[BaseModel], params: dict[str, Any]) -> list[str]:
    """What the model's own checks across fields say of the literal values, while others
    are templates (known only when the action runs): `stable_for: 90s` with `timeout:
    60s` is wrong whatever the image's tag will be."""
    literal = {k: v for k, v in params.items() if not _templated(params, (k,))}
    if len(literal) == len(params) or not literal:
        return []
    instance = model.model_construct(**params)  # templated values stay as written
    found: list[str] = []
    for attempt in range(2):  # the first pass settles every literal value; the second checks
        for name, value in literal.items():
            try:
                model.__pydantic_validator__.validate_assignment(instance, name, value)
            except ValidationError as exc:
                whole = [
                    e["msg"].removeprefix("Value error, ") for e in exc.errors() if not e["loc"]
                ]
                found += whole if attempt else []
            except (TypeError, ValueError, AttributeError):
                continue  # a check that needs a templated value: it runs after rendering
    return list(dict.fromkeys(found))


def _templated(params: Any, loc: tuple[Any, ...]) -> bool:
    """True when the value at `loc` (or an enclosing one) is a template string."""
    current = params
    for part in loc:
        if isinstance(current, str):
            break
        try:
            current = current[part]
        except (KeyError, IndexError, TypeError):
            return False
    return isinstance(current, str) and (is_template(current) or bool(ENV_REF.search(current)))
