"""How the life cycle waits without blocking the loop: it yields a `Wait`.

A step of the life cycle is a generator. Where it must wait (a hook running, a delay, a grace
period) it yields `Wait(done, deadline)`; the loop in supervisor.py goes on handling events
and resumes it with True once `done()` holds, or with False once the deadline has passed.
"""

from __future__ import annotations

from typing import Callable, Generator, NamedTuple, Optional, TypeVar

T = TypeVar("T")


class Wait(NamedTuple):
    """Resume when `done()` holds (sent True) or at `deadline`, monotonic seconds (False)."""

    done: Callable[[], bool]
    deadline: Optional[float] = None


Steps = Generator[Wait, bool, T]
