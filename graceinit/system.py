"""The operating system, behind one seam: `System` is everything the supervisor and the life
cycle ask of it; `LinuxSystem` is the real one. Unit tests give them a fake that replays a
recorded history (tests/helpers/fakes.py)."""

from __future__ import annotations

import math
import os
import select
import _signal as signal  # the C module: `signal` would import enum (every start pays)
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Container, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # at run time the protocols are plain documentation

from graceinit import procs, reaper, spawn, terminal
from graceinit.events import Event, Exited, Gone, Notified, Signal, Stopped
from graceinit.output import ChildOutput
from graceinit.signals import SignalInbox
from graceinit.proc import Environ, Proc
from graceinit.terminal import Session

if TYPE_CHECKING:  # socket's import is paid only by those who use --listen or --notify
    from graceinit.readyport import ReadyPort
    from graceinit.sockets import Listeners, NotifySocket
    from graceinit.traffic import TrafficWatch


_PIPE_NEARLY_FULL = 60000  # bytes; a pipe holds 64 KiB
# poll(2) takes an int of milliseconds: a longer wait is taken in pieces (a day each).
_LONGEST_WAIT = 86400.0
_SIGCHLD = int(signal.SIGCHLD)
_CHLD_SET = (signal.SIGCHLD,)
_BLOCK, _UNBLOCK = signal.SIG_BLOCK, signal.SIG_UNBLOCK
sigmask = signal.pthread_sigmask


class System(Protocol):
    """Everything the core (the loop, the life cycle and its steps) asks of the operating
    system: the core reaches the OS only through this."""

    def now(self) -> float: ...

    def wait(self, timeout: Optional[float], ours: Optional[Container[int]] = None) -> List[Event]:
        """Block until something happens or `timeout` seconds pass. With `ours`, the exits
        of other processes (orphans) are reaped without an event."""

    def spawn_child(self, argv: Sequence[str], environ: Environ) -> Proc: ...

    def spawn_hook(self, argv: Sequence[str], environ: Environ) -> Proc: ...

    def send(self, pid: int, signum: int) -> None: ...

    def send_group(self, pgid: int, signum: int) -> None: ...

    def resume_if_stopped(self, pid: int, pgid: int) -> bool: ...

    def suspend_with(self, pgid: int) -> None: ...

    def take_back_terminal(self) -> None: ...

    def set_ready(self, ready: bool) -> None: ...

    def leftovers(self) -> List[int]: ...

    def hook_files(self, directory: Optional[str]) -> List[str]:
        """A hook directory's executable files, by name (None: no directory)."""

    def watch(self, pid: int) -> bool: ...

    def alive(self, pid: int) -> bool: ...

    def ancestry(self, pid: int) -> List[int]: ...

    def exists(self, pid: int) -> bool: ...

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> TrafficWatch:
        """What --stop-delay auto samples; raises drain.Unavailable where it cannot."""

    def net_counters(self) -> Dict[str, int]:
        """The network namespace's TCP counters ("Tcp:OutRsts", ...); OSError if unreadable."""

    def foreign_listeners(self) -> int:
        """How many TCP listeners of the namespace no process of graceinit's tree holds."""

    def open_connections(self) -> Tuple[int, int]:
        """Connections clients opened to graceinit's tree with a request in flight, and how
        many of them with data unread."""


class LinuxSystem:
    def __init__(
        self,
        inbox: SignalInbox,
        session: str,
        child_output: ChildOutput,
        listeners: Optional[Listeners] = None,
        notify: Optional[NotifySocket] = None,
        ready_file: Optional[str] = None,
        ready_port: Optional[ReadyPort] = None,
    ) -> None:
        self._inbox = inbox
        self._session = session
        self._child_output = child_output
        self._listeners = listeners
        self._notify = notify
        self._ready_file = ready_file
        self._poller = select.poll()
        self._signal_fd = inbox.fileno
        sigmask(_BLOCK, _CHLD_SET)  # see wait()
        self._report_stops = session is Session.FOREGROUND  # Ctrl-Z: follow the child
        self._poller.register(inbox.fileno, select.POLLIN)
        if notify is not None:
            self._poller.register(notify.fileno(), select.POLLIN)
        self._ready_port = ready_port
        if ready_port is not None:
            ready_port.attach(self._poller)
        self._pidfds: Dict[int, int] = {}  # fd -> pid
        self._devnull: Optional[int] = None
        self._pidfd_supported = True

    def now(self) -> float:
        return time.monotonic()

    def wait(self, timeout: Optional[float], ours: Optional[Container[int]] = None) -> List[Event]:
        # poll(2) takes milliseconds: round up, or a deadline 0.4 ms away spins.
        ready_port = self._ready_port
        if ready_port is not None:  # a probe connection that never sends its request times out
            expires = ready_port.next_deadline()
            if expires is not None:
                until = max(0.0, expires - time.monotonic())
                timeout = until if timeout is None else min(timeout, until)
        millis = None if timeout is None else math.ceil(min(timeout, _LONGEST_WAIT) * 1000)
        events: List[Event] = []
        reap = False
        # This runs once per wake-up, and a stream of orphans is a wake-up each: attribute
        # look-ups are hoisted, and an orphan costs its waitpid and nothing more.
        signal_fd, sigchld = self._signal_fd, _SIGCHLD
        # SIGCHLD is let in only while graceinit sleeps. A stream of orphans would otherwise
        # interrupt the work below once per exit (a handler and a pipe write each); held, the
        # exits coalesce into one pending SIGCHLD, and the reap loop collects them all.
        # A SIGCHLD that lands between the unblock and poll() still wakes it: the handler
        # writes to the pipe poll() watches.
        sigmask(_UNBLOCK, _CHLD_SET)
        try:
            ready = self._poller.poll(millis)
        finally:
            sigmask(_BLOCK, _CHLD_SET)
        for fd, _ in ready:
            if fd == signal_fd:
                received = self._inbox.drain()
                # A flood that filled the pipe may have crowded SIGCHLD's byte out: reap then too.
                if len(received) >= _PIPE_NEARLY_FULL:
                    reap = True
                for signum in received:
                    if signum == sigchld:
                        reap = True
                    else:
                        events.append(Signal(signum))
            elif self._notify is not None and fd == self._notify.fileno():
                events.extend(Notified(pid, fields) for pid, fields in self._notify.receive())
            elif ready_port is not None and ready_port.owns(fd):
                ready_port.handle(fd, time.monotonic())  # answered here: no fact, no step resumed
            else:
                events.append(Gone(self._unwatch(fd)))
        if ready_port is not None and ready_port.next_deadline() is not None:
            ready_port.expire(time.monotonic())
        if reap:
            for pid, status in reaper.reap(self._report_stops):
                if ours is None or pid in ours:
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
            self._devnull = spawn.empty_stdin()
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

    def resume_if_stopped(self, pid: int, pgid: int) -> bool:
        """SIGCONT to pid (its group with pgid) if it is stopped: one read of /proc, only
        when a stop signal is sent."""
        if not procs.stopped(pid):
            return False
        if pgid:
            self.send_group(pgid, signal.SIGCONT)
        else:
            self.send(pid, signal.SIGCONT)
        return True

    def set_ready(self, ready: bool) -> None:
        if self._ready_port is not None:  # first: the file's I/O error must not hold it back
            self._ready_port.ready = ready
        if self._ready_file is not None:
            from graceinit import readyfile  # only with --ready-file

            (readyfile.create if ready else readyfile.remove)(self._ready_file)

    def leftovers(self) -> List[int]:
        return procs.leftovers()

    def hook_files(self, directory: Optional[str]) -> List[str]:
        if directory is None:
            return []
        try:
            names = sorted(os.listdir(directory))
        except OSError:
            return []  # checked at start-up; if it vanished since, there is nothing to run
        paths = (os.path.join(directory, name) for name in names)
        return [path for path in paths if os.path.isfile(path) and os.access(path, os.X_OK)]

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
        return procs.exists(pid)

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> TrafficWatch:
        """For --stop-delay auto: watch requests to the --listen TCP ports, or else to the
        listening sockets of root_pid's tree. Raises drain.Unavailable where it cannot."""
        from graceinit import traffic  # only when a drain starts

        tcp = [sock for sock in self._listeners.sockets if sock.family in traffic.FAMILIES] if self._listeners else []
        listeners = [(sock.family, sock.getsockname()[1], traffic.packed(sock.family, sock.getsockname()[0])) for sock in tcp]
        return traffic.watch(root_pid, ignore, listeners)

    # --- the ledger (ledger.py): read at the stop's boundaries only -----------------------

    def net_counters(self) -> Dict[str, int]:
        from graceinit import netstat

        return netstat.counters()

    def foreign_listeners(self) -> int:
        from graceinit import traffic

        _proc_must_be_ours()
        return traffic.foreign_listeners(os.getpid())

    def open_connections(self) -> Tuple[int, int]:
        from graceinit import netstat, traffic

        _proc_must_be_ours()
        return traffic.in_flight(os.getpid(), netstat.ephemeral_ports())


def _proc_must_be_ours() -> None:
    if not procs.proc_is_ours():  # whose sockets /proc shows cannot be told
        raise OSError(0, "/proc is not graceinit's PID namespace's")
