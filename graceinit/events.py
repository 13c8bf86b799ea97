"""What the event loop wakes up for. The system produces these; the supervisor consumes.

NamedTuples rather than dataclasses: same shape, a fraction of the import cost, and every
import here delays every container's start.
"""

from __future__ import annotations

from typing import Mapping, NamedTuple, Optional, Union


class Signal(NamedTuple):
    """A signal was delivered to graceinit (never SIGCHLD: that becomes Exited events)."""

    signum: int


class Exited(NamedTuple):
    """A child of graceinit was reaped."""

    pid: int
    wait_status: int


class Stopped(NamedTuple):
    """A child of graceinit was stopped (Ctrl-Z); reported only when the child shares
    graceinit's terminal session, where graceinit must follow it into the background."""

    pid: int


class Gone(NamedTuple):
    """A watched process that is not our child has died."""

    pid: int


class Notified(NamedTuple):
    """A message on the notify socket (sd_notify: READY=1, STATUS=..., ...)."""

    sender: Optional[int]  # the sending process, from its credentials
    fields: Mapping[str, str]


Event = Union[Signal, Exited, Stopped, Gone, Notified]
