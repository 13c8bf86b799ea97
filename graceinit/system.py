"""The operating system, behind one seam: `System` is everything the supervisor and the life
cycle ask of it; `LinuxSystem` is the real one. Unit tests give them a fake that replays a
recorded history (tests/helpers/fakes.py)."""

from __future__ import annotations

import os
import _signal as signal  # the C module: `signal` would import enum (every start pays)
import time

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Container, Dict, List, Optional, Sequence, Tuple

if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # at run time the protocols are plain documentation

from graceinit import reaper, spawn, terminal
from graceinit.events import Event, Exited, Gone, Notified, Signal, Stopped
from graceinit.output import ChildOutput
from graceinit.signals import HANDLED_SIGNALS, SignalInbox
from graceinit.proc import Environ, Proc
from graceinit.terminal import Session

if TYPE_CHECKING:  # socket's import is paid only by those who use --listen or --notify
    import select

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
_HANDLED_BUT_CHLD = tuple(signum for signum in HANDLED_SIGNALS if signum != _SIGCHLD)


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
        self._signal_fd = inbox.fileno
        sigmask(_BLOCK, _CHLD_SET)  # see _poll()
        self._report_stops = session is Session.FOREGROUND  # Ctrl-Z: follow the child
        self._ready_port = ready_port
        self._pidfds: Dict[int, int] = {}  # fd -> pid
        # While nothing but signals is watched (no pidfd, no notify or ready-port socket),
        # graceinit sleeps in sigtimedwait with every handled signal blocked (_take_signals):
        # a signal costs that one system call, where poll() costs a handler, a pipe write and
        # read and two mask changes. `_held` says the signals are blocked for that.
        self._signals_only = notify is None and ready_port is None
        self._held = False
        self._poller: Optional[select.poll] = None if self._signals_only else self._new_poller()
        self._devnull: Optional[int] = None
        self._pidfd_supported = True

    def _new_poller(self) -> select.poll:
        import select  # only once something besides signals is watched

        poller = select.poll()
        poller.register(self._signal_fd, select.POLLIN)
        if self._notify is not None:
            poller.register(self._notify.fileno(), select.POLLIN)
        if self._ready_port is not None:
            self._ready_port.attach(poller)
        return poller

    def now(self) -> float:
        return time.monotonic()

    def wait(self, timeout: Optional[float], ours: Optional[Container[int]] = None) -> List[Event]:
        if self._signals_only and not self._pidfds:
            events, reap = self._take_signals(timeout)
        else:
            events, reap = self._poll(timeout)
        if reap:
            for pid, status in reaper.reap(self._report_stops, ours):
                events.append(Stopped(pid) if os.WIFSTOPPED(status) else Exited(pid, status))
        return events

    def _take_signals(self, timeout: Optional[float]) -> Tuple[List[Event], bool]:
        """Sleep in sigtimedwait; every handled signal stays blocked (SIGCHLD too: a stream of
        exits coalesces into one pending SIGCHLD, and the reap loop collects them all)."""
        received: List[int] = []
        flooded = False
        if not self._held:  # first, or back from _poll(): block, then read what reached the pipe
            sigmask(_BLOCK, HANDLED_SIGNALS)
            self._held = True
            received = self._inbox.drain()
            flooded = len(received) >= _PIPE_NEARLY_FULL  # SIGCHLD's byte may be lost: reap
        take = signal.sigtimedwait
        if received:
            info = take(HANDLED_SIGNALS, 0)
        elif timeout is None:
            info = signal.sigwaitinfo(HANDLED_SIGNALS)
        else:
            info = take(HANDLED_SIGNALS, max(0.0, min(timeout, _LONGEST_WAIT)))
        if info is not None:
            first = info.si_signo
            # Others pending with it are taken in this wake-up too. sigpending() costs half
            # of a sigtimedwait() that finds nothing, and one signal alone is the usual case.
            if not signal.sigpending():
                received.append(first)
            else:
                later: List[int] = []
                info = take(HANDLED_SIGNALS, 0)
                while info is not None:
                    later.append(info.si_signo)
                    info = take(HANDLED_SIGNALS, 0)
                # The kernel keeps no arrival order, and hands out the lowest number first: a
                # lower one now came after `first`; a higher one may have been pending with
                # it. Those go first, highest first, as the pipe path's handlers saw signals
                # pending together (each handler's frame is stacked on the last): what the
                # life cycle has always read. `kill -TERM; kill -INT` back to back is then a
                # SIGTERM stop hurried by SIGINT, however soon graceinit woke.
                together = [signum for signum in later if signum > first]
                together.reverse()
                received += together
                received.append(first)
                received += [signum for signum in later if signum <= first]
        events, reap = self._sort(received)
        return events, reap or flooded

    @staticmethod
    def _sort(received: List[int]) -> Tuple[List[Event], bool]:
        """Signals received -> their events, and whether SIGCHLD asks for a reap."""
        events: List[Event] = []
        reap = False
        sigchld = _SIGCHLD
        for signum in received:
            if signum == sigchld:
                reap = True
            else:
                events.append(Signal(signum))
        return events, reap

    def _poll(self, timeout: Optional[float]) -> Tuple[List[Event], bool]:
        if self._poller is None:
            self._poller = self._new_poller()
        if self._held:  # from _take_signals(): what is pending reaches the handlers and the pipe
            sigmask(_UNBLOCK, _HANDLED_BUT_CHLD)
            self._held = False
        ready_port = self._ready_port
        if ready_port is not None:  # a probe connection that never sends its request times out
            expires = ready_port.next_deadline()
            if expires is not None:
                until = max(0.0, expires - time.monotonic())
                timeout = until if timeout is None else min(timeout, until)
        # poll(2) takes milliseconds: round up, or a deadline 0.4 ms away spins. -(-x // 1) is
        # ceil(x) for every float, without math (an extension module each start would load).
        millis = None if timeout is None else -int(-min(timeout, _LONGEST_WAIT) * 1000 // 1)
        events: List[Event] = []
        reap = False
        signal_fd = self._signal_fd
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
                signalled, reap = self._sort(received)
                events.extend(signalled)
                # A flood that filled the pipe may have crowded SIGCHLD's byte out: reap then too.
                if len(received) >= _PIPE_NEARLY_FULL:
                    reap = True
            elif self._notify is not None and fd == self._notify.fileno():
                events.extend(Notified(pid, fields) for pid, fields in self._notify.receive())
            elif ready_port is not None and ready_port.owns(fd):
                ready_port.handle(fd, time.monotonic())  # answered here: no fact, no step resumed
            else:
                events.append(Gone(self._unwatch(fd)))
        if ready_port is not None and ready_port.next_deadline() is not None:
            ready_port.expire(time.monotonic())
        return events, reap

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

    # procs.py (/proc and pidfds) is asked only once a stop begins, or by --notify: it loads
    # then, not at every start.

    def resume_if_stopped(self, pid: int, pgid: int) -> bool:
        """SIGCONT to pid (its group with pgid) if it is stopped: one read of /proc, only
        when a stop signal is sent."""
        from graceinit import procs

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
        from graceinit import procs

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
        from graceinit import procs

        try:
            fd = procs.open_pidfd(pid)
        except OSError:
            self._pidfd_supported = False
            return False
        if fd is None:
            return False
        self._pidfds[fd] = pid
        if self._poller is None:
            self._poller = self._new_poller()
        self._poller.register(fd, 1)  # select.POLLIN
        return True

    def _unwatch(self, fd: int) -> int:
        assert self._poller is not None  # watch() made it
        self._poller.unregister(fd)
        os.close(fd)
        return self._pidfds.pop(fd)

    def alive(self, pid: int) -> bool:
        from graceinit import procs

        return procs.alive(pid)

    def ancestry(self, pid: int) -> List[int]:
        from graceinit import procs

        return procs.ancestry(pid)

    def exists(self, pid: int) -> bool:
        from graceinit import procs

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
    from graceinit import procs  # with --ledger, at the stop

    if not procs.proc_is_ours():  # whose sockets /proc shows cannot be told
        raise OSError(0, "/proc is not graceinit's PID namespace's")
