"""Is this request from Slack? Its v0 signature over the raw body, and a fresh timestamp.

Slack signs `v0:{X-Slack-Request-Timestamp}:{raw body}` with the app's signing secret
(HMAC-SHA256, hex, prefixed `v0=`). The timestamp must be within five minutes, so a
captured request cannot be replayed later.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from collections.abc import Mapping

from hookwise.errors import VerificationError
from hookwise.signatures import unix_seconds

MAX_AGE = 300.0
SIGNED_HEADERS = ("x-slack-request-timestamp", "x-slack-signature")


def slack_signature(secret: str, timestamp: str, body: bytes) -> str:
    base = b"v0:" + timestamp.encode() + b":" + body
    return "v0=" + hmac.new(secret.encode(), base, hashlib.sha256).hexdigest()


def verify_slack(
    secret: str, headers: Mapping[str, str], body: bytes, now: float | None = None
) -> None:
    """Raises VerificationError saying what is wrong; returns when the request is Slack's."""
    timestamp = headers.get("x-slack-request-timestamp", "")
    signature = headers.get("x-slack-signature", "")
    if not timestamp or not signature:
        raise VerificationError(
            "missing X-Slack-Request-Timestamp or X-Slack-Signature: requests must come from "
            "Slack, signed with the app's signing secret"
        )
    if not unix_seconds(timestamp):
        raise VerificationError(
            f"X-Slack-Request-Timestamp {timestamp[:40]!r} is not unix seconds (digits only)"
        )
    age = (time.time() if now is None else now) - int(timestamp)
    if abs(age) > MAX_AGE:
        raise VerificationError(
            f"X-Slack-Request-Timestamp is {abs(age):.0f}s {'old' if age > 0 else 'ahead'}; "
            f"at most {MAX_AGE:.0f}s is accepted (check the clocks)"
        )
    expected = slack_signature(secret, timestamp, body)
    if not hmac.compare_digest(expected.encode(), signature.encode()):
        raise VerificationError(
            "X-Slack-Signature does not match: check integrations.slack.signing_secret "
            "(Basic Information → App Credentials → Signing Secret)"
        )
