"""The watchdog stops pure-Python work at its deadline, whatever the work is doing."""

from __future__ import annotations

import sys
import threading
import time
import weakref
from typing import Any

import pytest

from hookwise.interrupt import Interrupted, _quiet_about_interrupts, watchdog


class Thing:
    pass


class Unraisable:
    """Shaped like `sys.UnraisableHookArgs`, which Python only makes itself."""

    def __init__(self, *fields: Any) -> None:
        self.exc_type, self.exc_value, self.exc_traceback, self.err_msg, self.object = fields


def busy(_: Any = None) -> None:
    for _ in range(200):
        pass


def churn() -> None:
    """A loop that spends half its time in weakref callbacks, where Python swallows
    exceptions (as it does in `__del__`): where a template's garbage can put it."""
    while True:
        thing = Thing()
        ref = weakref.ref(thing, busy)
        del thing
        del ref
        busy()


def test_a_loop_stops_at_its_deadline():
    started = time.monotonic()
    with pytest.raises(Interrupted), watchdog.limit(0.2):
        while True:
            pass
    assert 0.15 < time.monotonic() - started < 1.0


def test_work_that_ends_in_time_is_left_alone():
    with watchdog.limit(1.0):
        total = sum(range(1000))
    time.sleep(0.05)
    assert total == 499500


def test_an_interrupt_swallowed_by_a_callback_is_raised_again(monkeypatch: pytest.MonkeyPatch):
    swallowed: list[str] = []
    monkeypatch.setattr(
        sys, "unraisablehook", lambda u: swallowed.append(type(u.exc_value).__name__)
    )
    took: list[float] = []

    def trials() -> None:
        for _ in range(50):  # until an interrupt has landed in a callback at least once
            started = time.monotonic()
            try:
                with watchdog.limit(0.05):
                    churn()
            except Interrupted:
                took.append(time.monotonic() - started)
            if swallowed:
                return

    # In a thread of its own, so that a regression fails here instead of hanging.
    worker = threading.Thread(target=trials, daemon=True)
    worker.start()
    worker.join(timeout=20)
    assert not worker.is_alive(), "an interrupt was lost: the loop ran on"
    assert swallowed and set(swallowed) == {"Interrupted"}  # the case this guards against
    assert max(took) < 1.0


def test_swallowed_interrupts_are_not_reported_but_other_errors_are():
    reported: list[BaseException | None] = []
    hook = _quiet_about_interrupts(lambda unraisable: reported.append(unraisable.exc_value))
    for error in (Interrupted(), ValueError("in __del__")):
        hook(Unraisable(type(error), error, None, None, None))  # type: ignore[arg-type]
    assert [type(e) for e in reported] == [ValueError]


def test_each_thread_has_its_own_deadline():
    outcomes: dict[str, str] = {}

    def work(name: str, seconds: float, loops: int) -> None:
        try:
            with watchdog.limit(seconds):
                for _ in range(loops):
                    pass
            outcomes[name] = "done"
        except Interrupted:
            outcomes[name] = "interrupted"

    threads = [
        threading.Thread(target=work, args=("endless", 0.2, 10**12)),
        threading.Thread(target=work, args=("short", 5.0, 10**5)),
    ]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(timeout=5)
    assert outcomes == {"endless": "interrupted", "short": "done"}
