"""The pipeline, in order: verify → normalize → match → persist, then the worker acts.

This is the one module that knows the order of the steps; each step lives in the
module named after it (`sources`, `matcher`, `flow.keys`, `store`). `dry_run` walks
the same steps without persisting or acting. Everything else people do with events
and runs goes through `service.Hookwise`.
"""

from __future__ import annotations

import hashlib
import logging
from typing import Any

from pydantic import ValidationError

from hookwise import clock
from hookwise.actions import ActionSpec, action_label
from hookwise.config import BoundSource, Config
from hookwise.errors import PayloadError, RenderError, UnknownSource
from hookwise.event import Event, Incoming, new_id, safe_headers
from hookwise.flow import keys
from hookwise.matcher import RuleIndex, verdicts
from hookwise.rules import ActionCall, Rule
from hookwise.sources import Delivery
from hookwise.store import AcceptResult, NewRun, Store
from hookwise.templates import Templates, template_context
from hookwise.validation import summarize

log = logging.getLogger("hookwise.engine")


def dedupe_key(source: str, item: Incoming, body: bytes, position: int) -> tuple[str, bool]:
    """Sender's own id when there is one, else the exact body (and position in a batch);
    and whether it is the body, whose window is short: the same body sent again later
    on purpose (a rollback to an earlier promotion) must run again."""
    if item.dedupe_key:
        return f"{source}:key:{item.dedupe_key}", False
    if item.delivery_id:
        return f"{source}:id:{item.delivery_id}", False
    return f"{source}:sha256:{hashlib.sha256(body).hexdigest()}:{position}", True


class Engine:
    """Receives, plans and accepts; it is handed its store and rules and swaps nothing else.

    The rule set is immutable: a reload builds a new `RuleIndex` and hands it to `use`,
    so a delivery being matched sees one rule set from start to end.
    """

    def __init__(
        self,
        config: Config,
        sources: dict[str, BoundSource],
        actions: dict[str, ActionSpec],
        templates: Templates,
        store: Store,
        rules: RuleIndex,
    ) -> None:
        self.config = config
        self.sources = sources
        self.actions = actions
        self.templates = templates
        self.store = store
        self._rules = rules

    @property
    def rules(self) -> RuleIndex:
        return self._rules

    def use(self, rules: RuleIndex) -> None:
        """Match every later delivery against `rules`."""
        self._rules = rules

    def source(self, name: str) -> BoundSource:
        bound = self.sources.get(name)
        if bound is None:
            raise UnknownSource(
                f"no source named {name!r}; configured: {', '.join(sorted(self.sources)) or 'none'}"
            )
        return bound

    def normalize(
        self, name: str, delivery: Delivery, *, verify: bool = True
    ) -> list[tuple[Incoming, Event]]:
        """Verify the raw bytes first, then parse: an unauthenticated body is never parsed.

        Only a dry run without the source's secret (`hookwise test` where it is not set)
        goes without `verify`; nothing it parses is stored or acted on.
        """
        bound = self.source(name)
        if verify:
            bound.kind.verify(delivery, bound.options)
        now = clock.now()
        headers = safe_headers(delivery.headers, bound.credential_headers)
        return [
            (
                item,
                Event(
                    id=new_id(),
                    source=name,
                    kind=bound.kind.kind,
                    domain=item.domain,
                    event_type=item.event_type,
                    delivery_id=item.delivery_id,
                    received_at=now,
                    data=item.data,
                    headers=headers,
                    artifacts=item.artifacts,
                    meta=item.meta,
                ),
            )
            for item in map(_checked, bound.kind.normalize(delivery, bound.options))
        ]

    def plan(self, event: Event) -> list[NewRun]:
        """The runs an event causes under the current rules."""
        context = template_context(event, {"name": "", "description": ""})
        return [
            keys.new_run(rule, context, self.templates)
            for rule in self.rules.match(context["event"], self.templates, context)
        ]

    def awaited(self, event: Event) -> list[tuple[str, str]]:
        """(rule, correlation key) of waiting runs this event may release."""
        context = template_context(event, {"name": "", "description": ""})
        return keys.released(self.rules.awaiting, event, context, self.templates)

    async def receive(
        self, name: str, delivery: Delivery, *, verify: bool = True
    ) -> list[AcceptResult]:
        """Verify, normalize, match, and store each event with its runs, atomically.

        Only rule test cases go without `verify`, on a throwaway store of their own.
        """
        # Verifying, parsing and matching (templates in `if:` and flow keys) is CPU work
        # on the sender's bytes: off the event loop, in the intake lane.
        planned = await self.templates.off_loop("intake", self._planned, name, delivery, verify)
        results = []
        for position, (item, event, runs, awaited) in enumerate(planned):
            key, by_body = dedupe_key(name, item, delivery.body, position)
            window = self.config.dedupe_window
            if by_body:
                own = self.sources[name].body_dedupe_window
                window = self.config.body_dedupe_window if own is None else own
            result = await self.store.accept(event, key, window, runs, awaited)
            results.append(result)
        return results

    def _planned(
        self, name: str, delivery: Delivery, verify: bool = True
    ) -> list[tuple[Incoming, Event, list[NewRun], list[tuple[str, str]]]]:
        return [
            (item, event, self.plan(event), self.awaited(event))
            for item, event in self.normalize(name, delivery, verify=verify)
        ]

    async def replay(self, event: Event) -> list[str]:
        """New runs for a stored event under the current rules."""
        runs = await self.templates.off_loop("intake", self.plan, event)
        await self.store.add_runs(event.id, runs)
        return [run.id for run in runs]

    def dry_run(self, name: str, delivery: Delivery, *, verify: bool = True) -> dict[str, Any]:
        """Everything a rule author wants to know about one payload, without side effects."""
        events = [event for _, event in self.normalize(name, delivery, verify=verify)]
        return {"events": [{"event": e.as_dict(), "rules": self.explain(e)} for e in events]}

    def explain(self, event: Event) -> list[dict[str, Any]]:
        """Every current rule's verdict on `event`, with the reason for each miss and, for
        each match, what its actions would be given (secrets shown as `${VAR}`)."""
        event_dict = event.as_dict()
        base = template_context(event, {"name": "", "description": ""})
        rules = []
        for rule, verdict in verdicts(self.rules, event_dict, self.templates, base):
            entry: dict[str, Any] = {
                "rule": rule.name,
                "origin": rule.origin,
                "matched": verdict.matched,
                "reason": verdict.reason,
            }
            if verdict.matched:
                context = template_context(event, rule.snapshot(), reveal=False)
                entry["actions"] = self._preview(rule, context)
            rules.append(entry)
        return rules

    def _preview(self, rule: Rule, context: dict[str, Any]) -> list[dict[str, Any]]:
        previews = []
        earlier: dict[str, Any] = {}
        for step, call in enumerate(rule.actions):
            label = action_label(call.id, call.uses, step)
            context = {**context, "steps": {k: {"output": v} for k, v in earlier.items()}}
            previews.append(
                {"action": label, "uses": call.uses, **self._render(rule, call, label, context)}
            )
            earlier[label] = _Pending(label)
        return previews

    def _render(
        self, rule: Rule, call: ActionCall, label: str, context: dict[str, Any]
    ) -> dict[str, Any]:
        try:
            rendered = self.templates.render(call.with_, context, f"rule {rule.name}, {label}")
            self.actions[call.uses].params.model_validate(rendered)
        except RenderError as exc:
            return {"error": str(exc)}
        except ValidationError as exc:
            # Values that depend on earlier actions' outputs are only known when they run.
            real = [e for e in exc.errors() if not isinstance(e.get("input"), _Pending)]
            if real:
                narrowed = ValidationError.from_exception_data(exc.title, real)  # type: ignore[arg-type]
                error = f"parameters invalid after rendering: {summarize(narrowed)}"
                return {"params": rendered, "error": error}
        return {"params": rendered}


def _checked(item: Incoming) -> Incoming:
    """What identifies an event is plain text: a NUL cannot be stored as text (PostgreSQL
    refuses it), so a sender's NUL is its mistake (400), not the store's (503)."""
    for name in ("domain", "event_type", "delivery_id", "dedupe_key"):
        value = getattr(item, name)
        if isinstance(value, str) and "\x00" in value:
            raise PayloadError(f"the event's {name} contains a NUL character")
    return item


class _Pending:
    """Stands in for an earlier action's output in the dry run, where nothing executes."""

    def __init__(self, step: str, path: str = "") -> None:
        self._step = step
        self._path = path

    def __getattr__(self, name: str) -> _Pending:
        if name.startswith("_"):
            raise AttributeError(name)
        return _Pending(self._step, f"{self._path}.{name}")

    def __getitem__(self, key: object) -> _Pending:
        if isinstance(key, slice):
            shown = ":".join("" if part is None else str(part) for part in (key.start, key.stop))
            return _Pending(self._step, f"{self._path}[{shown}]")
        return _Pending(self._step, f"{self._path}[{key!r}]")

    def __str__(self) -> str:
        return f"<output of step {self._step}{self._path}>"
