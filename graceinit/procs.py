"""Leftover processes: whatever still runs under graceinit once the main child is gone."""

from __future__ import annotations

import os
from typing import List, Optional


def leftovers() -> List[int]:
    """Every live descendant of graceinit (as PID 1: every process of the container that
    descends from it; `kubectl exec` sessions, whose parent is outside, are left alone)."""
    if not _has_children():
        return []
    import psutil  # only here: its import costs more than the rest of graceinit's exit

    pids = []
    for process in psutil.Process().children(recursive=True):
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                pids.append(process.pid)
        except psutil.Error:
            pass  # gone meanwhile
    return pids


def _has_children() -> bool:
    """Cheap first look: no child means no descendant (orphans are re-parented to us)."""
    pid = os.getpid()
    try:
        with open(f"/proc/{pid}/task/{pid}/children", "rb") as children:
            return bool(children.read().strip())
    except OSError:
        return True  # cannot tell: look properly


def open_pidfd(pid: int) -> Optional[int]:
    """A descriptor that polls readable when `pid` dies, or None if it is already gone.

    Raises OSError(ENOSYS) where the kernel has no pidfd (before Linux 5.3).
    """
    try:
        return os.pidfd_open(pid)
    except ProcessLookupError:
        return None


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            state = stat.read().rpartition(b")")[2].split()[0]
    except (OSError, IndexError):
        return False
    return state not in (b"Z", b"X")
