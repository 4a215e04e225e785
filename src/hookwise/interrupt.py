"""A deadline for pure-Python work in any thread, enforced from outside it.

Templates are Python code once compiled: a rule whose loop runs 10^8 times never
returns to check a clock, and a thread cannot be killed. A watchdog thread watches
the deadlines armed with `limit()` and, when one passes, raises `Interrupted` inside
the late thread (CPython's `PyThreadState_SetAsyncExc`). The exception arrives at the
thread's next bytecode, so a long loop stops within milliseconds of its deadline.

That bytecode may belong to a weakref callback or a `__del__` the collector runs in
the middle of the loop, where Python swallows exceptions (and reports them on
stderr); so the watchdog raises again every REFIRE seconds until the block has ended,
and the report of a swallowed one is dropped as noise.
"""

from __future__ import annotations

import ctypes
import sys
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager

REFIRE = 0.05
# Bounded (5 s of raising), so a block that ends in the instant between two raises
# cannot leave its thread being interrupted for ever.
MAX_FIRES = 100


class Interrupted(BaseException):
    """Raised inside a thread whose deadline passed.

    A BaseException, like asyncio.CancelledError: template internals that catch
    `Exception` must not swallow it.
    """


def _raise_in(ident: int, exception: type[BaseException] | None) -> None:
    """Schedule `exception` in thread `ident`; None withdraws one not yet raised."""
    target = ctypes.py_object(exception) if exception is not None else None
    ctypes.pythonapi.PyThreadState_SetAsyncExc(ctypes.c_ulong(ident), target)


class Watchdog:
    """One daemon thread for every deadline in the process; idle while none is armed."""

    def __init__(self) -> None:
        self._armed: dict[int, float] = {}  # thread ident -> monotonic deadline
        self._fired: dict[int, int] = {}  # thread ident -> raises since its deadline
        self._changed = threading.Condition()
        self._thread: threading.Thread | None = None

    @contextmanager
    def limit(self, seconds: float) -> Iterator[None]:
        """Interrupt the calling thread if the block runs longer than `seconds`.

        Nested limits keep the earlier deadline. Catch `Interrupted` around the
        `with` statement, not inside it: it may arrive as the block ends.
        """
        ident = threading.get_ident()
        deadline = time.monotonic() + seconds
        with self._changed:
            outer = self._armed.get(ident)
            self._armed[ident] = deadline if outer is None else min(outer, deadline)
            self._ensure_thread()
            self._changed.notify()
        try:
            yield
        finally:
            with self._changed:
                self._fired.pop(ident, None)
                if outer is None:
                    self._armed.pop(ident, None)
                else:
                    self._armed[ident] = outer
            if outer is None:
                # The watchdog may have fired just as the block finished: drop it here,
                # or it would surface later in code that has nothing to do with it.
                _raise_in(ident, None)

    def _ensure_thread(self) -> None:
        if self._thread is None:
            sys.unraisablehook = _quiet_about_interrupts(sys.unraisablehook)
        if self._thread is None or not self._thread.is_alive():
            self._thread = threading.Thread(
                target=self._watch, name="hookwise-watchdog", daemon=True
            )
            self._thread.start()

    def _watch(self) -> None:
        with self._changed:
            while True:
                now = time.monotonic()
                for ident, deadline in list(self._armed.items()):
                    if deadline <= now:
                        # The entry stays until its block exits, raising again meanwhile.
                        fired = self._fired[ident] = self._fired.get(ident, 0) + 1
                        more = fired < MAX_FIRES
                        self._armed[ident] = now + REFIRE if more else float("inf")
                        _raise_in(ident, Interrupted)
                pending = [d for d in self._armed.values() if d != float("inf")]
                self._changed.wait(min(pending) - now if pending else None)


def _quiet_about_interrupts(
    report: Callable[[sys.UnraisableHookArgs], object],
) -> Callable[[sys.UnraisableHookArgs], object]:
    def hook(unraisable: sys.UnraisableHookArgs) -> object:
        if isinstance(unraisable.exc_value, Interrupted):
            return None  # raised again shortly, where it counts
        return report(unraisable)

    return hook


watchdog = Watchdog()
