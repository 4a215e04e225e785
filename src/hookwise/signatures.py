"""Shared-secret checks for sources: plain tokens and HMAC signatures, all constant-time.

Built-in sources use these; plugin authors can too (`TokenAuth` is an options mixin).
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, SecretStr

from hookwise.errors import VerificationError
from hookwise.sources import Delivery

Algorithm = Literal["sha1", "sha256", "sha512"]
Encoding = Literal["hex", "base64"]


def same(sent: str | bytes | None, expected: str | bytes) -> bool:
    """Constant-time equality; a missing value never matches."""
    if sent is None:
        return False
    left = sent.encode() if isinstance(sent, str) else sent
    right = expected.encode() if isinstance(expected, str) else expected
    return hmac.compare_digest(left, right)


def unix_seconds(text: str) -> bool:
    """Whole seconds as senders write them: digits only (no `nan`, no `1e9`), at most
    twelve, so no conversion can fail or overflow."""
    return text.isascii() and text.isdigit() and len(text) <= 12


def sign(
    key: bytes, message: bytes, algorithm: Algorithm = "sha256", encoding: Encoding = "hex"
) -> str:
    """The HMAC of `message`, encoded as senders put it in a header."""
    digest = hmac.new(key, message, getattr(hashlib, algorithm)).digest()
    return digest.hex() if encoding == "hex" else base64.b64encode(digest).decode()


def require_credential(
    value: SecretStr | None, name: str, allow_unauthenticated: bool, what: str
) -> None:
    """Every source's rule: a non-empty credential, or an explicit opt-out. `what` explains it."""
    not_empty(value, name)
    if value is None and not allow_unauthenticated:
        raise ValueError(
            f"no {name} configured: set `{name}: ${{ENV_VAR}}` to {what}, "
            "or `allow_unauthenticated: true` to accept anyone's events"
        )


def not_empty(secret: SecretStr | None, name: str) -> None:
    if secret is not None and not secret.get_secret_value():
        raise ValueError(f"{name} is empty: is its environment variable set to a value?")


class TokenAuth(BaseModel):
    """A shared token sent in a header, as `<scheme> <token>` or bare when `scheme` is ""."""

    model_config = ConfigDict(extra="forbid")

    token: SecretStr | None = Field(
        default=None,
        description="Shared token the sender puts in `header`; write it as `${ENV_VAR}`.",
    )
    header: str = Field(default="Authorization", description="Header carrying the token.")
    scheme: str = Field(
        default="Bearer",
        description='Word before the token in the header (any case); "" for a bare token, '
        "as in `X-Gitlab-Token: <token>`.",
    )
    allow_unauthenticated: bool = Field(
        default=False, description="Accept deliveries from anyone: no token or signature needed."
    )


def token_headers(options: TokenAuth) -> list[str]:
    """The header a configured token travels in: a credential header."""
    return [options.header] if options.token is not None else []


def check_token(delivery: Delivery, options: TokenAuth) -> None:
    """Raise VerificationError unless the configured token (if any) was sent."""
    if options.token is None:
        return
    shape = f"{options.scheme} <token>" if options.scheme else "<token>"
    sent = delivery.header(options.header)
    if sent is None:
        raise VerificationError(f"missing {options.header}; send `{options.header}: {shape}`")
    value: str | None = sent.strip()
    if options.scheme:
        scheme, _, rest = sent.strip().partition(" ")
        value = rest.strip() if scheme.lower() == options.scheme.lower() else None
    if not same(value, options.token.get_secret_value()):
        raise VerificationError(f"{options.header} is not `{shape}` with the configured token")
