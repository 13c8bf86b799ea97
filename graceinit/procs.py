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


def _stat_fields(pid: int) -> List[bytes]:
    """/proc/PID/stat after the command name (which may hold spaces and parentheses)."""
    try:
        with open(f"/proc/{pid}/stat", "rb") as stat:
            return stat.read().rpartition(b")")[2].split()
    except OSError:
        return []


def alive(pid: int) -> bool:
    """True while pid exists and is not a zombie."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def stopped(pid: int) -> bool:
    """True while pid is stopped by a signal (state T)."""
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == b"T"


def ancestry(pid: int) -> List[int]:
    """pid, its parent, its parent's parent, ... (to tell which child a message came from)."""
    chain = []
    while pid > 1 and pid not in chain and len(chain) < 64:
        chain.append(pid)
        fields = _stat_fields(pid)
        pid = int(fields[1]) if len(fields) > 1 else 0
    return chain
