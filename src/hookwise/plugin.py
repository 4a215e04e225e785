"""The public plugin API: everything a plugin may use from hookwise, in one module.

Write `from hookwise.plugin import ...` and nothing else from hookwise. hookwise's own
modules may move between releases; the names here stay. The plugins in this
repository import only this module, and a test holds them to it.

What is here, by what a plugin does:

- declare hooks: `hookimpl`, and the specs they return: `ActionSpec`, `SourceKind`,
  `IntegrationSpec`;
- act: `ActionContext` (with `RunLog`), the outcomes `RetryLater`, `PermanentFailure`
  and `SkipRun`, `retry_after` for a Retry-After header, `Duration` for settings;
  `VersionPolicy`, for deploy actions that take a `policy`; `IMAGE_REFERENCE` and
  `tag_of`, to read image references;
- talk to the outside, through the egress guard: `shared_session` (aiohttp, kept-alive
  connections, never closed by the caller; the fast path) with `read_bounded` for the
  answer's body, `guarded_client` and `guarded_sync_client` (httpx), `guard_session`
  (a requests session, for client libraries built on it), `GuardedWebClient` and
  `GuardedWebhookClient` (slack-sdk);
- receive: `Delivery`, `Incoming`, `Event`, `parse_json`, `require_str`, `TypeRule`,
  and the checks of `signatures`: `TokenAuth`, `check_token`, `token_headers`,
  `require_credential`, `not_empty`, `same`, `sign`, `unix_seconds`;
- keep secrets secret: `mask` and `excerpt`; validate URLs in settings: `http_url`;
- the whole error tree, from `HookwiseError` down;
- test a plugin: `load_registry(folder)` loads plugins the way hookwise does.
"""

from hookwise.actions import ActionContext, ActionSpec, IntegrationSpec, RunLog
from hookwise.artifacts import artifact
from hookwise.durations import Duration
from hookwise.egress import (
    EgressPolicy,
    GuardedWebClient,
    GuardedWebhookClient,
    guard_session,
    guarded_client,
    guarded_sync_client,
    read_bounded,
    shared_session,
)
from hookwise.errors import (
    ActionError,
    BodyTooLarge,
    ConfigError,
    EgressDenied,
    GlobError,
    HookwiseError,
    PayloadError,
    PermanentFailure,
    Problem,
    RedirectRefused,
    RenderError,
    RequestError,
    ResponseTooLarge,
    RetryLater,
    SkipRun,
    StoreError,
    UnknownSource,
    VerificationError,
)
from hookwise.event import Event, Incoming
from hookwise.hookspecs import hookimpl
from hookwise.images import IMAGE_REFERENCE, tag_of
from hookwise.plugins import load_registry
from hookwise.retry import retry_after
from hookwise.secrets import excerpt, mask
from hookwise.signatures import (
    TokenAuth,
    check_token,
    not_empty,
    require_credential,
    same,
    sign,
    token_headers,
    unix_seconds,
)
from hookwise.sources import Delivery, SourceKind, TypeRule, parse_json, require_str
from hookwise.validation import http_url
from hookwise.versions import VersionPolicy

__all__ = [
    "IMAGE_REFERENCE",
    "ActionContext",
    "ActionError",
    "ActionSpec",
    "BodyTooLarge",
    "ConfigError",
    "Delivery",
    "Duration",
    "EgressDenied",
    "EgressPolicy",
    "Event",
    "GlobError",
    "GuardedWebClient",
    "GuardedWebhookClient",
    "HookwiseError",
    "Incoming",
    "IntegrationSpec",
    "PayloadError",
    "PermanentFailure",
    "Problem",
    "RedirectRefused",
    "RenderError",
    "RequestError",
    "ResponseTooLarge",
    "RetryLater",
    "RunLog",
    "SkipRun",
    "SourceKind",
    "StoreError",
    "TokenAuth",
    "TypeRule",
    "UnknownSource",
    "VerificationError",
    "VersionPolicy",
    "artifact",
    "check_token",
    "excerpt",
    "guard_session",
    "guarded_client",
    "guarded_sync_client",
    "hookimpl",
    "http_url",
    "load_registry",
    "mask",
    "not_empty",
    "parse_json",
    "read_bounded",
    "require_credential",
    "require_str",
    "retry_after",
    "same",
    "shared_session",
    "sign",
    "tag_of",
    "token_headers",
    "unix_seconds",
]
