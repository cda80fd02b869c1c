"""Bounded polling with errors that say what was awaited and what was last seen.

Integration tests observe real controllers on a machine whose CPU may be busy compiling Go, so
every wait is generous but finite, and a timeout must explain itself: the description of the
condition, how long we waited and the last observed value (or exception) from the probe.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")

# A slow CI box is not a failure; a hang is. Every default wait fits well inside pytest-timeout.
DEFAULT_TIMEOUT = 60.0


class WaitTimeoutError(AssertionError):
    """Raised when a condition did not hold in time (an AssertionError so pytest shows it plainly)."""


def wait_for(
    probe: Callable[[], T | None],
    *,
    what: str,
    timeout: float = DEFAULT_TIMEOUT,
    interval: float = 0.2,
    show: Callable[[], object] | None = None,
) -> T:
    """Call `probe` until it returns something truthy, and return that.

    `what` completes the sentence "timed out waiting for ...". Exceptions from the probe count as
    "not yet" but are quoted in the timeout message. `show`, if given, is called once on timeout
    for extra context (for example the current object).
    """
    deadline = time.monotonic() + timeout
    started = time.monotonic()
    last: object = None
    while True:
        try:
            value = probe()
        except Exception as error:  # any probe failure is "not yet", quoted on timeout
            last = f"{type(error).__name__}: {error}"
        else:
            if value:
                return value
            last = value
        if time.monotonic() >= deadline:
            context = ""
            if show is not None:
                try:
                    context = f"\ncontext: {show()!r}"
                except Exception as error:  # context is best effort
                    context = f"\ncontext unavailable: {error}"
            raise WaitTimeoutError(
                f"timed out after {time.monotonic() - started:.1f}s waiting for {what}; "
                f"last probe result: {last!r}{context}"
            )
        time.sleep(interval)


def holds_for(probe: Callable[[], bool], *, what: str, duration: float, interval: float = 0.25) -> None:
    """Assert that `probe` stays true for `duration` seconds (for "nothing happens" checks)."""
    deadline = time.monotonic() + duration
    while time.monotonic() < deadline:
        if not probe():
            raise AssertionError(f"expected {what} to hold for {duration:.0f}s, but it stopped holding")
        time.sleep(interval)
