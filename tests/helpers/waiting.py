"""The one way the tests wait: for a condition, bounded, failing loudly.

Contract (every wait in tests/ follows it):

* ``wait_until(predicate, timeout, what)`` returns the first truthy value
  ``predicate()`` returns.  A caller that needs *when* the condition held
  returns ``time.monotonic()`` from the predicate (``cond() and
  time.monotonic()``).
* On timeout it raises ``WaitTimeout`` -- an AssertionError, so it reads as a
  test failure -- saying how long it waited and for what (``what`` is a str or
  a callable returning one, evaluated only on failure, so it can describe the
  state at that moment).

``wait_until`` polls, for things nobody can notify us about (/proc, files,
other processes' logs).  Readers fed by a thread of our own wait on their
condition variable instead, through ``wait_on`` with the same contract.
"""
from __future__ import annotations

import threading
import time
from typing import Callable, TypeVar, Union

T = TypeVar("T")
Description = Union[str, Callable[[], str]]


class WaitTimeout(AssertionError):
    """A bounded wait ran out: the condition did not hold in time."""


def describe(what: Description) -> str:
    return what() if callable(what) else what


def timed_out(timeout: float, what: Description) -> WaitTimeout:
    return WaitTimeout("timed out after %.1fs waiting for %s" % (timeout, describe(what)))


def wait_until(predicate: Callable[[], T], timeout: float, what: Description = "condition",
               interval: float = 0.01, max_interval: float = 0.1) -> T:
    """Poll `predicate()` until it returns a truthy value; return that value.

    The poll interval starts at `interval` and grows by half each round up to
    `max_interval`, so short waits stay fast and long ones stay cheap; a caller
    timing the moment a condition held passes a small `max_interval`.  The
    predicate is always evaluated once more at the deadline.
    """
    deadline = time.monotonic() + timeout
    delay = interval
    while True:
        value = predicate()
        if value:
            return value
        left = deadline - time.monotonic()
        if left <= 0:
            raise timed_out(timeout, what)
        time.sleep(min(delay, left))
        delay = min(delay * 1.5, max(max_interval, interval))


def wait_on(cond: threading.Condition, predicate: Callable[[], T], timeout: float,
            what: Description = "condition") -> T:
    """Like wait_until, but event-driven: wait on `cond` (held by the caller)
    until `predicate()` is truthy; each notify_all() re-evaluates it."""
    value = cond.wait_for(predicate, timeout)
    if not value:
        raise timed_out(timeout, what)
    return value
