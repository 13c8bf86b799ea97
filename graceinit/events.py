"""What the event loop wakes up for. The system produces these; the supervisor consumes.

Small classes with slots rather than dataclasses or named tuples: the same shape without the
imports (`dataclasses`, `typing`, `collections`) that every container start would pay for.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Mapping, Optional, Tuple, Union


class _EventBase:
    __slots__: Tuple[str, ...] = ()

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and all(
            getattr(self, name) == getattr(other, name) for name in self.__slots__)

    def __repr__(self) -> str:
        fields = ", ".join(f"{name}={getattr(self, name)!r}" for name in self.__slots__)
        return f"{type(self).__name__}({fields})"


class Signal(_EventBase):
    """A signal was delivered to graceinit (never SIGCHLD: that becomes Exited events)."""

    __slots__ = ("signum",)

    def __init__(self, signum: int) -> None:
        self.signum = signum


class Exited(_EventBase):
    """A child of graceinit was reaped."""

    __slots__ = ("pid", "wait_status")

    def __init__(self, pid: int, wait_status: int) -> None:
        self.pid = pid
        self.wait_status = wait_status


class Stopped(_EventBase):
    """A child of graceinit was stopped (Ctrl-Z); reported only when the child shares
    graceinit's terminal session, where graceinit must follow it into the background."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


class Gone(_EventBase):
    """A watched process that is not our child has died."""

    __slots__ = ("pid",)

    def __init__(self, pid: int) -> None:
        self.pid = pid


class Notified(_EventBase):
    """A message on the notify socket (sd_notify: READY=1, STATUS=..., ...)."""

    __slots__ = ("sender", "fields")

    def __init__(self, sender: Optional[int], fields: Mapping[str, str]) -> None:
        self.sender = sender  # the sending process, from its credentials
        self.fields = fields


if TYPE_CHECKING:
    Event = Union[Signal, Exited, Stopped, Gone, Notified]
else:
    Event = _EventBase
