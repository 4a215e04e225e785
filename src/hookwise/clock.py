"""The one source of "now" for flow control and scheduling, so tests can move time.

Debounce windows, throttles, deadlines and retry delays all read `now()`; a test
that patches it can show a 30-minute timeout without waiting 30 minutes.
"""

from __future__ import annotations

import time


def now() -> float:
    return time.time()
