"""What the event handlers record and the life cycle acts on.

Handlers never decide what happens next; they write down what happened (a stop signal with
its number, count and time; a restart request; a process's exit status lands on its
`Proc`). The life cycle reads these facts whenever it is resumed, so two stop signals read
in the same wake-up count exactly like two read one second apart.
"""

from __future__ import annotations

from typing import Dict, List, NamedTuple, Optional

from graceinit.spawn import Proc


class StopRequest(NamedTuple):
    signum: int
    count: int  # 1 for the first stop signal, 2 for the second, ...
    at: float  # monotonic seconds


class Facts:
    __slots__ = ("stops", "restarts_requested", "procs", "hook", "early_signals")

    def __init__(self) -> None:
        self.stops: List[StopRequest] = []
        self.restarts_requested = 0
        self.procs: Dict[int, Proc] = {}  # started by graceinit, not yet reaped
        self.hook: Optional[Proc] = None  # the hook running now
        self.early_signals: List[int] = []  # arrived before the child existed, no hook running

    @property
    def stop(self) -> Optional[StopRequest]:
        """The first stop request: the one the sequence answers."""
        return self.stops[0] if self.stops else None

    @property
    def stop_count(self) -> int:
        return len(self.stops)
