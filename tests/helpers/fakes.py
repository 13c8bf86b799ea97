"""The one fake operating system: a recorded history replayed with a fake clock.

A test scripts what the world does (a signal at t=1.0, a child that exits 0.2 s after it is
sent SIGTERM, ...) with `FakeSystem.at` and `Behaviour`, and reads back what graceinit did
and when with `FakeSystem.actions`. `RecordingReporter` keeps every structured event.
"""

from __future__ import annotations

import heapq
import signal
from dataclasses import dataclass, field
from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

from graceinit.config import Config
from graceinit.events import Event, Exited, Gone
from graceinit.lifecycle import Lifecycle
from graceinit.proc import Proc, SpawnError
from graceinit.report import LogReporter
from graceinit.supervisor import Supervisor

TERM, KILL = signal.SIGTERM, signal.SIGKILL


def exited(code: int) -> int:
    return code << 8


def killed(signum: int) -> int:
    return signum


@dataclass
class Behaviour:
    """How a fake process reacts: exit after `runs` seconds, or on a signal."""

    runs: Optional[float] = None
    code: int = 0
    on_signal: Dict[int, float] = field(default_factory=dict)  # signal -> seconds until death


class FakeSystem:
    def __init__(self, behaviours: Dict[str, Behaviour]) -> None:
        self.clock = 0.0
        self.behaviours = behaviours
        self.queue: List[Tuple[float, int, Event]] = []
        self.seq = 0
        self.log: List[Tuple[float, str, object]] = []
        self.procs: Dict[int, Tuple[str, Proc]] = {}
        self.next_pid = 100
        self.leftover_pids: List[int] = []
        self.stubborn_leftovers: set = set()  # leftovers that ignore SIGTERM
        self.unkillable: set = set()  # leftovers stuck in the kernel: no signal ends them
        self.forks_when_signalled: Dict[int, int] = {}  # leftover -> the child it forks as it dies
        self.dying: set = set()
        self.environs: Dict[str, Dict[bytes, bytes]] = {}
        self.parents: Dict[int, int] = {}
        self.on_start: Dict[str, Callable[["FakeSystem", Proc], None]] = {}  # for notify senders that are grandchildren
        self.started: List[Proc] = []
        self.stopped_pids: set = set()  # SIGSTOPped: signals wait until they are resumed
        self.pending: Dict[int, List[int]] = {}
        self.ready_error: Optional[OSError] = None
        self.hook_dirs: Dict[str, List[str]] = {}  # directory -> its executable files
        self.report = RecordingReporter()  # what graceinit said
        # The network namespace (the ledger's reads): counters that rise at recorded times,
        # listeners no process of graceinit's tree holds, what SIGKILL finds in flight.
        self.counter_rises: List[Tuple[float, str, int]] = []
        self.counters_error: Optional[Exception] = None
        self.other_listeners = 0
        self.listeners_error: Optional[Exception] = None
        self.in_flight: Tuple[int, int] = (0, 0)

    # scripting
    def at(self, when: float, event: Event) -> None:
        self.seq += 1
        heapq.heappush(self.queue, (when, self.seq, event))

    def rise(self, when: float, counter: str, by: int) -> None:
        """A TCP counter of the namespace ("Tcp:OutRsts") rises by `by` at `when`."""
        self.counter_rises.append((when, counter, by))

    def actions(self, kind: str) -> List[Tuple[float, object]]:
        return [(t, what) for t, k, what in self.log if k == kind]

    # System
    def now(self) -> float:
        return self.clock

    def wait(self, timeout: Optional[float], ours: Any = None) -> List[Event]:
        if not self.queue:
            assert timeout is not None, "the supervisor would block forever"
            self.clock += timeout
            return []
        when = self.queue[0][0]
        if timeout is not None and when > self.clock + timeout:
            self.clock += timeout
            return []
        self.clock = max(self.clock, when)
        events = []
        while self.queue and self.queue[0][0] <= self.clock:
            event = heapq.heappop(self.queue)[2]
            if isinstance(event, Gone):
                self.dying.discard(event.pid)
            events.append(event)
        return events

    def _start(self, argv: Sequence[str], environ: Dict[bytes, bytes]) -> Proc:
        name = argv[0]
        self.log.append((self.clock, "spawn", name))
        behaviour = self.behaviours.get(name, Behaviour())
        if behaviour.runs == -1:
            raise SpawnError(127, f"cannot run {name!r}: command not found")
        pid = self.next_pid
        self.next_pid += 1
        proc = Proc(pid=pid, pgid=pid, argv=tuple(argv))
        self.procs[pid] = (name, proc)
        self.started.append(proc)
        if name in self.on_start:
            self.on_start[name](self, proc)
        self.environs[name] = environ
        if behaviour.runs is not None:
            self.at(self.clock + behaviour.runs, Exited(pid, exited(behaviour.code)))
        return proc

    def spawn_child(self, argv: Sequence[str], environ: Dict[bytes, bytes]) -> Proc:
        return self._start(argv, environ)

    def spawn_hook(self, argv: Sequence[str], environ: Dict[bytes, bytes]) -> Proc:
        return self._start(argv, environ)

    def _deliver(self, pid: int, signum: int) -> None:
        if pid not in self.procs:
            return
        if pid in self.stopped_pids and signum != KILL:
            self.pending.setdefault(pid, []).append(signum)
            return
        name, _ = self.procs[pid]
        delay = self.behaviours.get(name, Behaviour()).on_signal.get(signum)
        if signum == KILL:
            delay = 0.0
        if delay is not None:
            self.procs.pop(pid)
            self.at(self.clock + delay, Exited(pid, killed(signum)))

    def _deliver_pending(self, pid: int) -> None:
        for signum in self.pending.pop(pid, []):
            self._deliver(pid, signum)

    def send(self, pid: int, signum: int) -> None:
        self.log.append((self.clock, "send", (self._name(pid), signum)))
        if pid in self.leftover_pids:
            if pid not in self.unkillable and (signum == KILL or (signum == TERM and pid not in self.stubborn_leftovers)):
                if pid in self.forks_when_signalled:
                    self.leftover_pids.append(self.forks_when_signalled.pop(pid))
                self.leftover_pids.remove(pid)
                self.dying.add(pid)
                self.at(self.clock + 0.1, Gone(pid))  # alive until the event is delivered
            return
        self._deliver(pid, signum)

    def send_group(self, pgid: int, signum: int) -> None:
        self.log.append((self.clock, "send_group", (self._name(pgid), signum)))
        self._deliver(pgid, signum)

    def _name(self, pid: int) -> str:
        return self.procs[pid][0] if pid in self.procs else str(pid)

    def leftovers(self) -> List[int]:
        return list(self.leftover_pids)

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> Any:
        """No traffic to see here (tests/unit/test_drain.py records some)."""
        from graceinit.drain import Unavailable

        raise Unavailable("the fake system has no traffic to watch")

    def hook_files(self, directory: Optional[str]) -> List[str]:
        return [] if directory is None else list(self.hook_dirs.get(directory, []))

    def take_back_terminal(self) -> None:
        self.log.append((self.clock, "take_back_terminal", None))

    def suspend_with(self, pgid: int) -> None:
        self.log.append((self.clock, "suspend_with", pgid))

    def resume_if_stopped(self, pid: int, pgid: int) -> bool:
        stopped = pid in self.stopped_pids
        if stopped:
            self.stopped_pids.discard(pid)
            self.log.append((self.clock, "resume", self._name(pid)))
            self._deliver_pending(pid)
        return stopped

    def set_ready(self, ready: bool) -> None:
        self.log.append((self.clock, "ready", ready))
        if self.ready_error is not None:
            raise self.ready_error

    def watch(self, pid: int) -> bool:
        return True

    def net_counters(self) -> Dict[str, int]:
        self.log.append((self.clock, "net_counters", None))
        if self.counters_error is not None:
            raise self.counters_error
        # Not from zero: the ledger must count differences, never the values.
        values = {name: 7000 for name in ("Tcp:OutRsts", "Tcp:ActiveOpens", "TcpExt:TCPAbortOnClose",
                                          "TcpExt:TCPAbortOnData", "TcpExt:TCPAbortOnLinger",
                                          "TcpExt:TCPAbortOnMemory", "TcpExt:ListenOverflows",
                                          "TcpExt:ListenDrops")}
        for when, name, by in self.counter_rises:
            if when <= self.clock:
                values[name] += by
        return values

    def foreign_listeners(self) -> int:
        self.log.append((self.clock, "foreign_listeners", None))
        if self.listeners_error is not None:
            raise self.listeners_error
        return self.other_listeners

    def open_connections(self) -> Tuple[int, int]:
        self.log.append((self.clock, "open_connections", None))
        return self.in_flight

    def alive(self, pid: int) -> bool:
        return pid in self.leftover_pids or pid in self.dying

    def ancestry(self, pid: int) -> List[int]:
        return [pid, self.parents[pid]] if pid in self.parents else [pid]

    def exists(self, pid: int) -> bool:
        return pid in self.parents or any(pid == proc.pid for proc in self.started)




class RecordingReporter:
    """Keeps every event the life cycle reports: (level, name, message, fields); and writes
    it to stderr as the real reporter would, for tests that read the log (capfd)."""

    def __init__(self) -> None:
        self.events: List[Tuple[int, str, str, Dict[str, Any]]] = []
        self._log = LogReporter()

    def emit(self, level: int, event: str, msg: str, **fields: Any) -> None:
        self.events.append((level, event, msg, fields))
        self._log.emit(level, event, msg, **fields)

    def enabled(self, level: int) -> bool:
        return True

    def dropped(self) -> int:
        return 0

    def named(self, name: str) -> List[Dict[str, Any]]:
        return [fields for _, event, _, fields in self.events if event == name]


def cfg(**kw: Any) -> Config:
    """A Config for the command `app` (the fake system's usual child)."""
    return Config(command=("app",), **kw)


def run(config: Config, system: FakeSystem) -> int:
    """The whole life against the fake system: the life cycle, resumed by the loop. What
    graceinit did is in `system.actions`, what it said in `system.report`."""
    return Supervisor(system, Lifecycle(config, system, system.report, {b"PATH": b"/bin"})).run()
