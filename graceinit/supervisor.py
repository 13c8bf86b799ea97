"""The one event loop, and the container's life as one sequence.

`Supervisor._lifecycle` is the whole story, read top to bottom:

    start     pre hooks -> spawn the child -> ready file
    running   on the restart signal: a new child on the same sockets; once it is ready
              the old one is stopped (stop signal, grace period, SIGKILL)
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
import heapq
import signal
from typing import TYPE_CHECKING, Callable, Dict, Generator, List, NamedTuple, Optional, Sequence, Set, Tuple

from graceinit import hooks, log, output
from graceinit.config import Argv, Config, death_signal, exit_status, signal_name
from graceinit.events import Event, Exited, Gone, Notified, Signal, Stopped
from graceinit.signals import STOP_SIGNALS
from graceinit.spawn import Environ, Proc, SpawnError

if TYPE_CHECKING:
    from graceinit.drain import TrafficSample

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

    def suspend_with(self, pgid: int) -> None: ...

    def take_back_terminal(self) -> None: ...

    def send_group(self, pgid: int, signum: int) -> None: ...

    def leftovers(self) -> List[int]: ...

    def watch(self, pid: int) -> bool: ...

    def alive(self, pid: int) -> bool: ...

    def ancestry(self, pid: int) -> List[int]: ...

    def exists(self, pid: int) -> bool: ...

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> "TrafficWatch": ...


class TrafficWatch(Protocol):
    """What --stop-delay auto samples (traffic.py; a recorded trace in tests)."""

    def sample(self, now: float) -> "TrafficSample | None": ...

    def describe(self) -> str: ...

    def close(self) -> None: ...


class Phase(enum.Enum):
    PRE_HOOKS = "pre hooks"
    RUNNING = "running"
    STOP_HOOKS = "stop hooks"
    STOP_DELAY = "stop delay"
    GRACE = "grace period"
    CLEANUP = "cleanup"
    POST_HOOKS = "post hooks"


class Wait(NamedTuple):
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
    ) -> None:
        self._config = config
        self._system = system
        self._environ = environ
        self._phase = Phase.PRE_HOOKS
        self._child: Optional[Proc] = None  # the current generation: its status is ours
        self._candidate: Optional[Proc] = None  # a new generation, not yet ready
        self._retiring: List[Proc] = []  # old generations being stopped
        self._ready: Set[int] = set()  # generations that sent READY=1
        self._signaled: Set[int] = set()  # children already sent their stop signal
        self._restart_pending = False
        self._timers: List[Tuple[float, int, Callable[[], None]]] = []  # background deadlines
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
                log.exception("internal error; supervising the child without hooks until it exits")
                lifecycle = self._recover()
                resume = None
                continue
            while not wait.done() and not self._past(wait.deadline):
                self._wait_for_events(wait.deadline)
            resume = wait.done()

    def _wait_for_events(self, deadline: Optional[float]) -> None:
        """Block until an event or the nearest deadline (the sequence's or a background
        one), handle what came, and fire background deadlines that are due."""
        if self._timers:
            deadline = self._timers[0][0] if deadline is None else min(deadline, self._timers[0][0])
        timeout = None if deadline is None else max(0.0, deadline - self._system.now())
        for event in self._system.wait(timeout):
            self._handle(event)
        while self._timers and self._past(self._timers[0][0]):
            _, _, action = heapq.heappop(self._timers)
            try:
                action()
            except Exception:
                log.exception("internal error in a background deadline; carrying on")

    def _after(self, seconds: float, action: Callable[[], None]) -> None:
        heapq.heappush(self._timers, (self._system.now() + seconds, id(action), action))

    def _past(self, deadline: Optional[float]) -> bool:
        return deadline is not None and self._system.now() >= deadline

    def _recover(self) -> Sequence_:
        """The sequence itself failed (a bug). Keep the promise not to die with the child
        alive: go on forwarding and reaping until it exits, then exit as it did."""
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
            elif isinstance(event, Stopped):
                if self._child is not None and event.pid == self._child.pid and self._child.pgid:
                    log.info(f"child {event.pid} stopped from the terminal: following it")
                    self._system.suspend_with(self._child.pgid)
            elif isinstance(event, Gone):
                self._lingering.discard(event.pid)
            elif isinstance(event, Notified):
                self._on_notified(event.sender, event.fields)
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
            self._phase = Phase.RUNNING
            if config.ready_file and not config.notify:
                output.create_ready_file(config.ready_file)  # with --notify: on READY=1
            for signum in self._early_signals:
                self._forward(signum)
            self._early_signals.clear()
            while True:
                yield Wait(lambda: self._stop_signal is not None or not self._main_running()
                           or self._restart_pending)
                if self._stop_signal is None and self._main_running() and self._restart_pending:
                    yield from self._restart()
                    continue
                break

            # stop: stop hooks, stop delay, forward, grace period, SIGKILL
            self._phase = Phase.STOP_HOOKS
            for argv in hooks.commands(config.stop_hooks):
                yield from self._run_hook("stop", argv)
            if self._children_running() and self._stop_signal is not None and self._forwarded_at is None:
                self._phase = Phase.STOP_DELAY
                delay_end = self._capped(self._system.now() + config.stop_delay)
                if config.stop_delay_auto:
                    yield from self._drain(delay_end)
                elif config.stop_delay > 0:
                    log.info(f"stop delay: the child keeps serving for {config.stop_delay:g}s")
                    yield Wait(lambda: not self._children_running() or self._forwarded_at is not None,
                               delay_end)
                if self._children_running() and self._forwarded_at is None:
                    self._forward_stop_signal()
            if self._children_running():
                self._phase = Phase.GRACE
                exited = yield Wait(lambda: not self._children_running(), self._kill_at)
                if not exited:
                    log.warning("grace period over and the child is still running: SIGKILL")
                    self.kill_child()
                    yield Wait(lambda: not self._children_running(), self._system.now() + KILL_WAIT)
            self._status = self._child_exit_status()

        # after the child: leftovers, then post hooks
        self._phase = Phase.CLEANUP  # the ready file went at the stop signal or the child's exit
        self._system.take_back_terminal()
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
        if log.enabled(log.INFO):  # quoting the command costs an import on the start-up path
            log.info(f"started {_show(self._config.command)} as pid {self._child.pid}")

    def _restart(self) -> Sequence_:
        """A new generation on the same sockets; the old one is stopped only once the new
        one is ready. If the new one fails, it is stopped and the old one keeps serving."""
        self._restart_pending = False
        old = self._child
        assert old is not None
        timeout = self._config.ready_timeout
        try:
            new = self._system.spawn_child(self._config.command, self._environ)
        except SpawnError as error:
            log.error(f"restart failed: {error}; pid {old.pid} keeps serving")
            return 0
        self._procs[new.pid] = new
        self._candidate = new
        how = "READY=1" if self._config.notify else f"{timeout:g}s alive"
        log.info(f"restart: started pid {new.pid} beside pid {old.pid}; waiting for {how}")
        yield Wait(
            lambda: new.pid in self._ready or not new.running or self._stop_signal is not None,
            self._system.now() + timeout,
        )
        if self._stop_signal is not None:
            return 0  # the stop sequence stops both generations
        self._candidate = None
        keeps = f"pid {old.pid} keeps serving" if old.running else f"and pid {old.pid} has exited"
        if not new.running:
            status = exit_status(new.wait_status or 0)
            log.error(f"restart failed: pid {new.pid} exited with status {status}; {keeps}")
            return 0
        if self._config.notify and new.pid not in self._ready:
            log.error(f"restart failed: pid {new.pid} not ready after {timeout:g}s; stopping it, {keeps}")
            self._retire(new)
            return 0
        self._child = new
        if self._config.ready_file:
            output.create_ready_file(self._config.ready_file)
        if old.running:
            log.info(f"restart: pid {new.pid} is ready and now the main child; stopping pid {old.pid}")
            self._retire(old)
        else:
            log.warning(f"restart: pid {old.pid} exited during the restart; pid {new.pid} took over")
        return 0

    def _drain(self, deadline: Optional[float]) -> Sequence_:
        """--stop-delay auto: the child keeps serving until requests to it stop arriving
        (drain.py decides), at most until `deadline`; a 2nd stop signal or its exit ends it."""
        from graceinit.drain import Drain, Unavailable

        config, system, child = self._config, self._system, self._child
        over = lambda: not self._children_running() or self._forwarded_at is not None  # noqa: E731
        start = system.now()
        try:
            watch = system.traffic_watch(child.pid if child else 0, config.drain_ignore)
        except Unavailable as error:
            log.warning(f"--stop-delay auto: {error}: waiting the whole {config.stop_delay_max:g}s instead")
            yield Wait(over, deadline)
            return 0
        log.info(f"stop delay: the child keeps serving until requests stop (at most {config.stop_delay_max:g}s);"
                 f" watching {watch.describe()}")
        drain = Drain(start=start, min_s=config.stop_delay_min, max_s=config.stop_delay_max)
        reason = None
        while reason is None:
            try:
                reason = drain.observe(watch.sample(system.now()))
                until = min(drain.next_sample_at(), deadline or float("inf"))
            except Exception:  # a bug must neither cut the wait short nor make it endless
                log.exception("--stop-delay auto: internal error; waiting for the max instead")
                until = deadline or float("inf")
            if reason is None and (yield Wait(over, until)):
                reason = "hurried" if self._forwarded_at is not None else "child exited"
            elif reason is None and self._past(deadline):
                reason = "max"
        watch.close()
        log.info(f"stop delay over after {system.now() - start:.2f}s: {reason} ({drain.sources_seen} source(s),"
                 f" {drain.samples} samples costing {drain.sampling_s * 1000:.0f} ms)")
        return 0

    def _retire(self, proc: Proc) -> None:
        """Stop one generation in the background: stop signal, then SIGKILL after the grace
        period, while the loop goes on serving everything else."""
        self._retiring.append(proc)
        self._send_stop_signal(proc)
        grace = self._config.grace_period
        if grace is not None:
            self._after(grace, lambda: self._kill_retired(proc))

    def _kill_retired(self, proc: Proc) -> None:
        if proc.running:
            log.warning(f"old child {proc.pid} still running after the grace period: SIGKILL")
            self._kill(proc)

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
        elif signum == self._config.restart_signal:
            self._on_restart_signal()
        elif self._child is None and self._phase is Phase.PRE_HOOKS:
            self._early_signals.append(signum)
        else:
            self._forward(signum)

    def _on_restart_signal(self) -> None:
        if self._phase is not Phase.RUNNING or self._stop_signal is not None:
            log.warning(f"restart signal ignored during {self._phase.value}")
        elif self._restart_pending or self._candidate is not None:
            log.info("restart signal during a restart: one more restart queued")
            self._restart_pending = True
        else:
            self._restart_pending = True

    def _on_notified(self, sender: Optional[int], fields: Dict[str, str]) -> None:
        generation = self._generation_of(sender)
        if generation is None:
            log.debug(f"notify message from unknown pid {sender} ignored: {dict(fields)}")
            return
        if "STATUS" in fields:
            log.info(f"pid {generation.pid} status: {fields['STATUS']}")
        if fields.get("READY") == "1" and generation.pid not in self._ready:
            self._ready.add(generation.pid)
            log.info(f"pid {generation.pid} is ready")
            if generation is self._child and self._config.ready_file and self._stop_signal is None:
                output.create_ready_file(self._config.ready_file)
        for flag in ("RELOADING", "STOPPING"):
            if fields.get(flag) == "1":
                log.info(f"pid {generation.pid}: {flag.lower()}")

    def _generation_of(self, sender: Optional[int]) -> Optional[Proc]:
        """The child generation a notify message came from: the sender or an ancestor.

        A sender that is already gone (`systemd-notify --ready` from a script exits, and is
        reaped, before graceinit reads its message) cannot be traced: its message goes to the
        newest generation still waiting to be ready. A live sender outside every generation's
        tree is not ours and is ignored.
        """
        if sender is None:
            return None
        generations = {proc.pid: proc for proc in self._all_children()}
        for pid in self._system.ancestry(sender):
            if pid in generations:
                return generations[pid]
        if not self._system.exists(sender):
            for proc in (self._candidate, self._child):
                if proc is not None and proc.running and proc.pid not in self._ready:
                    return proc
        return None

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
        if not self._children_running():
            return
        if self._phase in (Phase.STOP_HOOKS, Phase.STOP_DELAY) and self._forwarded_at is None:
            self._forward_stop_signal()
        elif self._phase is Phase.GRACE and self._stop_count >= 3:
            log.warning(f"{name} a third time: SIGKILL now")
            self.kill_child()
        elif self._phase is Phase.GRACE:
            for proc in self._all_children():
                self._signal_proc(proc, self._config.rewrite.get(signum, signum))

    def _on_exited(self, pid: int, wait_status: int) -> None:
        self._lingering.discard(pid)
        proc = self._procs.pop(pid, None)
        if proc is None:
            if log.enabled(log.DEBUG):  # an orphan burst can be 10,000 of these: format lazily
                log.debug(f"reaped orphan {pid} (status {exit_status(wait_status)})")
            return
        proc.wait_status = wait_status
        if proc is self._child:
            log.info(f"child {pid} exited with status {exit_status(wait_status)}")
            if self._config.ready_file:
                output.remove_file(self._config.ready_file)
        elif proc is self._candidate or proc in self._retiring:
            log.info(f"{'new' if proc is self._candidate else 'old'} child {pid} exited with status {exit_status(wait_status)}")

    # --- helpers -------------------------------------------------------------------------

    def _forward(self, signum: int) -> None:
        """A signal that is not ours to act on goes to the serving generations."""
        target = self._config.rewrite.get(signum, signum)
        if target == 0:
            log.debug(f"{signal_name(signum)} dropped (rewritten to 0)")
            return
        serving = [proc for proc in (self._child, self._candidate) if proc is not None and proc.running]
        if not serving:
            log.debug(f"{signal_name(signum)} not forwarded: no child running")
        for proc in serving:
            self._signal_proc(proc, target)

    def _forward_stop_signal(self) -> None:
        assert self._stop_signal is not None
        self._forwarded_at = self._system.now()
        grace = self._config.grace_period
        self._kill_at = self._capped(None if grace is None else self._forwarded_at + grace)
        for proc in self._all_children():
            if proc.pid not in self._signaled:
                self._send_stop_signal(proc)

    def _send_stop_signal(self, proc: Proc) -> None:
        self._signaled.add(proc.pid)
        stop = self._stop_signal or signal.SIGTERM  # a restart retires with SIGTERM
        target = self._config.rewrite.get(stop, stop)
        if target:
            log.info(f"sending {signal_name(target)} to child {proc.pid}")
            self._signal_proc(proc, target)

    def _signal_proc(self, proc: Proc, signum: int) -> None:
        if proc.pgid and not self._config.single_child:
            self._system.send_group(proc.pgid, signum)
        else:
            self._system.send(proc.pid, signum)

    def _kill(self, proc: Proc) -> None:
        if proc.pgid:
            self._system.send_group(proc.pgid, signal.SIGKILL)
        self._system.send(proc.pid, signal.SIGKILL)

    def kill_child(self) -> None:
        """SIGKILL every child generation and its group (the grace period is over)."""
        for proc in self._all_children():
            self._kill(proc)

    def _all_children(self) -> List[Proc]:
        """Every generation still running: the current one, a new one, old ones."""
        procs = [self._child, self._candidate, *self._retiring]
        return [proc for proc in procs if proc is not None and proc.running]

    def _children_running(self) -> bool:
        return bool(self._all_children())

    def _main_running(self) -> bool:
        return self._child is not None and self._child.running

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
