"""The real operating system behind the supervisor's `System` seam."""

from __future__ import annotations

import math
import os
import select
import signal
import time
from typing import TYPE_CHECKING, Dict, List, Optional, Sequence

from graceinit import procs, reaper, spawn, terminal
from graceinit.events import Event, Exited, Gone, Notified, Signal, Stopped
from graceinit.output import ChildOutput
from graceinit.signals import SignalInbox
from graceinit.spawn import Environ, Proc
from graceinit.terminal import Session

if TYPE_CHECKING:  # socket's import is paid only by those who use --listen or --notify
    from graceinit.sockets import Listeners, NotifySocket
    from graceinit.traffic import TrafficWatch


_PIPE_NEARLY_FULL = 60000  # bytes; a pipe holds 64 KiB


class LinuxSystem:
    def __init__(
        self,
        inbox: SignalInbox,
        session: Session,
        child_output: ChildOutput,
        listeners: Optional[Listeners] = None,
        notify: Optional[NotifySocket] = None,
    ) -> None:
        self._inbox = inbox
        self._session = session
        self._child_output = child_output
        self._listeners = listeners
        self._notify = notify
        self._poller = select.poll()
        self._poller.register(inbox.fileno, select.POLLIN)
        if notify is not None:
            self._poller.register(notify.fileno(), select.POLLIN)
        self._pidfds: Dict[int, int] = {}  # fd -> pid
        self._devnull: Optional[int] = None
        self._pidfd_supported = True

    def now(self) -> float:
        return time.monotonic()

    def wait(self, timeout: Optional[float]) -> List[Event]:
        # poll(2) takes milliseconds: round up, or a deadline 0.4 ms away spins.
        millis = None if timeout is None else math.ceil(timeout * 1000)
        events: List[Event] = []
        reap = False
        for fd, _ in self._poller.poll(millis):
            if fd == self._inbox.fileno:
                received = self._inbox.drain()
                # A flood that filled the pipe may have crowded SIGCHLD's byte out: reap then too.
                reap = reap or len(received) >= _PIPE_NEARLY_FULL
                for signum in received:
                    if signum == signal.SIGCHLD:
                        reap = True
                    else:
                        events.append(Signal(signum))
            elif self._notify is not None and fd == self._notify.fileno():
                events.extend(Notified(pid, fields) for pid, fields in self._notify.receive())
            else:
                events.append(Gone(self._unwatch(fd)))
        if reap:
            for pid, status in reaper.reap(stopped=self._session is Session.FOREGROUND):
                events.append(Stopped(pid) if os.WIFSTOPPED(status) else Exited(pid, status))
        return events

    def spawn_child(self, argv: Sequence[str], environ: Environ) -> Proc:
        extra: Environ = {}
        pass_fds: Sequence[int] = ()
        if self._listeners is not None:
            extra.update(self._listeners.environ())
            pass_fds = self._listeners.fds
        if self._notify is not None:
            extra.update(self._notify.environ())
        environ = {**environ, **extra} if extra else environ
        return spawn.spawn(argv, environ, self._session, self._child_output.stdio, pass_fds)

    def spawn_hook(self, argv: Sequence[str], environ: Environ) -> Proc:
        if self._devnull is None:
            self._devnull = os.open(os.devnull, os.O_RDONLY | os.O_CLOEXEC)
        return spawn.spawn(argv, environ, Session.NEW, (self._devnull, None, None))

    def suspend_with(self, pgid: int) -> None:
        terminal.suspend_with(pgid)

    def take_back_terminal(self) -> None:
        """The child that had the terminal's foreground is gone: graceinit's group again."""
        if self._session is Session.FOREGROUND:
            terminal.reclaim_foreground()

    def send(self, pid: int, signum: int) -> None:
        try:
            os.kill(pid, signum)
        except ProcessLookupError:
            pass

    def send_group(self, pgid: int, signum: int) -> None:
        try:
            os.killpg(pgid, signum)
        except ProcessLookupError:
            pass

    def leftovers(self) -> List[int]:
        return procs.leftovers()

    def watch(self, pid: int) -> bool:
        if not self._pidfd_supported:
            return False
        try:
            fd = procs.open_pidfd(pid)
        except OSError:
            self._pidfd_supported = False
            return False
        if fd is None:
            return False
        self._pidfds[fd] = pid
        self._poller.register(fd, select.POLLIN)
        return True

    def _unwatch(self, fd: int) -> int:
        self._poller.unregister(fd)
        os.close(fd)
        return self._pidfds.pop(fd)

    def alive(self, pid: int) -> bool:
        return procs.alive(pid)

    def ancestry(self, pid: int) -> List[int]:
        return procs.ancestry(pid)

    def exists(self, pid: int) -> bool:
        return os.path.exists(f"/proc/{pid}")

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> TrafficWatch:
        """For --stop-delay auto: watch requests to the --listen TCP ports, or else to the
        listening sockets of root_pid's tree. Raises drain.Unavailable where it cannot."""
        from graceinit import traffic  # only when a drain starts

        tcp = [sock for sock in self._listeners.sockets if sock.family in traffic.FAMILIES] if self._listeners else []
        listeners = [(sock.family, sock.getsockname()[1], traffic.packed(sock.family, sock.getsockname()[0])) for sock in tcp]
        return traffic.watch(root_pid, ignore, listeners)
