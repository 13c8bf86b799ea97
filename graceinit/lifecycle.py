"""The container's life, read top to bottom: `Lifecycle.run`.

    start     ready file cleared -> pre hooks -> spawn the child -> ready file
    running   on the restart signal: a new generation on the same sockets (generations.py)
    stop      (stop signal, or the child exits) -> ready file removed -> stop hooks
              -> stop delay (fixed, or until traffic stops: stopdelay.py)
              -> forward the (rewritten) stop signal -> grace period -> SIGKILL
    after     leftover processes: SIGTERM, SIGKILL after --leftover-grace -> post hooks
              -> leftovers the post hooks left -> the termination report
    exit      the child's status, remapped

The life cycle owns its phases (named below) and what each event means in each: the loop in
supervisor.py only waits, hands each event to `handle`, and resumes the steps. Handlers only
record facts (facts.py); the life cycle reads them each time it is resumed. What a second and
a third stop signal do is one table (`STOP_SIGNAL_TABLE`, docs/stop-sequence.md) and one
escalation (`StopSignalsAgain`), used by every phase and by the fallback (fallback.py) that
takes over if the life cycle itself fails. Every step is reported as an event (report.py).
The operating system is behind `System` (system.py), so unit tests replay the whole life
against a fake one.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum (every start pays)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, Callable, Dict, List, Optional, Sequence, Tuple

    from graceinit.budget import Budget
    from graceinit.events import Event
    from graceinit.ledger import Ledger
    from graceinit.terminate import Children
    from graceinit.waits import Steps

from graceinit.config import Argv, Config, Hooks, death_signal, exit_status, signal_name
from graceinit.events import Exited, Notified, Signal, Stopped
from graceinit.facts import HURRY, KILL_NOW, Facts, StopRequest
from graceinit.generations import Generations, Restart, restart
from graceinit.log import DEBUG, ERROR, INFO, NOTICE, WARNING
from graceinit.proc import Environ, Proc, SpawnError, send
from graceinit.report import Reporter, StopRecord, internal_error, termination_message
from graceinit.waits import Wait

INTERNAL_ERROR = 70

# --- the phases, and what each stop signal does in each ---------------------------------

STARTING = "starting"
PRE_HOOKS = "pre hooks"
RUNNING = "running"
RESTART = "restart"
STOP_HOOKS = "stop hooks"
STOP_DELAY = "stop delay"
GRACE_PERIOD = "grace period"
CLEANUP = "cleanup"
POST_HOOKS = "post hooks"

PHASE_WORDS = {
    STARTING: "while graceinit starts",
    PRE_HOOKS: "during the pre hooks",
    RUNNING: "while the child runs",
    RESTART: "during a restart",
    STOP_HOOKS: "during the stop hooks",
    STOP_DELAY: "during the stop delay",
    GRACE_PERIOD: "during the grace period",
    CLEANUP: "while cleaning up leftovers",
    POST_HOOKS: "during the post hooks",
}

# What the 1st, 2nd and 3rd stop signal do when they arrive in each phase. This is the
# behaviour's one statement: docs/stop-sequence.md shows it (a unit test keeps them equal),
# and each row's behaviour has a test of its own.
STOP_SIGNAL_TABLE: Tuple[Tuple[str, str, str, str], ...] = (
    (STARTING,
     "the child is never started; graceinit exits 128+signal after the post hooks",
     "nothing more to stop", "nothing more to stop"),
    (PRE_HOOKS,
     "goes to the running pre hook (its group), so it can abort; the child is never started",
     "goes to the pre hook again", "SIGKILLs the pre hook"),
    (RUNNING,
     "starts the stop sequence: ready file removed, stop hooks",
     "(arriving together with the first) as during the stop hooks",
     "(arriving together with the first) as during the stop hooks"),
    (RESTART,
     "abandons the restart; the stop sequence stops every generation",
     "as during the stop hooks", "as during the stop hooks"),
    (STOP_HOOKS,
     "(the child exited on its own) noted; the stop hooks run on",
     "SIGTERM to the running stop hook's group, the other stop hooks and the stop delay are"
     " skipped, the stop signal is forwarded at once",
     "SIGKILLs the child's group and the stop hook's group"),
    (STOP_DELAY,
     "-",
     "ends the stop delay: the stop signal is forwarded at once",
     "SIGKILLs the child's group"),
    (GRACE_PERIOD,
     "-",
     "forwarded to the child again",
     "SIGKILLs the child's group"),
    (CLEANUP,
     "(the child is gone) noted",
     "noted: leftovers already have SIGTERM",
     "SIGKILLs the leftover processes at once"),
    (POST_HOOKS,
     "(the child is gone) noted; the post hook runs on (at most --hook-timeout)",
     "noted",
     "SIGKILLs the running post hook's group; the next post hooks still run"),
)


def _nothing(signum: int) -> int:
    return 0


def _same(signum: int) -> int:
    return signum


class StopSignalsAgain:
    """An escalation (terminate.py) by stop signals after the first `answered` ones: each
    gets `resend(its signal)` (0: nothing is sent), and the third in all is SIGKILL."""

    __slots__ = ("_facts", "_resend", "_seen")

    def __init__(self, facts: Facts, answered: int, resend: Callable[[int], int] = _nothing) -> None:
        self._facts = facts
        self._resend = resend
        self._seen = answered

    def pending(self) -> bool:
        return self._facts.stop_count > self._seen

    def take(self) -> Optional[int]:
        self._seen += 1
        if self._seen >= KILL_NOW:
            return signal.SIGKILL
        return self._resend(self._facts.stops[self._seen - 1].signum) or None


def _show(argv: Sequence[str]) -> str:
    """A command as a person would type it (hooks.show): hooks.py loads when a hook runs or
    a command is shown, not on every start."""
    from graceinit.hooks import show

    return show(argv)


def _load_for_the_stop() -> None:
    """The modules only a stop uses, loaded once the child is forked: off the path from
    graceinit's exec to the child's (~1 ms), and in place before a stop signal, whose forward
    must not wait for an import. Where they are used they are imported again (a look-up),
    for the paths that reach the stop without a child (a pre hook failed, a stop signal came
    first)."""
    from graceinit import budget, terminate  # noqa: F401


def grace_escalation(facts: Facts, rewrite: Callable[[int], int]) -> StopSignalsAgain:
    """Once the stop signal is forwarded: the first stop signal, and a second one already
    received, are answered by that forward (the second hurried it); a later second one is
    forwarded again, and the third SIGKILLs."""
    return StopSignalsAgain(facts, min(facts.stop_count, HURRY), rewrite)


# The stop's boundaries the ledger reads the TCP counters at: the phase that starts there.
_LEDGER_BOUNDARIES = {STOP_HOOKS: "stop", GRACE_PERIOD: "forward", CLEANUP: "exit"}


class Lifecycle:
    def __init__(self, config: Config, system: Any, report: Reporter, environ: Environ) -> None:
        self.config = config
        self.system = system
        self.report = report
        self.environ = environ
        self.facts = Facts()
        self.generations = Generations()
        # Steps that run beside the life cycle (an old generation being stopped, a stop hook
        # cut short): the loop takes them from here and resumes them.
        self.beside: List[Steps[Any]] = []
        self.phase = STARTING
        self.phase_started = system.now()
        # graceinit's status when the child never gave one: a pre hook's, a failed spawn's,
        # 128+signal when stopped before the child started.
        self.status_without_child: Optional[int] = None
        self.record: Optional[StopRecord] = None
        # The ledger (ledger.py): the TCP counters read at each stop boundary reached, or the
        # error; the Ledger itself is made when first needed, off the stop's path.
        self.counters: Dict[str, Any] = {}
        self.ledger: Optional[Ledger] = None
        self.post_hooks_started = False
        # What the ready file says now: nothing, since start-up (output.prepare) removed a
        # stale one before anything started.
        self._ready = False
        self._restarts_done = 0
        self.survivors: List[int] = []  # leftovers given up on (terminate.end_leftovers)
        # budget.py and terminate.py are the stop's: see _load_for_the_stop().
        self._budget: Optional[Budget] = None
        if config.termination_budget is not None:  # counts the post hooks there are now
            self._budget = self._budget_now()

    @property
    def budget(self) -> Budget:
        if self._budget is None:
            self._budget = self._budget_now()
        return self._budget

    def _budget_now(self) -> Budget:
        from graceinit.budget import budget_for

        config = self.config
        return budget_for(
            config.termination_budget,
            config.leftover_grace,
            len(self.hook_commands(config.post_hooks)) if config.termination_budget is not None else 0,
            config.hook_timeout,
        )

    def steps(self) -> Steps[int]:
        """The life cycle; if it fails (a bug), the fallback keeps the PID-1 promise."""
        try:
            self._warn_about_budget()
            return (yield from self.run())
        except Exception:
            internal_error(self.report, "internal error in the stop sequence; falling back to:"
                           " forward, grace period, SIGKILL, post hooks")
        from graceinit.fallback import fallback  # only after a bug

        return (yield from fallback(self))

    # --- the life cycle ------------------------------------------------------------------

    def run(self) -> Steps[int]:
        config, facts, generations = self.config, self.facts, self.generations

        # start: pre hooks, then the child
        self._enter(PRE_HOOKS)
        for argv in self.hook_commands(config.pre_hooks):
            # each stop signal goes to the pre hook, so that it can abort; the third SIGKILLs
            status = yield from self._run_hook("pre", argv, StopSignalsAgain(facts, 0, _same))
            if facts.stop is not None:
                break
            if status != 0:
                self._say(ERROR, "pre_hook_failed", f"pre hook {_show(argv)} failed with status {status}:"
                          " not starting the child", command=_show(argv), status=status)
                self.status_without_child = status
                break
        if self.status_without_child is None and facts.stop is None:
            self._start_child()
            _load_for_the_stop()
        if generations.current is None and facts.stop is not None:
            name = signal_name(facts.stop.signum)
            self._say(INFO, "not_started", f"{name} before the child started: not starting it", signal=name)
            self.status_without_child = 128 + facts.stop.signum

        if generations.current is not None:
            # running, until a stop signal or the child's exit; restarts on the way
            self._enter(RUNNING)
            while True:
                self._set_ready(self._should_be_ready())
                yield Wait(lambda: facts.stop is not None or not generations.current_running()
                           or facts.restarts_requested > self._restarts_done
                           or self._ready_changed())
                if facts.stop is not None or not generations.current_running():
                    break
                if facts.restarts_requested > self._restarts_done:
                    self._restarts_done = facts.restarts_requested  # requests meanwhile merge
                    self._enter(RESTART)
                    yield from restart(generations, self._restart_needs())
                    self._enter(RUNNING)

            # stop: ready file, stop hooks, stop delay, forward, grace period, SIGKILL
            self._set_ready(False)  # readiness goes red first
            stop = facts.stop
            if stop is not None:
                self.record = StopRecord(signal_name(stop.signum), stop.at, config.termination_budget)
            self._enter(STOP_HOOKS)
            yield from self._stop_hooks()
            if stop is not None and self._stop_targets():
                if config.wanted_stop_delay > 0:  # none asked for: no delay, and nothing to report
                    self._enter(STOP_DELAY)
                    yield from self._stop_delay()
                if self._stop_targets():
                    self._enter(GRACE_PERIOD)
                    yield from self._forward_and_grace()
            if generations.running():  # old generations still being stopped in the background
                yield Wait(lambda: not generations.running())

        # after the child: leftovers, then post hooks
        self._enter(CLEANUP)
        self.system.take_back_terminal()
        yield from self._stop_leftovers()
        self._enter(POST_HOOKS)
        self.post_hooks_started = True
        yield from self._post_hooks()
        yield from self._stop_leftovers()  # daemons a post hook started (as PID 1 the kernel would)

        code = self.exit_code()
        self._say(INFO, "exiting", f"exiting with status {code}", status=code)
        self._termination_report(code)
        return code

    def _enter(self, phase: str) -> None:
        """The one place the phase changes (and when it did). The ledger reads its counters at
        the stop's boundaries: the stop signal, the forward, the app's exit."""
        self.phase = phase
        self.phase_started = self.system.now()
        boundary = _LEDGER_BOUNDARIES.get(phase)
        if boundary is not None and self.record is not None and self.config.ledger:
            self.counters.setdefault(boundary, self._read_counters())

    # --- start ---------------------------------------------------------------------------

    def _start_child(self) -> None:
        try:
            child = self.system.spawn_child(self.config.command, self.environ)
        except SpawnError as error:
            self._say(ERROR, "spawn_failed", str(error), status=error.status)
            self.status_without_child = error.status
            return
        self.facts.children[child.pid] = child
        self.generations.current = child
        if self.report.enabled(INFO):  # quoting the command costs an import on the start-up path
            self._say(INFO, "child_started", f"started {_show(self.config.command)} as pid {child.pid}",
                      pid=child.pid, command=_show(self.config.command))
        for signum in self.facts.early_signals:  # arrived while graceinit was starting
            self.forward(signum)
        self.facts.early_signals.clear()

    def _should_be_ready(self) -> bool:
        current = self.generations.current
        if current is None or not current.running or self.facts.stop is not None:
            return False
        return not self.config.notify or current.pid in self.generations.ready

    def _publishes_readiness(self) -> bool:
        """A ready file or a ready port follows readiness."""
        return self.config.ready_file is not None or self.config.ready_port is not None

    def _ready_changed(self) -> bool:
        return self._publishes_readiness() and self._ready != self._should_be_ready()

    def _set_ready(self, ready: bool) -> None:
        """The ready file follows readiness. An I/O error is a warning: never a reason to stop."""
        if not self._publishes_readiness() or self._ready == ready:
            return
        self._ready = ready
        try:
            self.system.set_ready(ready)
        except OSError as error:
            what = "create" if ready else "remove"
            self._say(WARNING, "ready_file_error", f"cannot {what} the ready file"
                      f" {self.config.ready_file!r}: {error.strerror or error}; going on",
                      path=self.config.ready_file, ready=ready)

    def _restart_needs(self) -> Restart:
        config = self.config

        def spawn() -> Proc:
            proc = self.system.spawn_child(config.command, self.environ)
            self.facts.children[proc.pid] = proc
            return proc

        return Restart(
            spawn=spawn,
            now=self.system.now,
            stopping=lambda: self.facts.stop is not None,
            retire=self._retire,
            became_current=lambda: self._set_ready(self._should_be_ready()),
            say=self._say,
            ready_timeout=config.ready_timeout,
            notify=config.notify,
        )

    def _retire(self, proc: Proc) -> None:
        """Stop one generation beside the life cycle: SIGTERM (after -r), SIGKILL after the
        grace period, while the loop goes on serving everything else."""
        from graceinit.terminate import terminate

        self.generations.retiring.append(proc)
        grace = self.config.grace_period
        deadline = None if grace is None else self.system.now() + grace
        targets = self._group_or_pid(lambda: [proc] if proc.running else [])

        def killing(reason: str) -> None:
            self._say(WARNING, "sigkill", f"old child {proc.pid} still running after the grace period:"
                      " SIGKILL", pid=proc.pid, reason=reason)

        signum = self.rewritten(signal.SIGTERM)
        if signum:
            self._say(INFO, "stop_forwarded", f"sending {signal_name(signum)} to child {proc.pid}",
                      pid=proc.pid, signal=signal_name(signum))
        self.beside.append(terminate(self.system.now, targets, signum, deadline, before_kill=killing))

    # --- stop ----------------------------------------------------------------------------

    def _stop_targets(self) -> List[Proc]:
        """The generations the stop signal goes to (old ones already got theirs)."""
        return [proc for proc in self.generations.running() if proc not in self.generations.retiring]

    def _stop_hooks(self) -> Steps[None]:
        """Each stop hook to its end; a second stop signal cuts them short (STOP_SIGNAL_TABLE)."""
        facts = self.facts
        started = self.system.now()
        for argv in self.hook_commands(self.config.stop_hooks):
            if facts.hurried:
                break
            status = yield from self._run_hook("stop", argv, StopSignalsAgain(facts, HURRY),
                                               cut_short=lambda: facts.hurried)
            if status != 0 and self.record is not None:
                self.record.failed_hooks.append(_show(argv))
        if self.record is not None:
            self.record.spent("stop_hooks", self.system.now() - started)

    def _stop_delay(self) -> Steps[None]:
        """The child keeps serving for a while (stopdelay.py: fixed, or until traffic stops)."""
        from graceinit.stopdelay import StopDelay  # only when a stop begins

        assert self.record is not None
        current = self.generations.current
        delay = StopDelay(self.config, self.system, self.report, self.facts, self.budget,
                          self._stop_targets, current.pid if current else 0)
        yield from delay.run(self.record, self.phase_started)  # counted from the phase, not the import

    def _forward_and_grace(self) -> Steps[None]:
        """Forward the stop signal, wait the grace period, SIGKILL what is left."""
        from graceinit.terminate import EXITED, terminate

        facts, record = self.facts, self.record
        assert facts.stop is not None and record is not None
        started = self.system.now()
        grace = self.config.grace_period
        deadline = self.budget.cap(None if grace is None else started + grace, facts.stop.at)
        signum = self.rewritten(facts.stop.signum)
        for proc in self._stop_targets():
            if signum:
                self._say(INFO, "stop_forwarded", f"sending {signal_name(signum)} to child {proc.pid}",
                          pid=proc.pid, signal=signal_name(signum))
        record.forwarded = True
        record.ended_by = "signal"

        def killing(reason: str) -> None:
            self.killing_children(reason)
            record.ended_by = "sigkill"
            ledger = self._ledger()
            if ledger is not None:
                ledger.sigkill(reason)

        escalation = grace_escalation(facts, self.rewritten)
        targets = self._group_or_pid(self._stop_targets)
        outcome = yield from terminate(self.system.now, targets, signum, deadline, escalation, killing)
        if outcome != EXITED:
            self._group_or_pid(self.generations.running).kill()  # old generations go too
        record.spent("grace", self.system.now() - started)

    def killing_children(self, reason: str) -> None:
        """Say why the child gets SIGKILL ("escalation": a third stop signal; or its deadline)."""
        if reason == "escalation":
            self._say(WARNING, "sigkill", f"{signal_name(self.facts.stops[-1].signum)} a third time:"
                      " SIGKILL now", reason="third stop signal")
        else:
            self._say(WARNING, "sigkill", "grace period over and the child is still running: SIGKILL",
                      reason="grace period over")

    def rewritten(self, signum: int) -> int:
        """A signal after -r; 0 when rewritten to nothing."""
        return self.config.rewrite.get(signum, signum)

    # --- after the child -----------------------------------------------------------------

    def _stop_leftovers(self) -> Steps[None]:
        """SIGTERM whatever still runs under us, SIGKILL it after --leftover-grace (or at a
        third stop signal), and wait for it: tini and dumb-init leave it to be SIGKILLed by
        the kernel mid-write. Newcomers too, until none is left (terminate.end_leftovers)."""
        from graceinit.terminate import KILL_WAIT, end_leftovers

        listing = lambda: [pid for pid in self.system.leftovers() if pid not in self.survivors]  # noqa: E731
        pids = listing()
        if not pids:
            return None
        started = self.system.now()
        grace = self.config.leftover_grace
        self._say(INFO, "leftovers", f"{len(pids)} leftover process(es) {pids}: SIGTERM, SIGKILL after"
                  f" {grace:g}s", pids=pids, seconds=grace)

        def killing(lingering: List[int], reason: str) -> None:
            why = "a third stop signal" if reason == "escalation" else f"still running after {grace:g}s"
            self._say(WARNING, "leftovers_killed", f"leftover process(es) {lingering} {why}: SIGKILL",
                      pids=lingering)

        escalation = StopSignalsAgain(self.facts, self.facts.stop_count)
        outcome = yield from end_leftovers(self.system.now, self.system, listing, pids, started + grace,
                                           escalation, killing)
        self.survivors += outcome.survivors  # a SIGKILL is pending on them: the next pass skips them
        if outcome.survivors:
            self._say(WARNING, "leftovers_survived", f"leftover process(es) {outcome.survivors} still running"
                      f" {KILL_WAIT:g}s after SIGKILL: giving up on them", pids=outcome.survivors)
        if self.record is not None:
            self.record.leftovers_terminated += outcome.ended()
            self.record.leftovers_killed += len(outcome.killed)
            self.record.survivors += outcome.survivors
            self.record.spent("leftovers", self.system.now() - started)
        return None

    def _post_hooks(self) -> Steps[None]:
        started = self.system.now()
        for argv in self.hook_commands(self.config.post_hooks):
            status = yield from self._run_hook("post", argv, StopSignalsAgain(self.facts, self.facts.stop_count))
            if status != 0 and self.record is not None:
                self.record.failed_hooks.append(_show(argv))
        if self.record is not None:
            self.record.spent("post_hooks", self.system.now() - started)

    # --- hooks ---------------------------------------------------------------------------

    def hook_commands(self, phase_hooks: Hooks) -> List[Argv]:
        if phase_hooks.directory is None and not phase_hooks.commands:
            return []  # the usual phase, with no hooks: hooks.py stays unloaded
        from graceinit import hooks

        return hooks.commands(phase_hooks, self.system.hook_files(phase_hooks.directory))

    def _run_hook(self, phase: str, argv: Argv, escalation: StopSignalsAgain,
                  cut_short: Optional[Callable[[], bool]] = None) -> Steps[int]:
        """Run one hook to its end or its timeout; returns its exit status."""
        from graceinit import hooks

        current = self.generations.current
        post = phase == "post"
        environ = hooks.environ_for(
            self.environ,
            phase,
            current.pid if current else None,
            exit_code=self.exit_code() if post else None,
            exit_signal=self._child_death_signal() if post else None,
        )
        return (yield from hooks.run(self.system, self.facts, self.report, phase, argv, environ,
                                     self.config.hook_timeout, escalation, cut_short, self.beside.append))

    # --- events: record facts ------------------------------------------------------------

    def ours(self) -> Optional[Dict[int, Proc]]:
        """The processes whose exits are events; orphans' exits are reaped without one
        unless they are logged."""
        return None if self.report.enabled(DEBUG) else self.facts.children

    def handle(self, event: Event) -> bool:
        """Record what happened; True when it is a fact the life cycle may be waiting for
        (an ordinary signal passed on is not: forwarding stays one short path)."""
        if isinstance(event, Signal):
            return self._on_signal(event.signum)
        if isinstance(event, Exited):
            return self._on_exited(event.pid, event.wait_status)
        if isinstance(event, Stopped):
            current = self.generations.current
            if current is not None and event.pid == current.pid and current.pgid:
                self._say(INFO, "child_suspended", f"child {event.pid} stopped from the terminal:"
                          " following it", pid=event.pid)
                self.system.suspend_with(current.pgid)
            return False
        if isinstance(event, Notified):
            self._on_notified(event.sender, event.fields)
        # Gone: a watched leftover died; the step waiting for it looks for itself.
        return True

    def _on_signal(self, signum: int) -> bool:
        facts, phase = self.facts, self.phase
        if signum in self.config.stop_signals:
            name = signal_name(signum)
            facts.stops.append(StopRequest(signum, facts.stop_count + 1, self.system.now()))
            self._say(INFO, "stop_signal", f"{name} received {PHASE_WORDS[phase]}"
                      f" (stop signal #{facts.stop_count})", signal=name, count=facts.stop_count, phase=phase)
            return True
        if signum == self.config.restart_signal:
            if phase not in (RUNNING, RESTART) or facts.stop is not None:
                self._say(WARNING, "restart_ignored", f"restart signal ignored {PHASE_WORDS[phase]}",
                          phase=phase)
                return False
            if phase == RESTART:
                self._say(INFO, "restart_queued", "restart signal during a restart: one more restart queued")
            facts.restarts_requested += 1
            return True
        if facts.hook is not None and phase in (PRE_HOOKS, POST_HOOKS):
            # The program has not started (or is gone): the hook running now gets it.
            self.system.send_group(facts.hook.pgid, signum)
        elif self.generations.current is None and phase in (STARTING, PRE_HOOKS):
            facts.early_signals.append(signum)  # forwarded once the child exists
        else:
            self.forward(signum)
        return False

    def _on_exited(self, pid: int, wait_status: int) -> bool:
        proc = self.facts.children.pop(pid, None)
        if proc is None:
            if self.report.enabled(DEBUG):  # a burst can be 10,000 orphans: format lazily
                self._say(DEBUG, "orphan_reaped", f"reaped orphan {pid} (status {exit_status(wait_status)})",
                          pid=pid, status=exit_status(wait_status))
            return False
        proc.wait_status = wait_status
        generations = self.generations
        if proc is generations.current or proc is generations.candidate or proc in generations.retiring:
            status = exit_status(wait_status)
            what = generations.describe(proc)
            self._say(INFO, "child_exited", f"{what} {pid} exited with status {status}",
                      pid=pid, status=status, generation=what.split()[0])
        return True

    def _on_notified(self, sender: Optional[int], fields: Any) -> None:
        generations, system = self.generations, self.system
        if sender is None:
            return
        generation = generations.of_sender(sender, system.ancestry(sender), system.exists(sender))
        if generation is None:
            self._say(DEBUG, "notify_ignored", f"notify message from unknown pid {sender}"
                      f" ignored: {dict(fields)}", pid=sender)
            return
        if "STATUS" in fields:
            self._say(INFO, "child_status", f"pid {generation.pid} status: {fields['STATUS']}",
                      pid=generation.pid, status_text=fields["STATUS"])
        if fields.get("READY") == "1" and generation.pid not in generations.ready:
            generations.ready.add(generation.pid)
            self._say(INFO, "child_ready", f"pid {generation.pid} is ready", pid=generation.pid)
        # Named one by one: event names are an interface, listed in docs/events.md.
        if fields.get("RELOADING") == "1":
            self._say(INFO, "child_reloading", f"pid {generation.pid}: reloading", pid=generation.pid)
        if fields.get("STOPPING") == "1":
            self._say(INFO, "child_stopping", f"pid {generation.pid}: stopping", pid=generation.pid)

    # --- signals and statuses ------------------------------------------------------------

    def forward(self, signum: int) -> None:
        """A signal that is not ours to act on goes to the serving generations."""
        target = self.rewritten(signum)
        if target == 0:
            self._say(DEBUG, "signal_dropped", f"{signal_name(signum)} dropped (rewritten to 0)",
                      signal=signal_name(signum))
            return
        serving = self.generations.serving()
        if not serving:
            self._say(DEBUG, "signal_dropped", f"{signal_name(signum)} not forwarded: no child running",
                      signal=signal_name(signum))
            return
        send(self.system, serving, target, not self.config.single_child)

    def _group_or_pid(self, procs: Callable[[], Sequence[Proc]]) -> Children:
        from graceinit.terminate import Children

        return Children(self.system, procs, not self.config.single_child)

    def kill_children(self) -> None:
        """SIGKILL every child generation and its group (startup.py's last resort)."""
        self._group_or_pid(self.generations.running).kill()

    def _child_death_signal(self) -> Optional[str]:
        current = self.generations.current
        if current is None or current.wait_status is None:
            return None
        signum = death_signal(current.wait_status)
        return signal_name(signum) if signum else None

    def exit_code(self) -> int:
        """graceinit's exit code: the child's status (or why there is none), after -e."""
        current = self.generations.current
        if current is not None and current.wait_status is not None:
            status = exit_status(current.wait_status)
        else:
            status = self.status_without_child if self.status_without_child is not None else 0
        return self.config.remap_exit.get(status, status)

    def _termination_report(self, code: int) -> None:
        stop = self.facts.stop
        if stop is None:
            return
        if self.record is None:  # stopped before the child ran, or after it had exited
            self.record = StopRecord(signal_name(stop.signum), stop.at, self.config.termination_budget)
            self.record.ended_by = "not started" if self.generations.current is None else "exit"
        fields = self.record.fields(code, self.system.now(), self.report.dropped())
        fields.update(self._ledger_fields())
        self._say(NOTICE, "termination_report", termination_message(fields), **fields)

    def _read_counters(self) -> Any:
        """The ledger's read at a stop boundary: the counters, or the error (ledger.py, which
        is not imported for it: this runs right before the forward)."""
        try:
            return self.system.net_counters()
        except Exception as error:
            return error

    def _ledger(self) -> Optional[Ledger]:
        """The ledger, made from the reads so far the first time it is needed."""
        if self.ledger is None and self.counters:
            try:
                from graceinit.ledger import Ledger

                self.ledger = Ledger(self.system, self.counters)
            except Exception:
                internal_error(self.report, "the ledger failed: the termination report goes without losses")
                self.counters.clear()
        return self.ledger

    def _ledger_fields(self) -> Dict[str, Any]:
        """The loss fields for the termination report; non-zero ones are one warning first."""
        made = self._ledger()
        if made is None or self.record is None:
            return {}
        try:
            from graceinit import ledger

            made.end()
            fields = made.fields()
            record = self.record
            context = ledger.Context(record.phases.get("stop_delay", 0.0), record.stop_delay_ended,
                                     self.config.stop_delay_auto)
            message = ledger.warning(fields, context, made.killed_by)
        except Exception:
            internal_error(self.report, "the ledger failed: the termination report goes without losses")
            return {}
        if message:
            self._say(WARNING, "losses", message, **{k: v for k, v in fields.items() if k != "losses_by_phase"})
        return fields

    def _warn_about_budget(self) -> None:
        config = self.config
        if config.termination_budget is None:
            return
        from graceinit.budget import fit_warning

        stop_hooks = len(self.hook_commands(config.stop_hooks)) * (config.hook_timeout or 0.0)
        warning = fit_warning(self.budget, stop_hooks, config.wanted_stop_delay, config.grace_period)
        if warning:
            self._say(WARNING, "budget_warning", warning, budget_s=config.termination_budget)

    def _say(self, level: int, event: str, msg: str, **fields: Any) -> None:
        self.report.emit(level, event, msg, **fields)
