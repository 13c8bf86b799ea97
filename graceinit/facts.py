"""What the event handlers record and the life cycle acts on.

Handlers never decide what happens next; they write down what happened (a stop signal with
its number, count and time; a restart request; a process's exit status lands on its
`Proc`). The life cycle reads these facts whenever it is resumed, so two stop signals read
in the same wake-up count exactly like two read one second apart.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, List, Optional

from graceinit.proc import Proc


HURRY = 2  # the second stop signal: forward now, whatever is running
KILL_NOW = 3  # the third (and any later one): SIGKILL now


class StopRequest:
    """A stop signal: its number, its count (1 for the first, 2 for the second, ...) and
    when it arrived (monotonic seconds)."""

    __slots__ = ("signum", "count", "at")

    def __init__(self, signum: int, count: int, at: float) -> None:
        self.signum = signum
        self.count = count
        self.at = at


class Facts:
    __slots__ = ("stops", "restarts_requested", "children", "hook", "early_signals")

    def __init__(self) -> None:
        self.stops: List[StopRequest] = []
        self.restarts_requested = 0
        self.children: Dict[int, Proc] = {}  # started by graceinit (child, hooks), not yet reaped
        self.hook: Optional[Proc] = None  # the hook running now
        self.early_signals: List[int] = []  # arrived before the child existed, no hook running

    @property
    def stop(self) -> Optional[StopRequest]:
        """The first stop request: the one the sequence answers."""
        return self.stops[0] if self.stops else None

    @property
    def stop_count(self) -> int:
        return len(self.stops)

    @property
    def hurried(self) -> bool:
        """A second stop signal has come: what still delays the forward ends now (what that
        means in each phase: lifecycle.STOP_SIGNAL_TABLE)."""
        return len(self.stops) >= HURRY
