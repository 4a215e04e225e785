"""Who is asking, and what they may do: named tokens with a role, console sessions, CSRF.

A **viewer** reads everything the history holds (it holds no secrets); an **operator**
may also retry, cancel, replay and decide. A token's name is the identity recorded in
a run's history when someone acts without Slack. With no token configured, hookwise
only listens on loopback (see `hookwise serve`), and whoever reaches it is an operator.

Console sessions are stateless, so any replica of a PostgreSQL set-up accepts them: the
cookie carries the token's name and an expiry, signed with a key derived from that
token. Changing or removing the token ends its sessions.
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
import time
from dataclasses import dataclass
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field, SecretStr, field_validator

SESSION_LIFETIME = 12 * 3600
MIN_TOKEN = 16
NAME_PATTERN = r"^[A-Za-z0-9][A-Za-z0-9._@-]{0,63}$"


class Role(StrEnum):
    VIEWER = "viewer"
    OPERATOR = "operator"


class AccessToken(BaseModel):
    """One entry of `access:` in hookwise.yaml."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(
        pattern=NAME_PATTERN, description="Who holds it; recorded when they retry or decide."
    )
    role: Role = Field(description="viewer reads; operator also retries, cancels and decides.")
    token: SecretStr = Field(description="Use a ${ENV} reference; at least 16 characters.")

    @field_validator("token")
    @classmethod
    def _long_enough(cls, token: SecretStr) -> SecretStr:
        if len(token.get_secret_value()) < MIN_TOKEN:
            raise ValueError(
                f"a token needs at least {MIN_TOKEN} characters, so it cannot be guessed; "
                "use a ${ENV} reference to a long random value (openssl rand -hex 24)"
            )
        return token


@dataclass(frozen=True)
class Identity:
    """Whoever a request comes from. `name` is None for the shared `api_token`, whose
    holders say who they are in each request."""

    name: str | None
    role: Role

    @property
    def operates(self) -> bool:
        return self.role == Role.OPERATOR


LOCAL = Identity("local", Role.OPERATOR)


class Access:
    def __init__(self, tokens: list[AccessToken], shared: str | None = None) -> None:
        self._tokens = [(entry.token.get_secret_value().encode(), entry) for entry in tokens]
        self._shared = shared.encode() if shared else None
        self._by_name = {entry.name: entry for entry in tokens}
        self._local_key = secrets.token_bytes(32)

    @property
    def open(self) -> bool:
        """No token configured: every request is `LOCAL` (serve keeps it on loopback)."""
        return not self._tokens and self._shared is None

    @property
    def sessions(self) -> bool:
        """Whether the console can log people in: only named tokens have a name to show."""
        return bool(self._tokens)

    def bearer(self, header: str) -> Identity | None:
        """The identity of `Authorization: Bearer <token>`, compared in constant time."""
        scheme, _, sent = header.partition(" ")
        if scheme.lower() != "bearer" or not sent:
            return None
        return self.token(sent.strip())

    def token(self, sent: str) -> Identity | None:
        """Every configured token is compared, so timing tells nothing about which matched."""
        given = sent.encode()
        found = None
        for value, entry in self._tokens:
            if hmac.compare_digest(given, value):
                found = Identity(entry.name, entry.role)
        if self._shared is not None and hmac.compare_digest(given, self._shared):
            found = Identity(None, Role.OPERATOR)
        return found

    # -- console sessions --------------------------------------------------------------

    def session(self, identity: Identity, now: float | None = None) -> str:
        assert identity.name is not None, "sessions are for named tokens"
        expires = int((now if now is not None else time.time()) + SESSION_LIFETIME)
        payload = f"{identity.name}.{expires}"
        return f"{payload}.{self._sign(identity.name, 'session', payload)}"

    def from_session(self, cookie: str, now: float | None = None) -> Identity | None:
        name, _, rest = cookie.partition(".")
        expires, _, signature = rest.partition(".")
        entry = self._by_name.get(name)
        if entry is None or not (expires.isascii() and expires.isdigit()):
            return None
        expected = self._sign(name, "session", f"{name}.{expires}")
        if not hmac.compare_digest(signature.encode(), expected.encode()):
            return None
        if int(expires) < (now if now is not None else time.time()):
            return None
        return Identity(entry.name, entry.role)

    def local_session(self) -> str:
        """Without tokens the console still needs a cookie to tie its form tokens to."""
        return f"local.{secrets.token_urlsafe(24)}"

    def csrf(self, cookie: str) -> str:
        """The form token for a session: tied to it, so another site cannot forge a post."""
        name = cookie.partition(".")[0]
        if name in self._by_name:
            return self._sign(name, "csrf", cookie)
        if self.open and name == "local" and len(cookie) > len("local."):
            return hmac.new(self._local_key, cookie.encode(), hashlib.sha256).hexdigest()
        return ""

    def csrf_ok(self, cookie: str, sent: str) -> bool:
        expected = self.csrf(cookie)
        return bool(expected) and hmac.compare_digest(expected.encode(), sent.encode())

    def _sign(self, name: str, purpose: str, payload: str) -> str:
        token = self._by_name[name].token.get_secret_value().encode()
        key = hashlib.sha256(b"hookwise " + purpose.encode() + b"\0" + token).digest()
        return hmac.new(key, payload.encode(), hashlib.sha256).hexdigest()
