"""`POST /slack/interactions`: Approve and Reject clicks on approval requests.

Slack expects an answer within three seconds; the decision is recorded and the run's
worker updates the message, so the endpoint only verifies, checks who clicked, and
records. A refusal goes to the clicking person alone, as an ephemeral message.
"""

from __future__ import annotations

import logging
from typing import TYPE_CHECKING
from urllib.parse import parse_qs

from pydantic import BaseModel, ValidationError
from starlette.requests import ClientDisconnect, Request
from starlette.responses import JSONResponse, Response

from hookwise.errors import (
    BodyTooLarge,
    PayloadError,
    PermanentFailure,
    RetryLater,
    StoreError,
    VerificationError,
)
from hookwise.receiver import error, read_body
from hookwise.slack.chat import SlackChat
from hookwise.slack.messages import APPROVE, REJECT
from hookwise.slack.verify import SIGNED_HEADERS, verify_slack
from hookwise.sources import Delivery, parse_json
from hookwise.validation import summarize

if TYPE_CHECKING:
    from hookwise.service import Hookwise

log = logging.getLogger("hookwise.slack")
MAX_BODY = 256 * 1024  # Slack's payloads are a few kilobytes


async def signed_form(request: Request, secret: str | None) -> dict[str, str] | JSONResponse:
    """The form Slack sent, after its signature checked out; or the error to answer."""
    if secret is None:
        message = "Slack is not set up: set integrations.slack.token and signing_secret"
        return error(404, "not_found", message)
    try:
        body = await read_body(request, MAX_BODY)
    except BodyTooLarge:
        return error(413, "too_large", f"body exceeds {MAX_BODY} bytes")
    except ClientDisconnect:
        return error(400, "disconnected", "the sender hung up before the end")
    try:
        headers = Delivery.from_raw(request.headers.raw, body, SIGNED_HEADERS).headers
        verify_slack(secret, headers, body)
    except VerificationError as exc:
        log.warning("refused a Slack request to %s: %s", request.url.path, exc)
        return error(401, "unauthorized", str(exc))
    form = parse_qs(body.decode("utf-8", "replace"), keep_blank_values=True)
    return {key: values[0] for key, values in form.items()}


async def may_approve(chat: SlackChat, user: str, approvers: list[str]) -> bool:
    """Listed by id, or a member of a listed user group (asked of Slack)."""
    if user in approvers:
        return True
    for group in (a for a in approvers if a.startswith("S")):
        try:
            if user in await chat.group_members(group):
                return True
        except (RetryLater, PermanentFailure) as exc:
            log.warning("could not read members of user group %s: %s", group, exc)
    return False


class SlackId(BaseModel):
    """`{"id": "U0…", …}`: a user or a channel; Slack sends more fields, unread here."""

    id: str


class ClickedButton(BaseModel):
    action_id: str
    value: str = ""


class BlockActions(BaseModel):
    """The part of Slack's block_actions payload hookwise reads."""

    user: SlackId
    channel: SlackId | None = None
    actions: list[ClickedButton]


class Interactions:
    def __init__(self, service: Hookwise, chat: SlackChat | None, secret: str | None) -> None:
        self.service = service
        self.chat = chat
        self.secret = secret

    async def handle(self, request: Request) -> Response:
        form = await signed_form(request, self.secret)
        if isinstance(form, Response):
            return form
        try:
            payload = parse_json(form.get("payload", "").encode(), "the form field `payload`")
        except PayloadError as exc:
            return error(400, "bad_payload", str(exc))
        if not isinstance(payload, dict) or payload.get("type") != "block_actions":
            return Response(status_code=200)  # other interactions are not ours to handle
        try:
            clicked = BlockActions.model_validate(payload)
        except ValidationError as exc:
            return error(400, "bad_payload", f"not a block_actions payload: {summarize(exc)}")
        for action in clicked.actions:
            if action.action_id in (APPROVE, REJECT):
                try:
                    await self._decide(clicked, action)
                except StoreError:
                    return error(503, "store_unavailable", "cannot record the decision right now")
        return Response(status_code=200)

    async def _decide(self, payload: BlockActions, action: ClickedButton) -> None:
        assert self.chat is not None
        user = payload.user.id
        channel = payload.channel.id if payload.channel else ""
        run_id = action.value
        detail = await self.service.run(run_id)
        run = detail.run if detail else None
        if run is None or "approval" not in run.spec:
            await self._tell(channel, user, f"hookwise knows no run {run_id} waiting for approval.")
            return
        approvers = run.spec["approval"]["approvers"]
        if not await may_approve(self.chat, user, approvers):
            listed = ", ".join(
                f"<!subteam^{a}>" if a.startswith("S") else f"<@{a}>" for a in approvers
            )
            log.warning("run %s: refused a decision from %s, not an approver", run_id, user)
            await self._tell(
                channel, user, f"You are not an approver of rule {run.rule}; ask one of {listed}."
            )
            return
        decision = "approve" if action.action_id == APPROVE else "reject"
        decided = await self.service.decide(run_id, user, decision, None, "slack")
        if not decided.ok:
            await self._tell(channel, user, decided.message)

    async def _tell(self, channel: str, user: str, text: str) -> None:
        assert self.chat is not None
        try:
            await self.chat.ephemeral(channel, user, text)
        except (RetryLater, PermanentFailure) as exc:
            log.warning("could not tell %s in %s: %s (%s)", user, channel, text, exc)
