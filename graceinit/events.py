"""What the event loop wakes up for. The system produces these; the supervisor consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Union


@dataclass(frozen=True)
class Signal:
    """A signal was delivered to graceinit (never SIGCHLD: that becomes Exited events)."""

    signum: int


@dataclass(frozen=True)
class Exited:
    """A child of graceinit was reaped."""

    pid: int
    wait_status: int


@dataclass(frozen=True)
class Gone:
    """A watched process that is not our child has died."""

    pid: int


Event = Union[Signal, Exited, Gone]
