"""`POST /slack/commands`: the `/hookwise` slash command.

Answers are ephemeral (only the asking person sees them) and come back in the HTTP
response, within Slack's three seconds. Commands that change something (replay,
approve, reject, retry, cancel) are for the users listed in `integrations.slack.operators`;
approve and reject also need the person to be an approver of the run.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

from starlette.requests import Request
from starlette.responses import JSONResponse, Response

from hookwise.errors import StoreError
from hookwise.links import Links
from hookwise.slack.chat import SlackChat
from hookwise.slack.interactions import may_approve, signed_form
from hookwise.slack.text import cut, escape
from hookwise.status import RunStatus
from hookwise.store import EventQuery, RunDetail, RunQuery
from hookwise.views import run_view

if TYPE_CHECKING:
    from hookwise.service import Hookwise

HELP = """*hookwise* commands:
`/hookwise status`: recent events, failing runs and runs waiting for approval
`/hookwise show ID`: an event and its runs, or one run
`/hookwise replay EVENT_ID`: run the current rules for a stored event again
`/hookwise approve RUN_ID`, `/hookwise reject RUN_ID [reason]`: decide on a run
`/hookwise retry RUN_ID`: run a dead run again from the action that failed
`/hookwise cancel RUN_ID [reason]`: stop a run that has not finished
`/hookwise rules`: the loaded rules
`/hookwise help`: this list"""
CHANGING = ("replay", "approve", "reject", "retry", "cancel")


@dataclass(frozen=True)
class Asker:
    user: str
    channel: str


class Commands:
    def __init__(
        self,
        service: Hookwise,
        chat: SlackChat | None,
        secret: str | None,
        operators: list[str],
    ) -> None:
        self.service = service
        self.chat = chat
        self.secret = secret
        self.operators = operators
        self.links = Links(service.config.public_url)
        self.table: dict[str, Callable[[Asker, list[str]], Awaitable[str]]] = {
            "help": self._help,
            "status": self._status,
            "show": self._show,
            "replay": self._replay,
            "approve": self._approve,
            "reject": self._reject,
            "retry": self._retry,
            "cancel": self._cancel,
            "rules": self._rules,
        }

    async def handle(self, request: Request) -> Response:
        form = await signed_form(request, self.secret)
        if isinstance(form, Response):
            return form
        words = form.get("text", "").split()
        name, args = (words[0].lower(), words[1:]) if words else ("help", [])
        asker = Asker(form.get("user_id", ""), form.get("channel_id", ""))
        command = self.table.get(name)
        if command is None:
            text = f"Unknown command `{escape(name)}`.\n{HELP}"
        elif name in CHANGING and asker.user not in self.operators:
            text = (
                f"`{name}` changes things, so it is limited to the users in "
                "integrations.slack.operators; ask an operator."
            )
        else:
            try:
                text = await command(asker, args)
            except StoreError:
                text = "hookwise cannot read its store right now; try again in a moment."
        return JSONResponse(
            {
                "response_type": "ephemeral",
                "text": cut(text, 3000),
                "blocks": [
                    {"type": "section", "text": {"type": "mrkdwn", "text": cut(text, 3000)}}
                ],
            }
        )

    async def _help(self, asker: Asker, args: list[str]) -> str:
        return HELP

    async def _status(self, asker: Asker, args: list[str]) -> str:
        events = await self.service.events(EventQuery(limit=5))
        failing = await self.service.runs(RunQuery((RunStatus.DEAD,), limit=5))
        waiting = await self.service.runs(RunQuery((RunStatus.WAITING_APPROVAL,), limit=5))
        lines = ["*Recent events*"]
        lines += [
            f"`{s.event.id}` {escape(s.event.source)} {escape(s.event.domain)} "
            f"{escape(s.event.event_type)}: {s.status}"
            for s in events
        ] or ["none"]
        lines.append("*Failing runs*")
        lines += [f"`{r.id}` {escape(r.rule)}: {escape(cut(r.error or '', 200))}" for r in failing]
        lines += ["none"] if not failing else []
        lines.append("*Waiting for approval*")
        lines += [f"`{r.id}` {escape(r.rule)}" for r in waiting] or ["none"]
        return "\n".join(lines)

    async def _show(self, asker: Asker, args: list[str]) -> str:
        if len(args) != 1:
            return "Usage: `/hookwise show ID` (an event or a run id)"
        named = await self.service.find(args[0])
        found = await self.service.event(named.id) if named.kind == "event" and named.id else None
        if found is not None:
            event = found.event
            lines = [
                f"*Event* `{event.id}`: {escape(event.source)} {escape(event.domain)} "
                f"{escape(event.event_type)}"
            ]
            lines += [_run_line(run, self.links.run(run.run.id)) for run in found.runs] or [
                "no runs (no rule matched)"
            ]
            return "\n".join(lines)
        detail = await self.service.run(named.id) if named.kind == "run" and named.id else None
        if detail is None:
            return escape(named.problem or f"No event or run {args[0]}.")
        return _run_line(detail, self.links.run(detail.run.id))

    async def _replay(self, asker: Asker, args: list[str]) -> str:
        if len(args) != 1:
            return "Usage: `/hookwise replay EVENT_ID`"
        runs = await self.service.replay(args[0])
        if runs is None:
            return f"No event `{escape(args[0])}`."
        return f"Replaying event `{args[0]}`: {len(runs)} new runs " + " ".join(
            f"`{r}`" for r in runs
        )

    async def _approve(self, asker: Asker, args: list[str]) -> str:
        return await self._decide(asker, args, "approve")

    async def _reject(self, asker: Asker, args: list[str]) -> str:
        return await self._decide(asker, args, "reject")

    async def _decide(self, asker: Asker, args: list[str], decision: str) -> str:
        if not args:
            return f"Usage: `/hookwise {decision} RUN_ID`" + (
                " [reason]" if decision == "reject" else ""
            )
        detail = await self.service.run(args[0])
        run = detail.run if detail else None
        if run is None or "approval" not in run.spec:
            return f"No run `{escape(args[0])}` waiting for approval."
        assert self.chat is not None
        if not await may_approve(self.chat, asker.user, run.spec["approval"]["approvers"]):
            return f"You are not an approver of rule {escape(run.rule)}."
        reason = " ".join(args[1:]) or None
        decided = await self.service.decide(run.id, asker.user, decision, reason, "slack")
        return escape(decided.message)

    async def _retry(self, asker: Asker, args: list[str]) -> str:
        if len(args) != 1:
            return "Usage: `/hookwise retry RUN_ID`"
        return escape((await self.service.retry(args[0], asker.user, "slack")).message)

    async def _cancel(self, asker: Asker, args: list[str]) -> str:
        if not args:
            return "Usage: `/hookwise cancel RUN_ID [reason]`"
        reason = " ".join(args[1:]) or None
        return escape((await self.service.cancel(args[0], asker.user, reason, "slack")).message)

    async def _rules(self, asker: Asker, args: list[str]) -> str:
        rules = self.service.rules
        lines = [
            f"`{escape(r.name)}`{'' if r.enabled else ' (disabled)'}: "
            f"{escape(','.join(r.when.source))}/{escape(','.join(r.when.domain))}/"
            f"{escape(','.join(r.when.event_type))} → "
            f"{escape(', '.join(a.uses for a in r.actions))}"
            for r in rules
        ]
        return "\n".join([f"*{len(rules)} rules*", *lines])


def _run_line(detail: RunDetail, link: str | None) -> str:
    run = run_view(detail)
    error = f": {escape(cut(run['error'], 300))}" if run.get("error") else ""
    where = f"{escape(run['rule'])} · {run['status']} · {escape(run['action'])}"
    ref = f"<{link}|{run['id']}>" if link else f"`{run['id']}`"
    return f"run {ref} {where}{error}"
