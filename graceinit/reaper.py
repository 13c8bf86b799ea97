"""Reaping: collect every exited child, and make sure orphans become our children."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Container, List, Optional, Tuple

_PR_SET_PDEATHSIG = 1
_PR_SET_CHILD_SUBREAPER = 36
_WAIT = os.WNOHANG
_WAIT_STOPPED = os.WNOHANG | os.WUNTRACED


def reap(stopped: bool = False, ours: Optional[Container[int]] = None) -> List[Tuple[int, int]]:
    """Collect every child that has exited (and, with `stopped`, report those that were
    stopped): (pid, wait status) pairs; with `ours`, only for those pids (an orphan is reaped
    and forgotten: a stream of 10,000 builds no list and feeds the cyclic GC nothing).

    SIGCHLD coalesces — one signal may stand for many exits — so loop until none is left.
    """
    exited = []
    options = _WAIT_STOPPED if stopped else _WAIT
    waitpid = os.waitpid
    while True:
        try:
            pid, status = waitpid(-1, options)
        except ChildProcessError:
            return exited
        if pid == 0:
            return exited
        if ours is None or pid in ours:
            exited.append((pid, status))


def _prctl(option: int, value: int) -> None:
    from graceinit import libc  # not PID 1 (the subreaper) or --pdeathsig only

    libc.call("prctl", option, value, 0, 0, 0)


def become_subreaper() -> None:
    """Orphans of our descendants are re-parented to us instead of to the real init."""
    _prctl(_PR_SET_CHILD_SUBREAPER, 1)


def set_parent_death_signal(signum: int, parent_at_start: int) -> None:
    _prctl(_PR_SET_PDEATHSIG, signum)
    if os.getppid() != parent_at_start:
        os.kill(os.getpid(), signum)  # the parent died before we asked: the signal is due now
