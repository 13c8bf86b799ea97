"""The one event loop, and the container's life as one sequence.

`Supervisor._lifecycle` is the whole story, read top to bottom:

    start     pre hooks -> spawn the child -> ready file
    stop      (stop signal, or the child exits) -> stop hooks -> stop delay
              -> forward the (rewritten) signal -> grace period -> SIGKILL the child's group
    after     leftover processes: SIGTERM, SIGKILL after --leftover-grace -> post hooks
    exit      the child's status, remapped

It is a generator: wherever the sequence has to wait (a hook running, a delay, a grace
period) it yields a `Wait` — a condition and a deadline — and the loop in `run` resumes it
once the condition holds or the deadline passes. Meanwhile the loop keeps handling events:
signals are forwarded, exits reaped, and extra stop signals hurry the sequence along
(`_on_stop_signal`). Nothing sleeps: the loop blocks in the kernel until an event or the
next deadline, so an idle graceinit costs nothing.

The system (processes, signals, the clock) is behind `System`, so the sequence can be
replayed in unit tests with recorded events and a fake clock.
"""

from __future__ import annotations

import enum
import signal
from dataclasses import dataclass
from typing import Callable, Dict, Generator, List, Optional, Sequence, Set

from graceinit import hooks, log, output
from graceinit.config import Argv, Config, death_signal, exit_status, signal_name
from graceinit.events import Event, Exited, Gone, Signal
from graceinit.signals import STOP_SIGNALS
from graceinit.spawn import Environ, Proc, SpawnError
from graceinit.terminal import Session

try:
    from typing import Protocol
except ImportError:  # pragma: no cover - Python < 3.8 is not supported anyway
    Protocol = object  # type: ignore[assignment,misc]

INTERNAL_ERROR = 70
HOOK_TIMED_OUT = 124
# How long to wait for a SIGKILLed process to be gone before going on without it (a process
# stuck in the kernel cannot be hurried, and the sequence must not hang on it).
KILL_WAIT = 5.0
# Without pidfds (Linux < 5.3) the death of a grandchild wakes nobody: look this often, and
# only while leftovers are being stopped.
LEFTOVER_POLL = 0.05


class System(Protocol):
    """Everything the supervisor asks of the operating system."""

    def now(self) -> float: ...

    def wait(self, timeout: Optional[float]) -> List[Event]: ...

    def spawn_child(self, argv: Sequence[str], environ: Environ) -> Proc: ...

    def spawn_hook(self, argv: Sequence[str], environ: Environ) -> Proc: ...

    def send(self, pid: int, signum: int) -> None: ...

    def send_group(self, pgid: int, signum: int) -> None: ...

    def leftovers(self) -> List[int]: ...

    def watch(self, pid: int) -> bool: ...

    def alive(self, pid: int) -> bool: ...


class Phase(enum.Enum):
    PRE_HOOKS = "pre hooks"
    RUNNING = "running"
    STOP_HOOKS = "stop hooks"
    STOP_DELAY = "stop delay"
    GRACE = "grace period"
    CLEANUP = "cleanup"
    POST_HOOKS = "post hooks"


@dataclass(frozen=True)
class Wait:
    """Resume the sequence when `done()` holds or at `deadline` (monotonic seconds)."""

    done: Callable[[], bool]
    deadline: Optional[float] = None


Sequence_ = Generator[Wait, bool, int]


class Supervisor:
    def __init__(
        self,
        config: Config,
        system: System,
        environ: Environ,
        session: Session = Session.NEW,
    ) -> None:
        self._config = config
        self._system = system
        self._environ = environ
        self._session = session
        self._phase = Phase.PRE_HOOKS
        self._child: Optional[Proc] = None
        self._hook: Optional[Proc] = None  # the hook running now, if any
        self._procs: Dict[int, Proc] = {}  # started by us, not yet reaped
        self._early_signals: List[int] = []  # arrived before the child existed
        self._stop_signal: Optional[int] = None
        self._stop_count = 0
        self._stopped_at: Optional[float] = None
        self._forwarded_at: Optional[float] = None
        self._kill_at: Optional[float] = None
        self._lingering: Set[int] = set()  # leftover processes not yet seen to die
        self._unwatched = False
        self._status = 0

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Run the container's life; returns graceinit's exit status."""
        self._warn_about_budget()
        lifecycle: Sequence_ = self._lifecycle()
        resume: Optional[bool] = None
        while True:
            try:
                wait = lifecycle.send(resume) if resume is not None else next(lifecycle)
            except StopIteration as finished:
                return int(finished.value)
            except Exception:
                lifecycle = self._recover()
                resume = None
                continue
            while not wait.done() and not self._past(wait.deadline):
                timeout = None if wait.deadline is None else max(0.0, wait.deadline - self._system.now())
                for event in self._system.wait(timeout):
                    self._handle(event)
            resume = wait.done()

    def _past(self, deadline: Optional[float]) -> bool:
        return deadline is not None and self._system.now() >= deadline

    def _recover(self) -> Sequence_:
        """The sequence itself failed (a bug). Keep the promise not to die with the child
        alive: go on forwarding and reaping until it exits, then exit as it did."""
        log.exception("internal error; supervising the child without hooks until it exits")
        child = self._child
        if child is not None and child.running:
            yield Wait(lambda: not child.running)
            return self._exit_code()
        return INTERNAL_ERROR

    def _handle(self, event: Event) -> None:
        try:
            if isinstance(event, Signal):
                self._on_signal(event.signum)
            elif isinstance(event, Exited):
                self._on_exited(event.pid, event.wait_status)
            elif isinstance(event, Gone):
                self._lingering.discard(event.pid)
        except Exception:
            log.exception(f"internal error while handling {event}; carrying on")

    # --- the sequence --------------------------------------------------------------------

    def _lifecycle(self) -> Sequence_:
        config = self._config
        if config.ready_file:
            output.remove_file(config.ready_file)  # a stale one from an earlier run

        # start: pre hooks, then the child
        self._phase = Phase.PRE_HOOKS
        for argv in hooks.commands(config.pre_hooks):
            status = yield from self._run_hook("pre", argv)
            if self._stop_signal is not None:
                break
            if status != 0:
                log.error(f"pre hook {_show(argv)} failed with status {status}: not starting the child")
                self._status = status
                break
        else:
            if self._stop_signal is None:
                self._start_child()
        if self._child is None and self._stop_signal is not None:
            log.info(f"{signal_name(self._stop_signal)} before the child started: not starting it")
            self._status = 128 + self._stop_signal

        if self._child is not None:
            child = self._child
            self._phase = Phase.RUNNING
            if config.ready_file:
                output.create_ready_file(config.ready_file)
            for signum in self._early_signals:
                self._forward(signum)
            self._early_signals.clear()
            yield Wait(lambda: self._stop_signal is not None or not child.running)

            # stop: stop hooks, stop delay, forward, grace period, SIGKILL
            self._phase = Phase.STOP_HOOKS
            for argv in hooks.commands(config.stop_hooks):
                yield from self._run_hook("stop", argv)
            if child.running and self._forwarded_at is None:
                self._phase = Phase.STOP_DELAY
                delay_end = self._capped(self._system.now() + config.stop_delay)
                if config.stop_delay > 0:
                    log.info(f"stop delay: the child keeps serving for {config.stop_delay:g}s")
                    yield Wait(lambda: not child.running or self._forwarded_at is not None, delay_end)
                if child.running and self._forwarded_at is None:
                    self._forward_stop_signal()
            if child.running:
                self._phase = Phase.GRACE
                exited = yield Wait(lambda: not child.running, self._kill_at)
                if not exited:
                    log.warning("grace period over and the child is still running: SIGKILL")
                    self.kill_child()
                    yield Wait(lambda: not child.running, self._system.now() + KILL_WAIT)
            self._status = self._child_exit_status()

        # after the child: leftovers, then post hooks
        self._phase = Phase.CLEANUP
        if config.ready_file:
            output.remove_file(config.ready_file)
        if self._session is Session.FOREGROUND:
            from graceinit.terminal import reclaim_foreground

            reclaim_foreground()
        yield from self._stop_leftovers()

        self._phase = Phase.POST_HOOKS
        for argv in hooks.commands(config.post_hooks):
            yield from self._run_hook("post", argv)
        code = self._exit_code()
        log.info(f"exiting with status {code}")
        return code

    def _start_child(self) -> None:
        try:
            self._child = self._system.spawn_child(self._config.command, self._environ)
        except SpawnError as error:
            log.error(str(error))
            self._status = error.status
            return
        self._procs[self._child.pid] = self._child
        log.info(f"started {_show(self._config.command)} as pid {self._child.pid}")

    def _run_hook(self, phase: str, argv: Argv) -> Sequence_:
        """Run one hook to its end or its timeout; returns its exit status."""
        child = self._child
        environ = hooks.environ_for(
            self._environ,
            phase,
            child.pid if child else None,
            exit_code=self._exit_code() if phase == "post" else None,
            exit_signal=self._child_death_signal() if phase == "post" else None,
        )
        log.info(f"{phase} hook: {_show(argv)}")
        try:
            hook = self._system.spawn_hook(argv, environ)
        except SpawnError as error:
            log.warning(f"{phase} hook: {error}")
            return error.status
        self._procs[hook.pid] = hook
        self._hook = hook
        try:
            timeout = self._config.hook_timeout
            finished = yield Wait(lambda: not hook.running, self._system.now() + timeout)
            if not finished:
                log.warning(f"{phase} hook {_show(argv)} still running after {timeout:g}s: killing it")
                self._system.send_group(hook.pgid, signal.SIGKILL)
                yield Wait(lambda: not hook.running, self._system.now() + KILL_WAIT)
                return HOOK_TIMED_OUT
        finally:
            self._hook = None
        status = exit_status(hook.wait_status or 0)
        if status != 0 and phase != "pre":
            log.warning(f"{phase} hook {_show(argv)} failed with status {status}; going on")
        return status

    def _stop_leftovers(self) -> Sequence_:
        """SIGTERM whatever still runs under us, SIGKILL it after --leftover-grace, and wait
        for it: tini and dumb-init leave it to be SIGKILLed by the kernel mid-write."""
        pids = self._system.leftovers()
        if not pids:
            return 0
        grace = self._config.leftover_grace
        log.info(f"{len(pids)} leftover process(es) {pids}: SIGTERM, SIGKILL after {grace:g}s")
        self._signal_leftovers(pids, signal.SIGTERM)
        yield from self._until_leftovers_gone(self._system.now() + grace)
        pids = self._system.leftovers()
        if pids:
            log.warning(f"leftover process(es) {pids} still running after {grace:g}s: SIGKILL")
            self._signal_leftovers(pids, signal.SIGKILL)
            yield from self._until_leftovers_gone(self._system.now() + KILL_WAIT)
        return 0

    def _signal_leftovers(self, pids: List[int], signum: int) -> None:
        for pid in pids:
            self._system.send(pid, signum)
            if signum != signal.SIGKILL:
                self._system.send(pid, signal.SIGCONT)  # a stopped process cannot act on it
            if pid not in self._lingering:
                if self._system.watch(pid):
                    self._lingering.add(pid)
                elif self._system.alive(pid):
                    self._lingering.add(pid)
                    self._unwatched = True

    def _until_leftovers_gone(self, deadline: float) -> Sequence_:
        while True:
            self._lingering = {pid for pid in self._lingering if self._system.alive(pid)}
            if not self._lingering or self._past(deadline):
                return 0
            step = deadline
            if self._unwatched:
                step = min(deadline, self._system.now() + LEFTOVER_POLL)
            yield Wait(lambda: not self._lingering, step)

    # --- events --------------------------------------------------------------------------

    def _on_signal(self, signum: int) -> None:
        if signum in STOP_SIGNALS:
            self._on_stop_signal(signum)
        elif self._child is None and self._phase is Phase.PRE_HOOKS:
            self._early_signals.append(signum)
        else:
            self._forward(signum)

    def _on_stop_signal(self, signum: int) -> None:
        """The first stop signal starts the sequence; each further one hurries it: the 2nd
        forwards at once (skipping what is left of the stop delay), the 3rd SIGKILLs."""
        self._stop_count += 1
        name = signal_name(signum)
        log.info(f"{name} received during {self._phase.value} (stop signal #{self._stop_count})")
        if self._stop_signal is None:
            self._stop_signal = signum
            self._stopped_at = self._system.now()
            if self._config.ready_file:
                output.remove_file(self._config.ready_file)  # readiness goes red first
            if self._phase is Phase.PRE_HOOKS and self._hook is not None:
                self._system.send_group(self._hook.pgid, signum)  # let it abort
            return  # the sequence, waiting on _stop_signal, takes it from here
        if self._child is None or not self._child.running:
            return
        if self._phase in (Phase.STOP_HOOKS, Phase.STOP_DELAY) and self._forwarded_at is None:
            self._forward_stop_signal()
        elif self._phase is Phase.GRACE and self._stop_count >= 3:
            log.warning(f"{name} a third time: SIGKILL now")
            self.kill_child()
        elif self._phase is Phase.GRACE:
            self._forward(signum)

    def _on_exited(self, pid: int, wait_status: int) -> None:
        self._lingering.discard(pid)
        proc = self._procs.pop(pid, None)
        if proc is None:
            log.debug(f"reaped orphan {pid} (status {exit_status(wait_status)})")
            return
        proc.wait_status = wait_status
        if proc is self._child:
            log.info(f"child {pid} exited with status {exit_status(wait_status)}")
            if self._config.ready_file:
                output.remove_file(self._config.ready_file)

    # --- helpers -------------------------------------------------------------------------

    def _forward(self, signum: int) -> None:
        target = self._config.rewrite.get(signum, signum)
        if target == 0:
            log.debug(f"{signal_name(signum)} dropped (rewritten to 0)")
            return
        if self._child is None or not self._child.running:
            log.debug(f"{signal_name(signum)} not forwarded: no child running")
            return
        self._signal_child(target)

    def _forward_stop_signal(self) -> None:
        assert self._stop_signal is not None
        self._forwarded_at = self._system.now()
        grace = self._config.grace_period
        self._kill_at = self._capped(None if grace is None else self._forwarded_at + grace)
        target = self._config.rewrite.get(self._stop_signal, self._stop_signal)
        if target:
            log.info(f"forwarding {signal_name(target)} to the child")
            self._signal_child(target)

    def _signal_child(self, signum: int) -> None:
        child = self._child
        assert child is not None
        if child.pgid and not self._config.single_child:
            self._system.send_group(child.pgid, signum)
        else:
            self._system.send(child.pid, signum)

    def kill_child(self) -> None:
        """SIGKILL the child and its group (the grace period is over)."""
        child = self._child
        if child is None or not child.running:
            return
        if child.pgid:
            self._system.send_group(child.pgid, signal.SIGKILL)
        self._system.send(child.pid, signal.SIGKILL)

    def _capped(self, deadline: Optional[float]) -> Optional[float]:
        """Keep a stop deadline inside --termination-budget, leaving the post hooks and the
        leftover cleanup their time before the kubelet's SIGKILL."""
        budget = self._config.termination_budget
        if budget is None or self._stopped_at is None:
            return deadline
        cap = self._stopped_at + budget - self._reserved_after_child()
        return cap if deadline is None else min(deadline, cap)

    def _reserved_after_child(self) -> float:
        post = len(hooks.commands(self._config.post_hooks))
        return self._config.leftover_grace + post * self._config.hook_timeout

    def _warn_about_budget(self) -> None:
        config = self._config
        budget = config.termination_budget
        if budget is None:
            return
        stop = len(hooks.commands(config.stop_hooks)) * config.hook_timeout
        fixed = stop + config.stop_delay + self._reserved_after_child()
        grace = config.grace_period
        if grace is None:
            if fixed >= budget:
                log.warning(
                    f"--termination-budget {budget:g}s leaves no grace period: stop hooks {stop:g}s"
                    f" + stop delay {config.stop_delay:g}s + cleanup and post hooks"
                    f" {self._reserved_after_child():g}s = {fixed:g}s"
                )
            return
        if fixed + grace > budget:
            log.warning(
                f"--termination-budget {budget:g}s is less than stop hooks {stop:g}s + stop delay"
                f" {config.stop_delay:g}s + grace period {grace:g}s + cleanup and post hooks"
                f" {self._reserved_after_child():g}s = {fixed + grace:g}s; the grace period"
                " will be cut short"
            )

    def _child_exit_status(self) -> int:
        child = self._child
        if child is None or child.wait_status is None:
            return self._status
        return exit_status(child.wait_status)

    def _child_death_signal(self) -> Optional[str]:
        child = self._child
        if child is None or child.wait_status is None:
            return None
        signum = death_signal(child.wait_status)
        return signal_name(signum) if signum else None

    def _exit_code(self) -> int:
        status = self._child_exit_status() if self._child else self._status
        return self._config.remap_exit.get(status, status)


def _show(argv: Sequence[str]) -> str:
    import shlex

    shown = " ".join(shlex.quote(arg) for arg in argv).replace("\n", "\\n")
    return shown if len(shown) <= 200 else shown[:197] + "..."
