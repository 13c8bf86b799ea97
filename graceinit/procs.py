"""Leftover processes: whatever still runs under graceinit once the main child is gone."""

from __future__ import annotations

import os

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import List, Optional

from graceinit import log


class _ProcView:
    """Whether /proc is this PID namespace's, found out once, when first needed."""

    ours: Optional[bool] = None


def proc_is_ours() -> bool:
    """True if /proc shows processes as graceinit's PID namespace numbers them.

    A runtime that forgets to mount /proc for the container leaves the host's (or a parent
    namespace's) there: as PID 1, "/proc/1" is then the host's init, and every pid read
    from /proc names some other process, or none, in graceinit's namespace. An empty /proc
    (a tmpfs) shows nothing at all. In both cases nothing read there may be signalled.
    """
    if _ProcView.ours is None:
        _ProcView.ours = _own_pid_namespace()
        if not _ProcView.ours:
            log.warning(
                "/proc does not belong to graceinit's PID namespace (mount the container's own"
                " /proc): leftover processes will not be looked for or signalled",
                event="proc_not_ours",
            )
    return _ProcView.ours


def _own_pid_namespace() -> bool:
    pid = os.getpid()
    try:
        with open("/proc/self/status", "rb") as status:
            for line in status:
                if line.startswith(b"NSpid:"):
                    # One pid per namespace from /proc's own down to the process's: a /proc
                    # of graceinit's namespace shows exactly one, graceinit's own pid.
                    return line.split()[1:] == [str(pid).encode()]
        return os.readlink("/proc/self") == str(pid)  # kernels before 4.1: no NSpid
    except (OSError, ValueError):
        return False


def leftovers() -> List[int]:
    """Every live descendant of graceinit (as PID 1: every process of the container that
    descends from it; `kubectl exec` sessions, whose parent is outside, are left alone).
    Empty when /proc is not graceinit's: what it lists there is not provably ours."""
    if not proc_is_ours() or not _has_children():
        return []
    import psutil  # only here: its import costs more than the rest of graceinit's exit

    pids = []
    try:
        descendants = psutil.Process().children(recursive=True)
    except (psutil.Error, OSError) as error:
        log.warning(f"cannot list leftover processes: {error}", event="leftovers_unlisted")
        return []
    for process in descendants:
        try:
            if process.status() != psutil.STATUS_ZOMBIE:
                pids.append(process.pid)
        except psutil.Error:
            pass  # gone meanwhile
    # A scan of /proc misses a process that forks and exits while it runs (its child has a
    # higher pid, scanned before it existed): the kernel's own list of our children does not.
    return pids + [pid for pid in live_children() if pid not in pids]


def live_children() -> List[int]:
    """graceinit's own children that are not zombies, read until two readings agree.

    As subreaper (or PID 1) every orphan becomes our child, so a live descendant means a live
    child. A child that forks and exits between two readings has handed its child over to us
    by then (the kernel re-parents before the parent becomes a zombie): the second reading
    shows it, differs, and the lists are read again."""
    pid = os.getpid()
    previous: Optional[List[bytes]] = None
    live: List[int] = []
    for _ in range(16):  # each disagreement means a process died: bounded by any sane churn
        try:
            with open(f"/proc/{pid}/task/{pid}/children", "rb") as children:
                current = children.read().split()
        except OSError:
            return []
        live = [int(child) for child in current if alive(int(child))]
        if current == previous:
            break
        previous = current
    return live


def tree(root_pid: int) -> List[int]:
    """root_pid and its descendants, from /proc/PID/task/TID/children (no psutil import: it
    costs more than the walk). Empty when /proc is not graceinit's: what it lists there is
    not provably ours."""
    if not proc_is_ours():
        return []
    found, index = [root_pid], 0
    while index < len(found) and len(found) < 100_000:
        pid = found[index]
        index += 1
        try:
            tasks = os.listdir(f"/proc/{pid}/task")
        except OSError:
            continue
        for task in tasks:
            try:
                with open(f"/proc/{pid}/task/{task}/children", "rb") as children:
                    found.extend(int(child) for child in children.read().split())
            except OSError:
                pass
    return found


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
    if not proc_is_ours():
        try:
            os.kill(pid, 0)  # exists in our namespace (a zombie of ours is reaped soon)
        except ProcessLookupError:
            return False
        except OSError:
            pass
        return True
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] not in (b"Z", b"X")


def stopped(pid: int) -> bool:
    """True while pid is stopped by a signal (state T). True as well when /proc is not
    graceinit's: a SIGCONT to one of its own children harms nothing, a stopped one needs it."""
    if not proc_is_ours():
        return True
    fields = _stat_fields(pid)
    return bool(fields) and fields[0] == b"T"


def exists(pid: int) -> bool:
    """Whether pid is still there (a zombie counts)."""
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:
        pass  # EPERM: there, but not ours to signal
    return True


def ancestry(pid: int) -> List[int]:
    """pid, its parent, its parent's parent, ... (to tell which child a message came from).
    Just pid when /proc is not graceinit's: the parents read there would be strangers."""
    if not proc_is_ours():
        return [pid]
    chain = []
    while pid > 1 and pid not in chain and len(chain) < 64:
        chain.append(pid)
        fields = _stat_fields(pid)
        pid = int(fields[1]) if len(fields) > 1 else 0
    return chain
