"""What the event loop wakes up for. The system produces these; the supervisor consumes."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Mapping, Optional, Union


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


@dataclass(frozen=True)
class Notified:
    """A message on the notify socket (sd_notify: READY=1, STATUS=..., ...)."""

    sender: Optional[int]  # the sending process, from its credentials
    fields: Mapping[str, str]


Event = Union[Signal, Exited, Gone, Notified]
