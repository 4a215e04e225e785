"""People stepping in: approving or rejecting, retrying and cancelling runs.

Each returns a one-word answer the service words for its front ends: `recorded` or
`done`, `unknown`, `repeated`, or the run's status when that status does not allow it
(so no answer but those may be a status's name).
"""

from __future__ import annotations

import json
from collections.abc import Sequence

from hookwise.status import CANCELLABLE, RETRYABLE, RunStatus
from hookwise.store.records import AttemptRecord, Decision, Intervention
from hookwise.store.sql.common import Tx, quoted
from hookwise.store.sql.execute import insert_attempt


def decide(tx: Tx, decision: Decision, now: float, for_update: str = "") -> str:
    """Record an approver's decision and wake the run; the runner acts on it.

    One decision per person and run (a database constraint), so `required: 2` means
    two different people. Returns what happened: recorded, repeated, unknown, or the
    run's status when it is not waiting for approval.
    """
    refusal, _ = _refusal(tx, decision.run_id, (RunStatus.WAITING_APPROVAL,), for_update)
    if refusal:
        return refusal
    inserted = tx.execute(
        "INSERT INTO decisions (run_id, actor, decision, reason, via, decided_at) "
        "VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, actor) DO NOTHING",
        (decision.run_id, decision.actor, decision.decision, decision.reason, decision.via, now),
    ).rowcount
    if not inserted:
        return "repeated"
    tx.execute(
        "UPDATE runs SET next_attempt_at = ? WHERE id = ? AND status = 'waiting_approval'",
        (now, decision.run_id),
    )
    return "recorded"


def retry(tx: Tx, request: Intervention, now: float, for_update: str = "") -> str:
    """Make a dead run due again, with its retries renewed: from its failed action, or
    from the first under `request.restart` (its rule as it is now), outputs forgotten."""
    refusal, step = _refusal(tx, request.run_id, RETRYABLE, for_update)
    if refusal:
        return refusal
    restart = request.restart is not None
    tx.execute(
        "UPDATE runs SET status = 'pending', attempt = 0, error = NULL, next_attempt_at = ?, "
        "updated_at = ?, lease_owner = NULL, lease_expires_at = NULL, "
        "step = CASE WHEN ? THEN 0 ELSE step END, "
        "outputs = CASE WHEN ? THEN '{}' ELSE outputs END, "
        "spec = COALESCE(?, spec) "
        f"WHERE id = ? AND status IN ({quoted(RETRYABLE)})",
        (
            now,
            now,
            restart,
            restart,
            json.dumps(request.restart) if restart else None,
            request.run_id,
        ),
    )
    _note(tx, request, step, "retry", "restarted" if restart else "retried", None, now)
    return "done"


def cancel(tx: Tx, request: Intervention, now: float, for_update: str = "") -> str:
    """Stop a run that has not started an action, or is between two attempts, for good."""
    refusal, step = _refusal(tx, request.run_id, CANCELLABLE, for_update)
    if refusal:
        return refusal
    why = f": {request.reason}" if request.reason else ""
    error = f"cancelled by {request.actor} via {request.via}{why}"
    tx.execute(
        "UPDATE runs SET status = 'cancelled', error = ?, updated_at = ?, next_attempt_at = 0, "
        f"lease_owner = NULL, lease_expires_at = NULL WHERE id = ? AND status IN "
        f"({quoted(CANCELLABLE)})",
        (error, now, request.run_id),
    )
    _note(tx, request, step, "cancel", "cancelled", error, now)
    return "done"


def _refusal(
    tx: Tx, run_id: str, allowed: Sequence[RunStatus], for_update: str
) -> tuple[str | None, int]:
    """Why the run cannot be changed (`unknown`, or its status), else None; and its step."""
    row = tx.execute(f"SELECT status, step FROM runs WHERE id = ?{for_update}", (run_id,))
    found = row.fetchone()
    if found is None:
        return "unknown", 0
    if found["status"] not in allowed:
        return str(found["status"]), 0
    return None, int(found["step"])


def _note(
    tx: Tx,
    request: Intervention,
    step: int,
    action: str,
    status: str,
    error: str | None,
    now: float,
) -> None:
    """The intervention in the run's history, beside its attempts and gates."""
    output = {"by": request.actor, "via": request.via, "reason": request.reason}
    insert_attempt(
        tx,
        AttemptRecord(
            request.run_id, step, action, 0, now, now, status, output, error, counted=False
        ),
    )
