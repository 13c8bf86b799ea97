"""The core's own types: a process graceinit started (`Proc`), why one could not start
(`SpawnError`), and an environment block (`Environ`).

Everything that reasons about processes (facts, terminate, generations, hooks, the life cycle)
needs these; only spawn.py forks and execs. Keeping them here keeps the fork/exec module out
of the core's imports.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Dict, Optional, Sequence

    Environ = Dict[bytes, bytes]
else:
    Environ = dict


class SpawnError(Exception):
    """A command could not be started; `status` is the shell's for it (126, 127, 71)."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


class Proc:
    """A process graceinit started and waits for (one object per process: compared by
    identity)."""

    __slots__ = ("pid", "pgid", "argv", "wait_status")

    def __init__(self, pid: int, pgid: int, argv: Sequence[str], wait_status: Optional[int] = None) -> None:
        self.pid = pid
        self.pgid = pgid  # 0 when it shares graceinit's process group
        self.argv = argv
        self.wait_status = wait_status  # set once it has been reaped

    @property
    def running(self) -> bool:
        return self.wait_status is None

    def __repr__(self) -> str:
        return f"Proc(pid={self.pid}, pgid={self.pgid}, argv={self.argv!r}, wait_status={self.wait_status})"
