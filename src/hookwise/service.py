"""`Hookwise`: the one object every front end goes through.

The HTTP API, the CLI, Slack's commands and buttons (and the console) parse what
people ask, call a method here, and format the typed record it returns (`views.py`).
None of them touches the store or the pipeline directly, so listing, showing,
replaying and deciding mean the same thing whichever way they are asked.

It also owns the pieces' lifecycle: `open` the store for a command, `start` the
worker, rule watcher and pruner for `serve` and `worker`.
"""

from __future__ import annotations

import asyncio
import dataclasses
import gc
import logging
import os
import re
import socket
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Literal
from urllib.parse import unquote, urlsplit

from hookwise import clock, egress, secrets
from hookwise.config import (
    BoundSource,
    Config,
    bind_sources,
    check_integrations,
    load_config,
    unset_in,
)
from hookwise.engine import Engine
from hookwise.errors import ConfigError
from hookwise.event import Event
from hookwise.links import Links
from hookwise.matcher import RuleIndex
from hookwise.metrics import ActionMetrics, Metrics
from hookwise.plugins import Registry, load_registry
from hookwise.processes import WorkerProcesses
from hookwise.reload import Reloader
from hookwise.retention import FIRST_PASS, Pruner
from hookwise.rules import Rule, RuleLoader
from hookwise.runner import Runner
from hookwise.secrets import secret_values
from hookwise.slack.chat import chat_for
from hookwise.slack.notify import Notifier
from hookwise.sources import Delivery
from hookwise.status import RunStatus
from hookwise.store import (
    AcceptResult,
    Decision,
    EventDetail,
    EventQuery,
    EventSummary,
    Intervention,
    Overview,
    Progress,
    RuleStats,
    RunDetail,
    RunQuery,
    RunRecord,
    Schema,
    Store,
    display_url,
    open_store,
)
from hookwise.templates import make_environment
from hookwise.worker import Worker
from hookwise.yamlpos import ENV_REF

log = logging.getLogger("hookwise")
# A run being looked at by a worker (a few milliseconds) is asked again this often.
BUSY_RETRIES = 20
BUSY_PAUSE = 0.1
# Bulk retries read the runs they retry this many at a time.
BULK_PAGE = 200
Outcome = Literal["done", "unknown", "repeated", "refused"]
# Run and event ids are ULIDs; four characters is the least worth looking up.
ID_PREFIX = re.compile(r"[0-9A-Za-z]{4,26}")


@dataclass(frozen=True)
class Found:
    """What an id or prefix names: `kind` is `event` or `run`, or None with `problem`."""

    kind: Literal["event", "run"] | None
    id: str | None
    problem: str


@dataclass(frozen=True)
class Answer:
    """What became of a person's approve, reject, retry or cancel, worded the same for
    every front end: the API maps `outcome` to an HTTP status, the CLI to its exit code."""

    outcome: Outcome
    message: str

    @property
    def ok(self) -> bool:
        return self.outcome == "done"


class Hookwise:
    """Configuration, plugins, rules, pipeline and store, and everything done with them."""

    def __init__(
        self,
        config: Config,
        registry: Registry,
        loader: RuleLoader,
        engine: Engine,
        metrics: Metrics,
    ) -> None:
        self.config = config
        self.registry = registry
        self.loader = loader
        self.engine = engine
        self.store: Store = engine.store
        self.metrics = metrics
        self.chat = chat_for(config)
        self.worker: Worker | None = None
        self.processes: WorkerProcesses | None = None
        self.reloader: Reloader | None = None
        self.pruner: Pruner | None = None

    # -- lifecycle --------------------------------------------------------------------

    async def open(self, *, upgrade: bool = False) -> Schema:
        """Connect the store; enough for commands that only read or decide."""
        return await self.store.open(upgrade=upgrade)

    async def close(self) -> None:
        await self.store.close()
        self.engine.templates.close()

    async def start(
        self,
        *,
        with_worker: bool = True,
        watch: bool = True,
        first_prune: float = FIRST_PASS,
        worker_processes: int = 0,
    ) -> None:
        """Open the store, then start the worker and the rule watcher as asked, and the
        pruner unless retention is off (its first pass `first_prune` seconds later).

        `hookwise worker` starts without the watcher: runs carry a snapshot of their
        rule's actions, so executing them never needs the current rules. With
        `worker_processes`, runs are executed by that many `hookwise worker` children.
        """
        await self.open()
        await self.registry.startup(self.config)
        if with_worker and worker_processes:
            config_path = str(Path(self.config.document.file).resolve())
            self.processes = WorkerProcesses(config_path, worker_processes)
            self.metrics.counted_in(self.processes.metrics_folder)
            await self.processes.start()
        elif with_worker:
            owner = f"{socket.gethostname()}:{os.getpid()}"
            runner = Runner(
                self.store,
                self.registry,
                self.engine.templates,
                self.config,
                self.metrics,
                self.chat,
            )
            self.worker = Worker(self.store, runner, self.config.worker, owner)
            await self.worker.start()
        if watch:
            config_file = Path(self.config.document.file).resolve()
            watched = config_file if config_file.is_file() else None
            self.reloader = Reloader(self.loader, self.config.rules_path, self, watched)
            await self.reloader.start()
        self._start_pruner(first_prune)
        # Everything loaded so far lives as long as the process: take it out of the
        # collector's sight, so a full collection does not stall every request for
        # tens of milliseconds walking the imported libraries.
        gc.freeze()
        log.info(
            "hookwise started: %d rules, sources %s, store %s",
            len(self.rules),
            ", ".join(sorted(self.engine.sources)) or "none",
            display_url(self.config.store_url),
        )

    def _start_pruner(self, first: float) -> None:
        retention_settings = self.config.retention
        keep_for = self.config.keep_for
        if keep_for is None:
            return
        if retention_settings.max_age is not None and retention_settings.max_age < keep_for:
            log.info(
                "retention: keeping finished runs for %gs, the dedupe window, "
                "not retention.max_age (%gs)",
                keep_for,
                retention_settings.max_age,
            )
        self.pruner = Pruner(self.store, keep_for, retention_settings.interval, self.metrics, first)
        self.pruner.start()

    async def stop(self) -> None:
        if self.pruner is not None:
            await self.pruner.stop()
        if self.reloader is not None:
            await self.reloader.stop()
        if self.worker is not None:
            await self.worker.stop()
        if self.processes is not None:
            await self.processes.stop()
        await self.registry.shutdown(self.config)
        await egress.shared_sessions.aclose()
        await self.close()
        log.info("hookwise stopped")

    # -- rules -------------------------------------------------------------------------

    @property
    def rules(self) -> list[Rule]:
        return self.engine.rules.rules

    def warnings(self) -> list[str]:
        """Set-ups that load but will not work as the rules expect; `check` prints them."""
        found = []
        slack = self.config.integrations.get("slack") or {}
        approving = [rule for rule in self.rules if rule.approval is not None]
        if approving and not slack.get("signing_secret"):
            first, more = approving[0], len(approving) - 1
            others = f" (and {more} more)" if more else ""
            found.append(
                f"{first.origin}: [warning] rule {first.name}{others} asks for approval, but "
                "integrations.slack.signing_secret is not set, so Slack's buttons are "
                "refused: set it, or decide with `hookwise approve`, the API or the console"
            )
        return found

    def use_config(self, config_path: Path) -> None:
        """Apply an edited hookwise.yaml: sources at once; other changes need a restart,
        and the log says which. A file with a problem changes nothing."""
        try:
            config = load_config(config_path)
            sources = bind_sources(config, self.registry.sources)
        except ConfigError as exc:
            log.error("%s not reloaded, keeping the configuration in use:\n%s", config_path, exc)
            return
        old, new = self.config.model_dump(), config.model_dump()
        changed = sorted(key for key in new if new[key] != old[key])
        if "sources" in changed:
            secrets.known.add(config_secrets(config, sources, self.registry))
            self.engine.sources = sources  # one assignment: a delivery sees old or new
            self.config.sources = config.sources
            log.info("%s reloaded: sources %s", config_path, ", ".join(sorted(sources)) or "none")
        later = [key for key in changed if key != "sources"]
        if later:
            log.warning(
                "%s: %s changed; restart hookwise to apply (only sources apply at once)",
                config_path,
                ", ".join(later),
            )

    def use_rules(self, rules: list[Rule]) -> None:
        """Swap in a new rule set: every later delivery is matched against it."""
        self.engine.use(RuleIndex(rules))

    # -- the pipeline ----------------------------------------------------------------

    async def receive(self, source: str, delivery: Delivery) -> list[AcceptResult]:
        """Verify, store and plan a delivery; its runs are executed in the background."""
        results = await self.engine.receive(source, delivery)
        if any(result.new_work for result in results):
            self.wake()  # most deliveries match nothing: no claim, no child woken for them
        return results

    def wake(self) -> None:
        """Runs were added or decided: this process's worker, or its children, look at once."""
        if self.worker is not None:
            self.worker.notify()
        if self.processes is not None:
            self.processes.wake()

    # -- reading -----------------------------------------------------------------------

    async def events(self, query: EventQuery) -> list[EventSummary]:
        """Newest first."""
        return await self.store.list_events(query)

    async def event(self, event_id: str) -> EventDetail | None:
        event = await self.store.get_event(event_id)
        if event is None:
            return None
        return EventDetail(event, await self.store.runs_of(event_id))

    async def run(self, run_id: str) -> RunDetail | None:
        return await self.store.run_detail(run_id)

    async def runs(self, query: RunQuery) -> list[RunRecord]:
        """Newest first."""
        return await self.store.list_runs(query)

    async def find(self, wanted: str, only: Literal["event", "run"] | None = None) -> Found:
        """The event or run an id, or a unique beginning of one, names; `only` looks
        among one kind, where the command takes no other."""
        if not ID_PREFIX.fullmatch(wanted):
            return Found(None, None, f"{wanted!r} is not an id: ids are 26 letters and digits")
        matches = await self.store.ids_starting(wanted)
        matches = [(kind, found) for kind, found in matches if only in (None, kind)]
        exact = [(kind, found) for kind, found in matches if found == wanted.upper()]
        if len(exact) == 1 or len(matches) == 1:
            kind, found = (exact or matches)[0]
            return Found("event" if kind == "event" else "run", found, "")
        if not matches:
            what = f"{only} id" if only else "event or run id"
            return Found(None, None, f"no {what} begins with {wanted}")
        shown = ", ".join(f"{kind} {found}" for kind, found in matches)
        return Found(None, None, f"{wanted} is ambiguous: {shown}; give more of the id")

    async def explain(self, event: Event) -> list[dict[str, Any]]:
        """The current rules' verdicts on a stored event, as the dry run gives them."""
        return await self.engine.templates.off_loop("runs", self.engine.explain, event)

    async def try_payload(self, source: str, delivery: Delivery) -> dict[str, Any]:
        """The dry run of a pasted payload: verified, normalized and matched, not stored."""
        return await self.engine.templates.off_loop("runs", self.engine.dry_run, source, delivery)

    async def rules_with_stats(self) -> list[tuple[Rule, RuleStats | None]]:
        """Every loaded rule, in file order, with what its runs in the history add up to."""
        stats = await self.store.rule_stats()
        return [(rule, stats.get(rule.name)) for rule in self.rules]

    async def overview(self) -> Overview:
        return await self.store.overview(clock.now())

    async def queue_depth(self) -> int:
        """Runs waiting to be executed or retried."""
        return await self.store.queue_depth()

    # -- acting ------------------------------------------------------------------------

    async def replay(self, event_id: str) -> list[str] | None:
        """New runs for a stored event under the current rules; None if it is unknown."""
        event: Event | None = await self.store.get_event(event_id)
        if event is None:
            return None
        runs = await self.engine.replay(event)
        self.wake()
        return runs

    async def decide(
        self, run_id: str, actor: str, decision: str, reason: str | None, via: str
    ) -> Answer:
        """Record an approve or reject; the run's worker acts on it and updates Slack."""
        noun = "approval" if decision == "approve" else "rejection"
        answer = await self._settled(
            lambda: self.store.decide(Decision(run_id, actor, decision, reason or None, via))
        )
        if answer == "recorded":
            self.wake()
            return Answer("done", f"{noun} of run {run_id} by {actor} recorded")
        if answer == "repeated":
            return Answer(
                "repeated", f"{actor} already decided on run {run_id}; one decision per person"
            )
        return self._refused(run_id, answer, "not waiting for approval")

    async def retry(self, run_id: str, actor: str, via: str, *, from_start: bool = False) -> Answer:
        """Run a dead run again, from the action that failed or, `from_start`, from the first
        under its rule as loaded now; a run waiting to retry is tried at once."""
        restart = None
        if from_start:
            record = await self.store.get_run(run_id)
            rule = self.engine.rules.by_name.get(record.rule) if record else None
            if record is not None and rule is None:
                return Answer(
                    "refused",
                    f"run {run_id}'s rule {record.rule} is no longer loaded, so it cannot "
                    "start over; retry it from where it failed, or replay its event",
                )
            restart = rule.snapshot() if rule else None
        request = Intervention(run_id, actor, via, restart=restart)
        answer = await self._settled(lambda: self.store.retry(request))
        if answer == "done":
            self.wake()
            where = "from its first action" if from_start else "from where it failed"
            return Answer("done", f"run {run_id} retried by {actor}; it goes on {where}")
        return self._refused(
            run_id,
            answer,
            "and only dead or retrying runs can be retried; replay its event instead",
        )

    async def retry_all(
        self, query: RunQuery, actor: str, via: str, *, from_start: bool = False
    ) -> list[tuple[str, Answer]]:
        """Retry every dead run the query finds (its statuses are ignored), page by page."""
        answers: list[tuple[str, Answer]] = []
        page = dataclasses.replace(query, statuses=(RunStatus.DEAD,), limit=BULK_PAGE)
        while runs := await self.store.list_runs(page):
            for run in runs:
                answers.append(
                    (run.id, await self.retry(run.id, actor, via, from_start=from_start))
                )
            page = dataclasses.replace(page, before=runs[-1].id)
        return answers

    async def cancel(self, run_id: str, actor: str, reason: str | None, via: str) -> Answer:
        """Stop a run before its next action; it ends as `cancelled` with who and why."""
        request = Intervention(run_id, actor, via, reason or None)
        answer = await self._settled(lambda: self.store.cancel(request))
        if answer == "done":
            await self._show_cancelled(run_id)
            return Answer("done", f"run {run_id} cancelled by {actor}")
        if answer == RunStatus.RUNNING:
            return Answer(
                "refused",
                f"run {run_id} is running an action now; cancel it once that attempt has ended",
            )
        return self._refused(run_id, answer, "and finished runs cannot be cancelled")

    async def _show_cancelled(self, run_id: str) -> None:
        """No worker takes a cancelled run again: bring its notify message up to date here."""
        detail = await self.store.run_detail(run_id)
        if detail is None or self.chat is None:
            return
        run = detail.run
        ended = Progress(run.status, run.step, run.attempt, run.outputs, run.error)
        events = await self.store.events_of_run(run_id)
        links = Links(self.config.public_url)
        await Notifier(self.chat, links).sync(run, events, ended, detail.attempts[-1])

    @staticmethod
    async def _settled(change: Callable[[], Awaitable[str]]) -> str:
        """Apply a change, waiting out the few milliseconds a worker may hold the run."""
        answer = RunStatus.RUNNING.value
        for _ in range(BUSY_RETRIES):
            answer = await change()
            if answer != RunStatus.RUNNING:
                break
            await asyncio.sleep(BUSY_PAUSE)
        return answer

    @staticmethod
    def _refused(run_id: str, answer: str, why: str) -> Answer:
        if answer == "unknown":
            return Answer("unknown", f"no run {run_id}")
        return Answer("refused", f"run {run_id} is {answer.replace('_', ' ')}, {why}")


def config_secrets(
    config: Config, sources: dict[str, BoundSource], registry: Registry
) -> list[str]:
    """Every secret in the configuration: tokens, passwords, signing keys, the store's."""
    found = secret_values(config)
    found += [value for bound in sources.values() for value in secret_values(bound.options)]
    for name, block in config.integrations.items():
        spec = registry.integrations.get(name)
        if spec is not None and not unset_in(config, ("integrations", name)):
            found += secret_values(spec.settings.model_validate(block))
    password = urlsplit(config.store).password
    found = [value for value in found if not ENV_REF.fullmatch(value)]  # unset, lenient
    return [*found, unquote(password)] if password else found


def build_service(config_path: str | os.PathLike[str], *, lenient: bool = False) -> Hookwise:
    """Everything that can be checked without I/O; raises ConfigError with all problems.

    The store is created but not connected: `open` or `start` does that. `lenient` is
    for commands that neither receive nor act (see `load_config`): a source or an
    integration whose `${VAR}` is not set is left out rather than refused.
    """
    config = load_config(config_path, lenient=lenient)
    if missing := unset_in(config, ("store",)):
        message = (
            f"store: environment variable {missing[0]} is not set; every command that "
            "reads the history needs it"
        )
        raise ConfigError([config.document.problem(("store",), message)])
    plugins_dir = config.path(config.plugins_dir) if config.plugins_dir else None
    registry = load_registry(plugins_dir)
    sources = bind_sources(config, registry.sources)
    check_integrations(config, registry.integrations, registry.sources)
    secrets.known.add(config_secrets(config, sources, registry))
    templates = make_environment(
        registry.prepare_jinja,
        max_output=config.templates.max_output,
        timeout=config.templates.timeout,
    )
    loader = RuleLoader(
        registry.actions,
        templates,
        registry.integrations,
        config.integrations,
        sources=list(config.sources),
        require_env=not lenient,
    )
    rules = RuleIndex(loader.load(config.rules_path))
    metrics = Metrics()
    registry.pm.register(ActionMetrics(metrics), "hookwise.metrics")
    store = open_store(config.store_url)
    engine = Engine(config, sources, registry.actions, templates, store, rules)
    return Hookwise(config, registry, loader, engine, metrics)
