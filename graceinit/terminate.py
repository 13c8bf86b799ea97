"""The one way graceinit ends processes: signal, wait until a deadline, SIGKILL, bounded wait.

The grace period, an old generation after a restart and a hook past its timeout go through
`terminate`; only what they are (`Targets`) differs. Leftover processes go through
`end_leftovers`, the same steps in a loop, because they can multiply while being ended.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum (every start pays)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Callable, List, Optional, Sequence

    from graceinit.waits import Steps

from graceinit.proc import Proc
from graceinit.waits import Wait

if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # at run time the protocols are plain documentation

# How long to wait for a SIGKILLed process to be gone before going on without it: a process
# stuck in the kernel (D state, a dead NFS server) cannot be hurried, and the sequence must
# not hang on it.
KILL_WAIT = 5.0

EXITED, KILLED, STUCK = "exited", "killed", "stuck"


class Targets(Protocol):
    """A set of processes to end."""

    # Without pidfds (Linux < 5.3) the death of a non-child wakes nobody: look this often.
    poll_interval: Optional[float]

    def signal(self, signum: int) -> None: ...

    def kill(self) -> None: ...

    def gone(self) -> bool: ...


class Escalation(Protocol):
    """Something that can hurry a termination along (a stop signal sent again)."""

    def pending(self) -> bool: ...

    def take(self) -> Optional[int]:
        """The signal to send now (SIGKILL: stop waiting), or None."""


class _Never:
    def pending(self) -> bool:
        return False

    def take(self) -> Optional[int]:
        return None


NEVER = _Never()


def terminate(
    now: Callable[[], float],
    targets: Targets,
    signum: Optional[int],
    deadline: Optional[float],
    escalation: Escalation = NEVER,
    before_kill: Callable[[str], None] = lambda reason: None,
) -> Steps[str]:
    """Send `signum` (None: send nothing, just wait), wait until the targets are gone or the
    deadline (None: no deadline) passes, then SIGKILL and wait at most KILL_WAIT.

    Returns EXITED (gone before any SIGKILL), KILLED, or STUCK (still there after KILL_WAIT).
    `before_kill` hears why the SIGKILL comes ("deadline" or "escalation") just before it.
    """
    if signum:
        targets.signal(signum)
    while not targets.gone():
        yield Wait(lambda: targets.gone() or escalation.pending(), _step(now, targets, deadline))
        if targets.gone():
            break
        extra = escalation.take() if escalation.pending() else None
        if extra == signal.SIGKILL:
            before_kill("escalation")
            return (yield from kill(now, targets))
        if extra:
            targets.signal(extra)
        elif deadline is not None and now() >= deadline:
            before_kill("deadline")
            return (yield from kill(now, targets))
    return EXITED


def kill(now: Callable[[], float], targets: Targets) -> Steps[str]:
    """SIGKILL, then wait at most KILL_WAIT for the targets to be gone."""
    targets.kill()
    deadline = now() + KILL_WAIT
    while not targets.gone() and now() < deadline:
        yield Wait(targets.gone, _step(now, targets, deadline))
    return KILLED if targets.gone() else STUCK


def _step(now: Callable[[], float], targets: Targets, deadline: Optional[float]) -> Optional[float]:
    if targets.poll_interval is None:
        return deadline
    look = now() + targets.poll_interval
    return look if deadline is None else min(deadline, look)


class Signaller(Protocol):
    """The part of the System seam that sends signals."""

    def send(self, pid: int, signum: int) -> None: ...

    def send_group(self, pgid: int, signum: int) -> None: ...

    def resume_if_stopped(self, pid: int, pgid: int) -> bool: ...

    def alive(self, pid: int) -> bool: ...

    def watch(self, pid: int) -> bool: ...


class Children:
    """Processes graceinit started (children, hooks): their exit is reaped, so `running` is
    exact. Signals go to each one's process group unless `whole_group` is off."""

    poll_interval: Optional[float] = None

    def __init__(self, system: Signaller, procs: Callable[[], Sequence[Proc]], whole_group: bool = True) -> None:
        self._system = system
        self._procs = procs
        self._whole_group = whole_group

    def signal(self, signum: int) -> None:
        """A signal meant to end them: a stopped process gets SIGCONT too, or it could not act
        on it and the grace period would wait for nothing."""
        self.send_only(signum)
        for proc in self._running():
            self._system.resume_if_stopped(proc.pid, proc.pgid if self._whole_group else 0)

    def send_only(self, signum: int) -> None:
        """A signal passed on as it is (forwarding)."""
        send(self._system, self._running(), signum, self._whole_group)

    def kill(self) -> None:
        for proc in self._running():
            if proc.pgid:
                self._system.send_group(proc.pgid, signal.SIGKILL)
            self._system.send(proc.pid, signal.SIGKILL)

    def gone(self) -> bool:
        return not self._running()

    def _running(self) -> List[Proc]:
        return [proc for proc in self._procs() if proc.running]


def send(system: Signaller, procs: Sequence[Proc], signum: int, whole_group: bool) -> None:
    """`signum` to each process's group (or to the process alone: no group of its own, or
    --single-child). Forwarding calls this directly: the hot path of an init."""
    for proc in procs:
        if proc.pgid and whole_group:
            system.send_group(proc.pgid, signum)
        else:
            system.send(proc.pid, signum)


class Pids:
    """Processes graceinit did not start (leftovers): known by pid, watched through pidfds,
    or looked at every LEFTOVER_POLL where the kernel has none."""

    LEFTOVER_POLL = 0.05

    def __init__(self, system: Signaller, pids: Sequence[int]) -> None:
        self._system = system
        self.pids = list(pids)
        self.lingering = set(self.pids)
        self.killed: List[int] = []
        self.poll_interval: Optional[float] = None
        for pid in self.pids:
            if not system.watch(pid):
                self.poll_interval = self.LEFTOVER_POLL

    def signal(self, signum: int) -> None:
        for pid in sorted(self.lingering):
            self._system.send(pid, signum)
            self._system.send(pid, signal.SIGCONT)  # a stopped process cannot act on it

    def kill(self) -> None:
        self.killed = sorted(self.lingering)
        for pid in self.killed:
            self._system.send(pid, signal.SIGKILL)

    def forget(self, pid: int) -> None:
        self.lingering.discard(pid)

    def gone(self) -> bool:
        self.lingering = {pid for pid in self.lingering if self._system.alive(pid)}
        return not self.lingering


class LeftoverOutcome:
    """What became of the leftovers: pids sent SIGTERM, pids SIGKILLed, pids still alive when
    graceinit gave up on them."""

    __slots__ = ("signalled", "killed", "survivors")

    def __init__(self) -> None:
        self.signalled: List[int] = []
        self.killed: List[int] = []
        self.survivors: List[int] = []

    def ended(self) -> int:
        """How many leftovers were signalled at all."""
        return len(set(self.signalled) | set(self.killed))


def end_leftovers(
    now: Callable[[], float],
    system: Signaller,
    listing: Callable[[], List[int]],
    pids: Sequence[int],
    deadline: float,
    escalation: Escalation = NEVER,
    before_kill: Callable[[List[int], str], None] = lambda pids, reason: None,
) -> Steps[LeftoverOutcome]:
    """End every leftover: SIGTERM, SIGKILL at `deadline`; and look again each time the ones
    listed are gone, because a leftover may fork meanwhile (a daemon re-forking to escape, or
    just a child started on the way out). A newcomer gets the SIGTERM and what is left of the
    grace; after `deadline`, SIGKILL straight away. As a subreaper graceinit must not exit while
    a process it adopted lives (not PID 1, nobody kills it after graceinit), so the hunt goes
    on until none is left, bounded: KILL_WAIT past `deadline`. What still lives then (stuck in
    the kernel, or forking faster than it can be killed) is the outcome's `survivors`.

    `pids` is the first listing; `listing` lists again. An `escalation` (a third stop signal)
    ends the grace at once. `before_kill` hears the pids of the first SIGKILL and why
    ("deadline" or "escalation"); later rounds are only counted: a re-forking process would
    fill the log."""
    outcome = LeftoverOutcome()
    bound = deadline + KILL_WAIT
    reason = "deadline"
    signalled, killed = set(), set()
    while pids:
        targets = Pids(system, pids)
        if now() < deadline:
            fresh = [pid for pid in targets.pids if pid not in signalled]
            for pid in fresh:
                system.send(pid, signal.SIGTERM)
                system.send(pid, signal.SIGCONT)  # a stopped process cannot act on it
            signalled.update(fresh)
            outcome.signalled.extend(fresh)
            yield Wait(lambda: targets.gone() or escalation.pending(), _step(now, targets, deadline))
            extra = escalation.take() if escalation.pending() else None
            if extra == signal.SIGKILL:
                deadline, reason = now(), "escalation"
                bound = deadline + KILL_WAIT
            elif extra:
                targets.signal(extra)
        elif now() < bound:
            if not killed:
                before_kill(sorted(targets.lingering), reason)
            targets.kill()
            outcome.killed.extend(pid for pid in targets.killed if pid not in killed)
            killed.update(targets.killed)
            yield Wait(targets.gone, _step(now, targets, bound))
        else:
            outcome.survivors = sorted(pids)
            break
        pids = listing()
    return outcome
