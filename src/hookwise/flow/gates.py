"""What a claimed run must pass before its actions: the awaited event, then an approval.

The store decides *when* a run is looked at (a batch falls quiet, an awaited event or
a decision arrives, a deadline passes); this module decides what that means for the
run. It returns a `Hold` to record, or None when the actions may run now.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import Any

from hookwise import clock
from hookwise.actions import action_label
from hookwise.errors import PermanentFailure, RenderError, RetryLater
from hookwise.event import Event
from hookwise.links import Links
from hookwise.slack.chat import Posted, SlackChat
from hookwise.slack.messages import approval_request
from hookwise.status import WAITING, RunStatus
from hookwise.store import AttemptRecord, Decision, Progress, RunRecord, Store
from hookwise.templates import Templates
from hookwise.views import decision_view

log = logging.getLogger("hookwise.gates")
# When Slack cannot take the approval request right now, ask again after this long.
REQUEST_RETRY = 30.0


@dataclass(frozen=True)
class Hold:
    """The run stops here, for now or for good, with entries for its history, oldest first."""

    progress: Progress
    entries: tuple[AttemptRecord, ...] = ()


class Gates:
    def __init__(
        self, store: Store, templates: Templates, chat: SlackChat | None, links: Links
    ) -> None:
        self.store = store
        self.templates = templates
        self.chat = chat
        self.links = links

    async def check(
        self, run: RunRecord, events: list[Event], context: dict[str, Any]
    ) -> Hold | None:
        flow = dict(run.flow)
        if "wait_for" in run.spec and not flow.get("awaited"):
            hold = await self._awaited(run, flow, context)
            if hold is not None:
                return hold
        if "approval" in run.spec and not flow.get("approved"):
            return await self._approval(run, events, flow, context)
        if run.phase in WAITING:
            # Through the gate: queue for a concurrency slot like any new run.
            return Hold(self._progress(run, RunStatus.PENDING, flow, due=clock.now()))
        return None

    @staticmethod
    def _progress(
        run: RunRecord,
        status: RunStatus,
        flow: dict[str, Any],
        error: str | None = None,
        due: float = 0,
    ) -> Progress:
        return Progress(status, run.step, run.attempt, run.outputs, error, due, flow)

    def _entry(
        self, run: RunRecord, gate: str, status: str, output: Any = None, error: str | None = None
    ) -> AttemptRecord:
        now = clock.now()
        return AttemptRecord(
            run.id, run.step, gate, 0, now, now, status, output, error, counted=False
        )

    async def _awaited(
        self, run: RunRecord, flow: dict[str, Any], context: dict[str, Any]
    ) -> Hold | None:
        settings = run.spec["wait_for"]
        deadline = flow.get("wait_deadline", run.created_at + settings["timeout"])
        awaited = await self.store.get_event(run.awaited_event_id) if run.awaited_event_id else None
        if awaited is None:
            if clock.now() >= deadline:
                error = (
                    f"wait_for: no event matching {_when(settings['when'])} with the same key "
                    f"arrived within {settings['timeout']:g}s"
                )
                return Hold(
                    self._progress(run, RunStatus.EXPIRED, flow, error),
                    (self._entry(run, "wait_for", "expired", error=error),),
                )
            return Hold(self._progress(run, RunStatus.WAITING_EVENT, flow, due=deadline))
        condition = settings.get("if")
        if condition is not None:
            try:
                holds = await self.templates.off_loop(
                    "runs",
                    self.templates.evaluate,
                    condition,
                    {**context, "awaited": awaited.as_dict()},
                )
            except RenderError as exc:
                holds, why = False, f"could not be evaluated: {exc}"
            else:
                why = "is false"
            if not holds:
                error = f"wait_for: event {awaited.id} arrived, but if {condition!r} {why}"
                return Hold(
                    self._progress(run, RunStatus.SKIPPED, flow, error),
                    (self._entry(run, "wait_for", "skipped", {"event": awaited.id}, error),),
                )
        flow["awaited"] = awaited.id
        run.flow = flow
        entry = self._entry(run, "wait_for", "arrived", {"event": awaited.id})
        if "approval" in run.spec:
            hold = await self._approval(run, [], flow, context)
            return Hold(hold.progress, (entry, *hold.entries))
        return Hold(self._progress(run, RunStatus.PENDING, flow, due=clock.now()), (entry,))

    async def _approval(
        self, run: RunRecord, events: list[Event], flow: dict[str, Any], context: dict[str, Any]
    ) -> Hold:
        """Wait for decisions; they count from the moment the run reaches the gate, whether
        or not Slack took the request, so people can decide from the API, CLI or console."""
        settings = run.spec["approval"]
        state = dict(flow.get("approval") or {})
        if "deadline" not in state:
            return await self._request(run, events, flow, state, context)
        decisions = await self.store.decisions_of(run.id)
        rejected = next((d for d in decisions if d.decision == "reject"), None)
        approvals = [d for d in decisions if d.decision == "approve"]
        outcome, status, error = None, RunStatus.WAITING_APPROVAL, None
        if rejected is not None:
            reason = f": {rejected.reason}" if rejected.reason else ""
            outcome, status = "Rejected", RunStatus.REJECTED
            error = f"approval: rejected by {rejected.actor} via {rejected.via}{reason}"
        elif len(approvals) >= settings["required"]:
            outcome, status = "Approved", RunStatus.PENDING
            flow["approved"] = [d.actor for d in approvals]
        elif clock.now() >= state["deadline"]:
            outcome, status = "Expired", RunStatus.EXPIRED
            error = (
                f"approval: {len(approvals)} of {settings['required']} approvals "
                f"within {settings['timeout']:g}s"
            )
        entries: tuple[AttemptRecord, ...] = ()
        if outcome is None and not state.get("ts"):
            entries = await self._post(run, events, state, context)
            error = state.get("unposted")
        elif state.get("ts") and (state.get("seen") != len(decisions) or outcome):
            await self._show(run, events, state, decisions, context, outcome)
            state["seen"] = len(decisions)
        flow["approval"] = state
        run.flow = flow
        if outcome:
            entries = (
                self._entry(
                    run,
                    "approval",
                    status if status != RunStatus.PENDING else "approved",
                    [decision_view(d) for d in decisions],
                    error,
                ),
            )
        return Hold(self._progress(run, status, flow, error, self._due(state, status)), entries)

    @staticmethod
    def _due(state: dict[str, Any], status: RunStatus) -> float:
        """Decided: now. Waiting: at the deadline, or sooner to post the request again."""
        if status != RunStatus.WAITING_APPROVAL:
            return clock.now()
        if state.get("repost"):
            return min(float(state["deadline"]), clock.now() + REQUEST_RETRY)
        return float(state["deadline"])

    async def _request(
        self,
        run: RunRecord,
        events: list[Event],
        flow: dict[str, Any],
        state: dict[str, Any],
        context: dict[str, Any],
    ) -> Hold:
        """The run reached the gate: the timeout starts, and the request is posted."""
        settings = run.spec["approval"]
        state["deadline"] = clock.now() + settings["timeout"]
        await self._post(run, events, state, context)
        flow["approval"] = state
        run.flow = flow
        status = RunStatus.WAITING_APPROVAL
        output = {"channel": state.get("channel", settings["channel"]), "ts": state.get("ts")}
        error = state.get("unposted")
        return Hold(
            self._progress(run, status, flow, error, self._due(state, status)),
            (self._entry(run, "approval", "requested", output, error),),
        )

    async def _post(
        self, run: RunRecord, events: list[Event], state: dict[str, Any], context: dict[str, Any]
    ) -> tuple[AttemptRecord, ...]:
        """Post the request to Slack; when it cannot be, say so in `state["unposted"]` and
        ask again later if Slack may take it then. A late post gets a `posted` entry."""
        first = "unposted" not in state
        try:
            posted = await self._show(run, events, state, [], context, None)
        except (RetryLater, PermanentFailure) as exc:
            state["repost"] = isinstance(exc, RetryLater)
            state["unposted"] = (
                f"approval: the request could not be posted to Slack: {exc}. "
                "Decide with `hookwise approve|reject`, the API or the console"
            )
            if first:
                log.warning("run %s: %s", run.id, state["unposted"])
            return ()
        state.update(channel=posted.channel, ts=posted.ts, seen=0)
        state.pop("repost", None)
        if state.pop("unposted", None) is None:
            return ()
        output = {"channel": posted.channel, "ts": posted.ts}
        return (self._entry(run, "approval", "posted", output),)

    async def _show(
        self,
        run: RunRecord,
        events: list[Event],
        state: dict[str, Any],
        decisions: list[Decision],
        context: dict[str, Any],
        outcome: str | None,
    ) -> Posted:
        """Post the request, or update it in place; failures to update are only logged."""
        assert self.chat is not None, "approval rules are checked to have Slack configured"
        events = events or await self.store.events_of_run(run.id)
        settings = run.spec["approval"]
        message, preview = await self.templates.off_loop(
            "runs", self._request_content, run, context
        )
        text, blocks = approval_request(
            run, events, message, preview, decisions, outcome, self.links.run(run.id)
        )
        if not state.get("ts"):
            return await self.chat.post(settings["channel"], text, blocks)
        posted = Posted(state["channel"], state["ts"])
        try:
            await self.chat.update(posted, text, blocks)
        except (RetryLater, PermanentFailure) as exc:
            log.warning("run %s: could not update the approval message: %s", run.id, exc)
        return posted

    def _request_content(
        self, run: RunRecord, context: dict[str, Any]
    ) -> tuple[str, list[tuple[str, Any]]]:
        """The approval message and what each action will be given, rendered for people."""
        settings = run.spec["approval"]
        try:
            message = self.templates.render(
                settings.get("message", ""), context, f"rule {run.rule}, approval.message"
            )
        except RenderError as exc:
            message = f"(approval.message could not be rendered: {exc})"
        preview = [
            (
                action_label(action.get("id"), action["uses"], step),
                self._rendered(run, action, context),
            )
            for step, action in enumerate(run.spec["actions"])
        ]
        return str(message), preview

    def _rendered(self, run: RunRecord, action: dict[str, Any], context: dict[str, Any]) -> Any:
        """What the action will be given; `${VAR}` stays unexpanded (the context hides it)."""
        try:
            return self.templates.render(action.get("with", {}), context, f"rule {run.rule}")
        except RenderError:
            return action.get("with", {})  # depends on earlier actions' outputs


def _when(when: dict[str, Any]) -> str:
    """`harbor/scan/completed`: the dimensions of `wait_for.when`, globs joined by commas."""
    return "/".join(",".join(when.get(key, ["*"])) for key in ("source", "domain", "event_type"))
