"""The service configuration (`hookwise.yaml`), validated with positions."""

from __future__ import annotations

import os
import re
from collections.abc import Collection
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    SecretStr,
    ValidationError,
    field_validator,
)

from hookwise.access import AccessToken
from hookwise.actions import IntegrationSpec
from hookwise.durations import Duration
from hookwise.errors import ConfigError, Problem
from hookwise.sandbox import DEFAULT_MAX_OUTPUT
from hookwise.sources import SourceKind
from hookwise.store import check_url
from hookwise.validation import did_you_mean, problems_from
from hookwise.yamlpos import Document, load_file

DEFAULT_PATH = "hookwise.yaml"


class EgressConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    allow: list[str] = Field(
        default_factory=list,
        description="Hosts or networks (CIDR) outgoing requests may reach besides public ones.",
    )


class SourceConfig(BaseModel):
    """`kind` picks the source plugin; the other keys are that plugin's options."""

    model_config = ConfigDict(extra="allow")

    kind: str
    body_dedupe_window: Duration | None = Field(
        default=None,
        description="For deliveries without an id: how long the same body counts as a "
        "repeat; overrides the top-level body_dedupe_window.",
    )


class WorkerConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    # Runs mostly wait on a downstream; 16 at once let a worker keep pace with 500
    # deliveries/s in the benchmark where 8 did not (docs/performance.md).
    concurrency: int = Field(default=16, ge=1, description="Runs executed at once per process.")
    processes: int = Field(
        default=0,
        ge=0,
        le=64,
        description="`serve` only: worker processes it starts to execute runs, instead of "
        "executing them itself (0). Accepting and acting then use a core each.",
    )
    lease: Duration = Field(
        default=60.0, gt=0, description="How long a claimed run stays ours without renewal."
    )
    poll_interval: Duration = Field(default=1.0, gt=0, description="Safety-net polling period.")
    action_timeout: Duration = Field(
        default=300.0, gt=0, description="Per-attempt timeout for actions that set none."
    )


class TemplatesConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    timeout: Duration = Field(
        default=2.0,
        gt=0,
        description="Longest one template or condition may take to render; an action's own "
        "timeout, when shorter, bounds its rendering too.",
    )
    max_output: int = Field(
        default=DEFAULT_MAX_OUTPUT,
        ge=1024,
        description="Most characters (or list items) a template may produce, in total and "
        "in any one step (padding, repetition, joining, formatting).",
    )


class ServerConfig(BaseModel):
    """How `serve` treats connections: slow or numerous senders cannot hold it hostage."""

    model_config = ConfigDict(extra="forbid")

    header_timeout: Duration = Field(
        default=10.0,
        gt=0,
        description="A request's headers must arrive within this long of its first byte (or of "
        "the connection opening); otherwise 408 and the connection is closed.",
    )
    body_timeout: Duration = Field(
        default=30.0,
        gt=0,
        description="A request's body must arrive within this long of its headers; otherwise "
        "408 and the connection is closed.",
    )
    max_connections: int = Field(
        default=1000,
        ge=1,
        description="Open connections at most; more are closed as soon as they are accepted.",
    )


class RetentionConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")

    max_age: Duration | None = Field(
        default=30 * 86400.0,
        gt=0,
        description="Finished runs and their events are deleted this long after their last "
        "change; null keeps everything. Never less than dedupe_window.",
    )
    interval: Duration = Field(default=3600.0, gt=0, description="How often to prune.")


class Config(BaseModel):
    model_config = ConfigDict(extra="forbid")

    listen: str = "127.0.0.1:8080"
    store: str = "sqlite:///./hookwise.db"
    rules: Path = Path("rules")
    plugins_dir: Path | None = None
    api_token: SecretStr | None = Field(
        default=None,
        description="One shared operator token for /api/*; its holders name themselves with "
        "`by`. Prefer `access`, which names each token and gives it a role.",
    )
    access: list[AccessToken] = Field(
        default_factory=list,
        description="Named tokens for the API and the console, each a viewer or an operator.",
    )
    public_url: str | None = Field(
        default=None,
        description="Where people reach this service (https://hookwise.example.com); Slack "
        "messages and tickets then link to the console's pages.",
    )
    allow_unauthenticated_api: bool = Field(
        default=False,
        description="Serve /api/* without api_token although `listen` is not a loopback "
        "address. Anyone who can reach the port can then read the history and replay events.",
    )
    max_body_bytes: int = Field(default=1024 * 1024, gt=0)
    dedupe_window: Duration = Field(
        default=72 * 3600.0,
        description="How long a delivery id (or a sender's dedupe key) counts as a repeat.",
    )
    body_dedupe_window: Duration = Field(
        default=600.0,
        description="For senders without a delivery id (Artifactory): how long the same "
        "body counts as a repeat. Short, so that re-sending an old promotion (a rollback) "
        "runs again; a sender's own retries come within minutes.",
    )
    egress: EgressConfig = Field(default_factory=EgressConfig)
    worker: WorkerConfig = Field(default_factory=WorkerConfig)
    retention: RetentionConfig = Field(default_factory=RetentionConfig)
    templates: TemplatesConfig = Field(default_factory=TemplatesConfig)
    server: ServerConfig = Field(default_factory=ServerConfig)
    sources: dict[str, SourceConfig] = Field(default_factory=dict)
    integrations: dict[str, dict[str, Any]] = Field(
        default_factory=dict,
        description="Connection settings per integration (slack, jira, …), checked by its plugin.",
    )
    # Where the file was read from; relative paths in it are relative to its folder.
    _base_dir: Path = PrivateAttr(default=Path("."))
    _document: Document | None = PrivateAttr(default=None)

    @field_validator("listen", mode="before")
    @classmethod
    def _host_port(cls, value: object) -> str:
        value = str(value)
        host, sep, port = value.rpartition(":")
        if not sep or not host or not (port.isascii() and port.isdigit()) or int(port) > 65535:
            raise ValueError(f"expected host:port such as 127.0.0.1:8080, got {value!r}")
        return value

    @field_validator("access")
    @classmethod
    def _distinct_tokens(cls, tokens: list[AccessToken]) -> list[AccessToken]:
        names = [entry.name for entry in tokens]
        twice = sorted({name for name in names if names.count(name) > 1})
        if twice:
            raise ValueError(f"each token needs its own name; {', '.join(twice)} is used twice")
        values = [entry.token.get_secret_value() for entry in tokens]
        if len(set(values)) != len(values):
            raise ValueError("two entries share a token: give each person their own")
        return tokens

    @field_validator("public_url")
    @classmethod
    def _absolute_url(cls, value: str | None) -> str | None:
        if value is not None and not re.match(r"^https?://[^/\s]+(/\S*)?$", value):
            raise ValueError(
                f"expected an http(s) URL such as https://hookwise.example.com, got {value!r}"
            )
        return value.rstrip("/") if value else value

    @field_validator("store")
    @classmethod
    def _known_store(cls, value: str) -> str:
        check_url(value)
        return value

    @property
    def host(self) -> str:
        return self.listen.rpartition(":")[0].strip("[]")

    @property
    def port(self) -> int:
        return int(self.listen.rpartition(":")[2])

    @property
    def document(self) -> Document:
        """The file as read, with positions, for messages about what it says."""
        return self._document or Document(DEFAULT_PATH, None)

    @property
    def base_dir(self) -> Path:
        """The folder of the config file: relative paths in it start there."""
        return self._base_dir

    def path(self, value: Path) -> Path:
        return value if value.is_absolute() else self._base_dir / value

    @property
    def rules_path(self) -> Path:
        return self.path(self.rules)

    @property
    def keep_for(self) -> float | None:
        """How old a finished run must be to be pruned, or None to keep everything.

        Never less than the dedupe window: a repeated delivery is answered with its
        first event's id, so that event must still be there.
        """
        max_age = self.retention.max_age
        return None if max_age is None else max(max_age, self.dedupe_window)

    @property
    def store_url(self) -> str:
        """SQLite paths in the URL are relative to the config file, like every other path."""
        prefix = "sqlite:///"
        if self.store.startswith(prefix) and not self.store.startswith(prefix + "/"):
            return prefix + str(self.path(Path(self.store[len(prefix) :])))
        return self.store


def load_config(path: str | os.PathLike[str] = DEFAULT_PATH, *, lenient: bool = False) -> Config:
    """Read, expand `${VAR}`, validate; raises ConfigError listing every problem.

    `lenient` is for commands that use neither the sources' secrets nor the
    integrations' credentials (check, test, events, …): a `${VAR}` that is not set is
    then no error, and nothing is checked of the value it would have given.
    """
    if not Path(path).is_file():
        where = Path(path).resolve()
        problem = "no such file" if not Path(path).exists() else "not a file"
        raise ConfigError(
            [
                Problem(
                    str(where),
                    1,
                    1,
                    f"cannot read the config: {problem}; pass --config PATH "
                    "or run hookwise in the folder that holds hookwise.yaml",
                )
            ]
        )
    doc = load_file(str(path), env=os.environ, lenient=lenient)
    if doc.problems:
        raise ConfigError(doc.problems)
    data: Any = doc.data if doc.data is not None else {}
    if not isinstance(data, dict):
        raise ConfigError([doc.problem((), "the config file must be a mapping of settings")])
    try:
        config = Config.model_validate(data)
    except ValidationError as exc:
        raise ConfigError(problems_from(exc, doc, Config)) from None
    config._base_dir = Path(path).resolve().parent
    config._document = doc
    return config


def _known(doc: Document, problems: list[Problem]) -> list[Problem]:
    """Problems not caused by a `${VAR}` left unset by a lenient load; a block that only
    has those is left out, and a command that needs it says so when it does."""
    unset_lines = {line for line, _ in doc.unset}
    return [problem for problem in problems if problem.line not in unset_lines]


def _unset_paths(doc: Document) -> list[tuple[Any, ...]]:
    return [path for path, position in doc.value_pos.items() if position in doc.unset]


def unset_in(config: Config, where: tuple[str, ...]) -> list[str]:
    """The `${VAR}`s left unset below `where` (e.g. `("sources", "artifactory")`)."""
    doc = config._document
    if doc is None:
        return []
    return sorted(
        {
            doc.unset[doc.value_pos[path]]
            for path in _unset_paths(doc)
            if path[: len(where)] == where
        }
    )


@dataclass(frozen=True)
class BoundSource:
    """A configured source: its URL name, its plugin, and its validated options."""

    name: str
    kind: SourceKind
    options: BaseModel
    body_dedupe_window: float | None = None  # None: the config's

    @property
    def credential_headers(self) -> frozenset[str]:
        """Lower-cased: never stored, never shown to templates, refused when repeated."""
        return frozenset(h.lower() for h in self.kind.credential_headers(self.options))


def bind_sources(config: Config, kinds: dict[str, SourceKind]) -> dict[str, BoundSource]:
    """Validate each source's options against its plugin's schema, known once plugins load."""
    doc = config._document or Document(DEFAULT_PATH, None)
    bound: dict[str, BoundSource] = {}
    problems: list[Problem] = []
    for name, source in config.sources.items():
        kind = kinds.get(source.kind)
        if kind is None:
            hint = did_you_mean(source.kind, kinds) or f"; known kinds: {', '.join(sorted(kinds))}"
            problems.append(
                doc.problem(
                    ("sources", name, "kind"),
                    f"sources.{name}.kind: unknown source kind {source.kind!r}{hint}",
                )
            )
            continue
        try:
            options = kind.options.model_validate(source.model_extra or {})
        except ValidationError as exc:
            found = problems_from(exc, doc, kind.options, prefix=("sources", name))
            problems.extend(_known(doc, found))
            continue
        bound[name] = BoundSource(name, kind, options, source.body_dedupe_window)
    if problems:
        raise ConfigError(problems)
    return bound


def check_integrations(
    config: Config, specs: dict[str, IntegrationSpec], source_kinds: Collection[str] = ()
) -> None:
    """Validate each configured integration block against its plugin's settings schema."""
    doc = config._document or Document(DEFAULT_PATH, None)
    problems: list[Problem] = []
    for name, block in config.integrations.items():
        spec = specs.get(name)
        if spec is None and name in source_kinds:
            message = (
                f"integrations.{name}: {name} is a source kind, and sources go under "
                f"`sources:` (e.g. `sources: {{{name}: {{kind: {name}, …}}}}`), not `integrations:`"
            )
            problems.append(doc.problem(("integrations", name), message, at_key=True))
            continue
        if spec is None:
            hint = did_you_mean(name, specs) or f"; installed: {', '.join(sorted(specs)) or 'none'}"
            message = f"integrations.{name}: no installed plugin provides {name!r}{hint}"
            problems.append(doc.problem(("integrations", name), message, at_key=True))
            continue
        try:
            spec.settings.model_validate(block)
        except ValidationError as exc:
            found = problems_from(exc, doc, spec.settings, prefix=("integrations", name))
            problems.extend(_known(doc, found))
    if problems:
        raise ConfigError(problems)
