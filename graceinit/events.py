"""What the event loop wakes up for. The system produces these; the supervisor consumes.

Named tuples from `collections` (already loaded by `signal`'s enum), not `typing.NamedTuple`
or dataclasses: the same shape at a fraction of the import cost, and every import here
delays every container's start. Field types are in each docstring.
"""

from __future__ import annotations

from collections import namedtuple

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Union


class Signal(namedtuple("Signal", "signum")):
    """A signal was delivered to graceinit (never SIGCHLD: that becomes Exited events).
    signum: int."""

    __slots__ = ()


class Exited(namedtuple("Exited", "pid wait_status")):
    """A child of graceinit was reaped. pid: int; wait_status: int (as waitpid gives it)."""

    __slots__ = ()


class Stopped(namedtuple("Stopped", "pid")):
    """A child of graceinit was stopped (Ctrl-Z); reported only when the child shares
    graceinit's terminal session, where graceinit must follow it into the background.
    pid: int."""

    __slots__ = ()


class Gone(namedtuple("Gone", "pid")):
    """A watched process that is not our child has died. pid: int."""

    __slots__ = ()


class Notified(namedtuple("Notified", "sender fields")):
    """A message on the notify socket (sd_notify: READY=1, STATUS=..., ...).
    sender: Optional[int], the sending process from its credentials; fields: Mapping[str, str]."""

    __slots__ = ()


if TYPE_CHECKING:
    Event = Union[Signal, Exited, Stopped, Gone, Notified]
else:
    Event = tuple  # every event is a named tuple
