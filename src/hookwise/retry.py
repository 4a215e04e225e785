"""When to try a failed action again: exponential backoff with jitter, or the downstream's
own Retry-After, within bounds."""

from __future__ import annotations

import math
import random
from email.utils import parsedate_to_datetime
from time import time

from hookwise.rules.model import RetryPolicy

# Retry-After is honoured, but a misbehaving server must not park a run for days.
MAX_RETRY_AFTER = 3600.0


def backoff(policy: RetryPolicy, attempt: int) -> float:
    """Exponential with jitter: spreads retries so a recovering downstream is not stampeded."""
    ceiling = min(policy.max_backoff, policy.backoff * 2 ** (attempt - 1))
    return float(ceiling * random.uniform(0.5, 1.0))


def delay(policy: RetryPolicy, attempt: int, asked: float | None) -> float:
    """Seconds before the next attempt: what the downstream asked for, if it is sane."""
    if asked is not None and math.isfinite(asked) and asked >= 0:
        return min(asked, MAX_RETRY_AFTER)
    return backoff(policy, attempt)


def retry_after(value: str | None) -> float | None:
    """Seconds from a Retry-After header: delta-seconds or an HTTP date."""
    if not value:
        return None
    try:
        return max(0.0, float(value))
    except ValueError:
        pass
    try:
        return max(0.0, parsedate_to_datetime(value).timestamp() - time())
    except (TypeError, ValueError):
        return None
