"""The one way out: every outgoing HTTP request hookwise or a plugin makes passes here.

A rule's URL comes from a template and a downstream's answer is not to be trusted, so
a request could be steered at the metadata service or an internal admin port. The
guard works where the connection is made, not where a URL is looked at:

- names are resolved here and every address is checked against the policy; the
  connection goes to the checked address itself, so a DNS answer that changes
  between check and connect cannot slip through; the peer actually reached is
  checked once more; TLS still verifies the original host name;
- redirects are never followed: a 3xx with a Location ends the request with
  `RedirectRefused`, naming the status and the target, whatever the client library
  would have done with it;
- a client bound to an `origin` (an integration's configured URL) refuses any
  other scheme, host or port, so credentials only ever go to the configured host;
- proxy settings from the environment are ignored.

- the body of an answer is decoded here and read up to a limit, however it is encoded.

Async code uses `shared_session` (aiohttp, kept-alive connections; the fast path) or
`guarded_client` (httpx); threads use `shared_sync_client` or `guarded_sync_client`.
Client libraries get the same guard, handed their own session or transport
(`libraries`).

- `policy`: which addresses may be reached;
- `connect`: the connect-time check, for async code and for threads;
- `answers`: what an answer may do (redirects refused, body bounded);
- `transports`: the httpx transports and clients, and the shared ones;
- `sessions`: aiohttp sessions with the same guard, and the shared ones;
- `libraries`: the guard for requests-based libraries and for slack-sdk.
"""

import atexit

from hookwise.egress.libraries import (
    GuardedAdapter,
    GuardedWebClient,
    GuardedWebhookClient,
    guard_session,
)
from hookwise.egress.policy import EgressPolicy
from hookwise.egress.sessions import (
    guarded_session,
    read_bounded,
    shared_session,
    shared_sessions,
)
from hookwise.egress.transports import (
    GuardedSyncTransport,
    GuardedTransport,
    guarded_client,
    guarded_sync_client,
    shared,
    shared_sync_client,
)

# The shared clients' connections end with the process, not with a ResourceWarning.
atexit.register(shared.close)

__all__ = [
    "EgressPolicy",
    "GuardedAdapter",
    "GuardedSyncTransport",
    "GuardedTransport",
    "GuardedWebClient",
    "GuardedWebhookClient",
    "guard_session",
    "guarded_client",
    "guarded_session",
    "guarded_sync_client",
    "read_bounded",
    "shared_session",
    "shared_sessions",
    "shared_sync_client",
]
