"""How the life cycle waits without blocking the loop: it yields a `Wait`.

A step of the life cycle is a generator. Where it must wait (a hook running, a delay, a grace
period) it yields `Wait(done, deadline)`; the loop in supervisor.py goes on handling events
and resumes it with True once `done()` holds, or with False once the deadline has passed.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Callable, Generator, Optional, TypeVar

    T = TypeVar("T")
    Steps = Generator["Wait", bool, T]


class Wait:
    """Resume when `done()` holds (sent True) or at `deadline`, monotonic seconds (False)."""

    __slots__ = ("done", "deadline")

    def __init__(self, done: Callable[[], bool], deadline: Optional[float] = None) -> None:
        self.done = done
        self.deadline = deadline

    def __repr__(self) -> str:
        return f"Wait({self.done!r}, {self.deadline!r})"
