"""Executing one claimed run: render → validate → act → record, action by action.

The run resumes at its current action, so actions that already succeeded are not
repeated on retry. Every attempt is written to the store before the next begins.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import os
import time
from dataclasses import dataclass
from typing import Any

from pydantic import ValidationError

from hookwise import clock, retry, secrets
from hookwise.actions import ActionContext, ActionSpec, RunLog, action_label
from hookwise.config import Config
from hookwise.egress import EgressPolicy
from hookwise.errors import (
    EgressDenied,
    PermanentFailure,
    RenderError,
    RetryLater,
    SkipRun,
    StoreError,
)
from hookwise.event import Event
from hookwise.flow.gates import Gates
from hookwise.links import Links
from hookwise.metrics import Metrics
from hookwise.plugins import Registry
from hookwise.rules import ActionCall
from hookwise.secrets import secret_values
from hookwise.slack.chat import SlackChat
from hookwise.slack.notify import Notifier
from hookwise.status import RunStatus
from hookwise.store import AttemptRecord, Progress, RunRecord, Store
from hookwise.templates import Templates, template_context
from hookwise.validation import summarize

log = logging.getLogger("hookwise.runner")
INTERRUPTED = "hookwise stopped during an attempt; the run resumes where it was"
# How long a finished attempt waits for the store to come back before it is given up
# (and the run is executed again once its lease has expired).
RECORD_PATIENCE = 600.0


@dataclass(frozen=True)
class Outcome:
    status: str  # succeeded | retry | dead | skipped
    output: Any = None
    error: str | None = None
    delay: float | None = None


class Runner:
    def __init__(
        self,
        store: Store,
        registry: Registry,
        templates: Templates,
        config: Config,
        metrics: Metrics,
        chat: SlackChat | None,
    ) -> None:
        self.store = store
        self.registry = registry
        self.actions = registry.actions
        self.integrations = registry.integrations
        self.egress = EgressPolicy(config.egress.allow)
        self.templates = templates
        self.config = config
        self.metrics = metrics
        self.links = Links(config.public_url)
        self.gates = Gates(store, templates, chat, self.links)
        self.notifier = Notifier(chat, self.links)

    async def execute(self, run: RunRecord) -> None:
        """Pass the run's gates, then run its remaining actions.

        On cancellation (shutdown) the run is handed back at once.
        """
        state = _State(run.step, run.attempt, dict(run.outputs))
        try:
            events = run.events
            if events is None:
                events = await self.store.events_of_run(run.id)
            if not events:
                error = f"event {run.event_id} is gone from the store"
                await self._finish(
                    run,
                    [],
                    None,
                    Progress(RunStatus.DEAD, run.step, run.attempt, run.outputs, error),
                )
                return
            awaited = (
                await self.store.get_event(run.awaited_event_id) if run.awaited_event_id else None
            )
            visible = template_context(
                events[-1], run.spec, run.outputs, reveal=False, batch=events, awaited=awaited
            )
            hold = await self.gates.check(run, events, visible)
            if hold is not None:
                *earlier, last = hold.entries or (None,)
                for entry in earlier:  # kept in order; the lease stays with this worker
                    running = Progress(RunStatus.RUNNING, run.step, run.attempt, run.outputs)
                    await self._record(run, entry, running)
                await self._finish(run, events, last, hold.progress)
                return
            if "notify" in run.spec and not (run.flow.get("notify") or {}).get("ts"):
                announced = Progress(RunStatus.RUNNING, run.step, run.attempt, run.outputs)
                await self._finish(run, events, None, announced)
            await self._run_steps(run, state, events, awaited)
        except asyncio.CancelledError:
            interrupted = None
            if state.in_flight is not None:
                label, number, started = state.in_flight
                interrupted = AttemptRecord(
                    run.id,
                    state.step,
                    label,
                    number,
                    started,
                    time.time(),
                    "interrupted",
                    error="hookwise stopped during this attempt; it will be retried",
                )
            note = INTERRUPTED
            progress = Progress(RunStatus.RETRYING, state.step, state.attempt, state.outputs, note)
            await asyncio.shield(self.store.record(run.lease, run.id, interrupted, progress))
            raise

    async def _run_steps(
        self, run: RunRecord, state: _State, events: list[Event], awaited: Event | None
    ) -> None:
        event = events[-1]
        calls = [ActionCall.model_validate(a) for a in run.spec["actions"]]
        # Rules register their ${VAR} values as they load; a run may outlive its rule.
        # Values too short to mask everywhere are still masked in this run's records.
        own = [os.environ[n] for n in run.spec.get("env", []) if os.environ.get(n)]
        secrets.known.add(own)
        while state.step < len(calls):
            step, attempt, outputs = state.step, state.attempt, state.outputs
            call = calls[step]
            label = action_label(call.id, call.uses, step)
            number = attempt + 1
            if number > call.retry.attempts:
                error = f"{label}: gave up after {attempt} attempts ({run.error or 'lost'})"
                await self._finish(
                    run, events, None, Progress(RunStatus.DEAD, step, attempt, outputs, error)
                )
                return
            log = RunLog(f"{run.rule}/{label}", own)
            started = time.time()
            state.in_flight = (label, number, started)
            resumed = number > 1 or (step == run.step and run.error == INTERRUPTED)
            context = template_context(event, run.spec, outputs, batch=events, awaited=awaited)
            outcome = await self._attempt(run, event, call, label, number, context, log, resumed)
            state.in_flight = None
            ended = time.time()
            record = AttemptRecord(
                run.id,
                step,
                label,
                number,
                started,
                ended,
                outcome.status,
                secrets.known.redact(outcome.output, own),
                secrets.known.redact(outcome.error, own),
                log.lines,
            )
            progress = _next(call, calls, state, label, number, outcome, record)
            _log_outcome(run, label, number, call.retry.attempts, record.error, progress)
            # Shielded: once an attempt is over, its record is written even during shutdown.
            kept = await asyncio.shield(self._finish(run, events, record, progress))
            if not kept or progress.status != RunStatus.RUNNING:
                return
            state.step, state.attempt, state.outputs = progress.step, 0, progress.outputs

    def _prepare(
        self,
        spec: ActionSpec,
        call: ActionCall,
        context: dict[str, Any],
        where: str,
        label: str,
        limit: float,
    ) -> tuple[Any, Any]:
        """Rendered and validated `with` and integration settings; a mistake here cannot
        heal by retrying, so it is a PermanentFailure."""
        try:
            params = spec.params.model_validate(
                self.templates.render(call.with_, context, f"{where}, {label}", timeout=limit)
            )
        except RenderError as exc:
            raise PermanentFailure(str(exc)) from exc
        except ValidationError as exc:
            raise PermanentFailure(f"parameters invalid after rendering: {summarize(exc)}") from exc
        secrets.known.add(secret_values(params))  # a SecretStr parameter, e.g. a trigger token
        return params, self._settings(spec, call, context, where, limit)

    def _settings(
        self, spec: ActionSpec, call: ActionCall, context: dict[str, Any], where: str, limit: float
    ) -> Any:
        """The integration's settings from the config, overridden by the action's `connection`."""
        if spec.integration is None:
            return None
        integration = self.integrations[spec.integration]
        try:
            override = self.templates.render(
                call.connection, context, f"{where}, connection", timeout=limit
            )
            merged = {**self.config.integrations.get(spec.integration, {}), **override}
            settings = integration.settings.model_validate(merged)
        except RenderError as exc:
            raise PermanentFailure(str(exc)) from exc
        except ValidationError as exc:
            raise PermanentFailure(
                f"integrations.{spec.integration} settings invalid: {summarize(exc)}; "
                "check hookwise.yaml and the action's `connection:`"
            ) from exc
        # A `connection:` override may bring secrets the config did not have.
        secrets.known.add(secret_values(settings))
        return settings

    async def _finish(
        self,
        run: RunRecord,
        events: list[Event],
        record: AttemptRecord | None,
        progress: Progress,
    ) -> bool:
        progress = await self.notifier.sync(run, events, progress, record)
        kept = await self._record(run, record, progress)
        if kept and progress.status in (RunStatus.SUCCEEDED, RunStatus.DEAD):
            self.metrics.runs_finished.labels(run.rule, progress.status).inc()
        return kept

    async def _record(
        self, run: RunRecord, record: AttemptRecord | None, progress: Progress
    ) -> bool:
        """Write the run's progress, waiting out a store outage of up to RECORD_PATIENCE.

        The action has already happened: giving up would leave the run `running` until
        its lease expires and the action would run again. The lease token still guards
        the write, so a run another worker took over meanwhile is not overwritten.
        """
        waited, delay = 0.0, 0.25
        while True:
            try:
                return await self.store.record(run.lease, run.id, record, progress)
            except StoreError as exc:
                if waited >= RECORD_PATIENCE:
                    raise
                if not waited:
                    log.warning("run %s: cannot record its progress yet: %s", run.id, exc)
            await asyncio.sleep(delay)
            waited += delay
            delay = min(delay * 2, 5.0)

    async def _attempt(
        self,
        run: RunRecord,
        event: Event,
        call: ActionCall,
        label: str,
        number: int,
        context: dict[str, Any],
        log: RunLog,
        resumed: bool,
    ) -> Outcome:
        spec = self.actions.get(call.uses)
        if spec is None:
            return Outcome("dead", error=f"action {call.uses!r} is not installed any more")
        key = hashlib.sha256(f"{run.id}:{label}".encode()).hexdigest()[:32]
        action_context = ActionContext(event, run.rule, label, number, key, self.egress, log)
        timeout = call.timeout or self.config.worker.action_timeout
        action_context.timeout = timeout
        action_context.resumed = resumed
        action_context.run_url = self.links.run(run.id)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout
        try:
            # Rendering counts against the action's timeout, and runs off the event loop.
            params, action_context.settings = await self.templates.off_loop(
                "runs", self._prepare, spec, call, context, f"rule {run.rule}", label, timeout
            )
            remaining = deadline - loop.time()
            if remaining <= 0:
                raise TimeoutError
            attempt = self.registry.invoke_action(spec, params, action_context)
            output = await asyncio.wait_for(attempt, remaining)
        except SkipRun as exc:
            return Outcome("skipped", error=str(exc))
        except (PermanentFailure, EgressDenied) as exc:
            return Outcome("dead", error=str(exc))
        except RetryLater as exc:
            return Outcome("retry", error=str(exc), delay=exc.delay)
        except TimeoutError:
            return Outcome("retry", error=f"timed out after {timeout:g}s")
        except Exception as exc:  # an unexpected error may be transient: retry, bounded
            return Outcome("retry", error=f"{type(exc).__name__}: {exc}")
        try:
            json.dumps(output, allow_nan=False)
        except (TypeError, ValueError) as exc:
            return Outcome("dead", error=f"{call.uses} returned output that is not JSON: {exc}")
        return Outcome("succeeded", output=output)


@dataclass
class _State:
    """Where a run stands, so a cancelled execution can hand it back precisely."""

    step: int
    attempt: int
    outputs: dict[str, Any]
    in_flight: tuple[str, int, float] | None = None


def _next(
    call: ActionCall,
    calls: list[ActionCall],
    state: _State,
    label: str,
    number: int,
    outcome: Outcome,
    record: AttemptRecord,
) -> Progress:
    """The run's state after one attempt: next action, retry later, done, or dead."""
    outputs = state.outputs
    if outcome.status == "succeeded":
        outputs = {**outputs, label: record.output}
        step = state.step + 1
        return Progress(
            RunStatus.RUNNING if step < len(calls) else RunStatus.SUCCEEDED, step, 0, outputs
        )
    if outcome.status == "skipped":
        reason = f"{label}: {record.error}"
        return Progress(RunStatus.SKIPPED, state.step, number, outputs, reason)
    if outcome.status == "retry" and number < call.retry.attempts:
        wait = retry.delay(call.retry, number, outcome.delay)
        return Progress(
            RunStatus.RETRYING, state.step, number, outputs, record.error, clock.now() + wait
        )
    return Progress(RunStatus.DEAD, state.step, number, outputs, f"{label}: {record.error}")


def _log_outcome(
    run: RunRecord, label: str, number: int, attempts: int, error: str | None, progress: Progress
) -> None:
    where = f"run {run.id} rule {run.rule} action {label} attempt {number}/{attempts}"
    if progress.status == RunStatus.RETRYING:
        wait = max(0.0, progress.next_attempt_at - clock.now())
        log.warning("%s failed, retrying in %.1fs: %s", where, wait, error)
    elif progress.status == RunStatus.DEAD:
        log.error("%s failed, run is dead: %s", where, error)
    elif progress.status == RunStatus.SKIPPED:
        log.info("%s: nothing to do, run skipped: %s", where, error)
