"""Generations of the child and zero-downtime restarts.

The first generation is the child graceinit starts. On the restart signal a new generation
starts beside it on the same --listen sockets; once it is ready it becomes the current one
and the old one is stopped in the background. The current generation's status is
graceinit's; every generation still running is stopped by the stop sequence.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Callable, List, Optional, Set

    from graceinit.waits import Steps

from graceinit.config import exit_status
from graceinit.log import ERROR, INFO, WARNING
from graceinit.proc import Proc, SpawnError
from graceinit.waits import Wait


class Generations:
    __slots__ = ("current", "candidate", "retiring", "ready")

    def __init__(self) -> None:
        self.current: Optional[Proc] = None  # its status is graceinit's
        self.candidate: Optional[Proc] = None  # a new generation, not yet ready
        self.retiring: List[Proc] = []  # old generations being stopped
        self.ready: Set[int] = set()  # generations that sent READY=1

    def running(self) -> List[Proc]:
        """Every generation still running: the current one, a new one, old ones."""
        procs = [self.current, self.candidate, *self.retiring]
        return [proc for proc in procs if proc is not None and proc.running]

    def serving(self) -> List[Proc]:
        """Those that get forwarded signals: the current generation and a new one."""
        return [proc for proc in (self.current, self.candidate) if proc is not None and proc.running]

    def current_running(self) -> bool:
        return self.current is not None and self.current.running

    def describe(self, proc: Proc) -> str:
        if proc is self.candidate:
            return "new child"
        if proc in self.retiring:
            return "old child"
        return "child"

    def of_sender(self, sender: Optional[int], ancestry: List[int], sender_exists: bool) -> Optional[Proc]:
        """The generation a notify message came from: the sender or an ancestor.

        A sender that is already gone (`systemd-notify --ready` from a script exits, and is
        reaped, before graceinit reads its message) cannot be traced: its message goes to the
        newest generation still waiting to be ready. A live sender outside every generation's
        tree is not ours and is ignored.
        """
        if sender is None:
            return None
        generations = {proc.pid: proc for proc in self.running()}
        for pid in ancestry:
            if pid in generations:
                return generations[pid]
        if not sender_exists:
            for proc in (self.candidate, self.current):
                if proc is not None and proc.running and proc.pid not in self.ready:
                    return proc
        return None


class Restart:
    """What a restart needs from the life cycle around it."""

    def __init__(
        self,
        spawn: Callable[[], Proc],
        now: Callable[[], float],
        stopping: Callable[[], bool],
        retire: Callable[[Proc], None],
        became_current: Callable[[], None],
        say: Callable[..., None],
        ready_timeout: float,
        notify: bool,
    ) -> None:
        self.spawn = spawn
        self.now = now
        self.stopping = stopping
        self.retire = retire
        self.became_current = became_current
        self.say = say
        self.ready_timeout = ready_timeout
        self.notify = notify


def restart(generations: Generations, how: Restart) -> Steps[None]:
    """A new generation on the same sockets; the old one is stopped only once the new one is
    ready. If the new one fails, it is stopped and the old one keeps serving."""
    old = generations.current
    assert old is not None
    timeout = how.ready_timeout
    try:
        new = how.spawn()
    except SpawnError as error:
        how.say(ERROR, "restart_failed", f"restart failed: {error}; pid {old.pid} keeps serving",
                pid=old.pid, reason=str(error))
        return None
    generations.candidate = new
    waiting_for = "READY=1" if how.notify else f"{timeout:g}s alive"
    how.say(INFO, "restart_started", f"restart: started pid {new.pid} beside pid {old.pid};"
            f" waiting for {waiting_for}", pid=new.pid, old_pid=old.pid)
    yield Wait(lambda: new.pid in generations.ready or not new.running or how.stopping(),
               how.now() + timeout)
    if how.stopping():
        return None  # the stop sequence stops both generations
    generations.candidate = None
    keeps = f"pid {old.pid} keeps serving" if old.running else f"and pid {old.pid} has exited"
    if not new.running:
        status = exit_status(new.wait_status or 0)
        how.say(ERROR, "restart_failed", f"restart failed: pid {new.pid} exited with status"
                f" {status}; {keeps}", pid=new.pid, status=status)
        return None
    if how.notify and new.pid not in generations.ready:
        how.say(ERROR, "restart_failed", f"restart failed: pid {new.pid} not ready after"
                f" {timeout:g}s; stopping it, {keeps}", pid=new.pid, seconds=timeout)
        how.retire(new)
        return None
    generations.current = new
    how.became_current()
    if old.running:
        how.say(INFO, "restart_done", f"restart: pid {new.pid} is ready and now the main child;"
                f" stopping pid {old.pid}", pid=new.pid, old_pid=old.pid)
        how.retire(old)
    else:
        how.say(WARNING, "restart_done", f"restart: pid {old.pid} exited during the restart;"
                f" pid {new.pid} took over", pid=new.pid, old_pid=old.pid)
    return None
