"""The container's life, read top to bottom: `Lifecycle.run`.

    start     ready file cleared -> pre hooks -> spawn the child -> ready file
    running   on the restart signal: a new generation on the same sockets (generations.py)
    stop      (stop signal, or the child exits) -> ready file removed -> stop hooks
              -> stop delay (fixed, or until traffic stops: stopdelay.py)
              -> forward the (rewritten) stop signal -> grace period -> SIGKILL
    after     leftover processes: SIGTERM, SIGKILL after --leftover-grace -> post hooks
              -> leftovers the post hooks left -> the termination report
    exit      the child's status, remapped

The life cycle only acts; the event handlers in supervisor.py only record facts (facts.py),
and the life cycle reads them each time it is resumed. Every step is reported as an event
(report.py). The operating system is behind `System` (system.py), so unit tests replay the
whole life against a fake one.
"""

from __future__ import annotations

import _signal as signal  # the C module: `signal` would import enum (every start pays)

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, Callable, Dict, List, Optional, Sequence

    from graceinit.ledger import Ledger
    from graceinit.waits import Steps

from graceinit import hooks
from graceinit.hooks import show
from graceinit.budget import Budget, budget_for
from graceinit.config import Argv, Config, death_signal, exit_status, signal_name
from graceinit.facts import Facts
from graceinit.generations import Generations, Restart, restart
from graceinit.log import DEBUG, ERROR, INFO, NOTICE, WARNING
from graceinit.report import Reporter, StopRecord, termination_message
from graceinit.spawn import Environ, Proc, SpawnError
from graceinit.terminate import EXITED, Pids, Procs, send, terminate
from graceinit.waits import Wait

INTERNAL_ERROR = 70


class Lifecycle:
    def __init__(
        self,
        config: Config,
        system: Any,
        report: Reporter,
        environ: Environ,
        facts: Facts,
        generations: Generations,
        background: Callable[[Steps[Any]], None],
    ) -> None:
        self.config = config
        self.system = system
        self.report = report
        self.environ = environ
        self.facts = facts
        self.generations = generations
        self._background = background  # runs a step beside the life cycle (old generations)
        self.phase = "starting"
        self.status: Optional[int] = None  # before remapping; the child's, once it has one
        self.record: Optional[StopRecord] = None
        self.ledger: Optional[Ledger] = None  # from the stop signal on (ledger.py)
        self.post_hooks_started = False
        # What the ready file says now: nothing, since start-up (output.prepare) removed a
        # stale one before anything started.
        self._ready = False
        self._restarts_done = 0
        self.budget: Budget = budget_for(
            config.termination_budget,
            config.leftover_grace,
            len(hooks.commands(config.post_hooks)) if config.termination_budget is not None else 0,
            config.hook_timeout,
        )

    # --- the life cycle ------------------------------------------------------------------

    def run(self) -> Steps[int]:
        config, facts, generations = self.config, self.facts, self.generations

        # start: pre hooks, then the child
        self.phase = "pre hooks"
        for argv in hooks.commands(config.pre_hooks):
            status = yield from self._run_hook("pre", argv)
            if facts.stop is not None:
                break
            if status != 0:
                self._say(ERROR, "pre_hook_failed", f"pre hook {show(argv)} failed with status {status}:"
                          " not starting the child", command=show(argv), status=status)
                self.status = status
                break
        if self.status is None and facts.stop is None:
            self._start_child()
        if generations.current is None and facts.stop is not None:
            name = signal_name(facts.stop.signum)
            self._say(INFO, "not_started", f"{name} before the child started: not starting it", signal=name)
            self.status = 128 + facts.stop.signum

        if generations.current is not None:
            # running, until a stop signal or the child's exit; restarts on the way
            self.phase = "running"
            while True:
                self._set_ready(self._should_be_ready())
                yield Wait(lambda: facts.stop is not None or not generations.current_running()
                           or facts.restarts_requested > self._restarts_done
                           or self._ready_changed())
                if facts.stop is not None or not generations.current_running():
                    break
                if facts.restarts_requested > self._restarts_done:
                    self._restarts_done = facts.restarts_requested  # requests meanwhile merge
                    self.phase = "restart"
                    yield from restart(generations, self._restart_needs())
                    self.phase = "running"

            # stop: ready file, stop hooks, stop delay, forward, grace period, SIGKILL
            self._set_ready(False)  # readiness goes red first
            stop = facts.stop
            if stop is not None:
                self.record = StopRecord(signal_name(stop.signum), stop.at, config.termination_budget)
                self.ledger = self._open_ledger() if config.ledger else None
            self.phase = "stop hooks"
            yield from self._run_phase_hooks("stop", config.stop_hooks, "stop_hooks")
            if stop is not None and self._stop_targets():
                self.phase = "stop delay"
                yield from self._stop_delay()
                if self._stop_targets():
                    self.phase = "grace period"
                    yield from self._forward_and_grace()
            if generations.running():  # old generations still being stopped in the background
                yield Wait(lambda: not generations.running())
            if self.ledger is not None:
                self.ledger.exited()
            current = generations.current
            self.status = exit_status(current.wait_status if current.wait_status is not None else 0)

        # after the child: leftovers, then post hooks
        self.phase = "cleanup"
        self.system.take_back_terminal()
        yield from self._stop_leftovers()
        self.phase = "post hooks"
        self.post_hooks_started = True
        yield from self._run_phase_hooks("post", config.post_hooks, "post_hooks")
        yield from self._stop_leftovers()  # daemons a post hook started (as PID 1 the kernel would)

        code = self.exit_status()
        self._say(INFO, "exiting", f"exiting with status {code}", status=code)
        self._termination_report(code)
        return code

    # --- start ---------------------------------------------------------------------------

    def _start_child(self) -> None:
        try:
            child = self.system.spawn_child(self.config.command, self.environ)
        except SpawnError as error:
            self._say(ERROR, "spawn_failed", str(error), status=error.status)
            self.status = error.status
            return
        self.facts.procs[child.pid] = child
        self.generations.current = child
        if self.report.enabled(INFO):  # quoting the command costs an import on the start-up path
            self._say(INFO, "child_started", f"started {show(self.config.command)} as pid {child.pid}",
                      pid=child.pid, command=show(self.config.command))
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
            self.facts.procs[proc.pid] = proc
            return proc

        return Restart(
            spawn=spawn,
            now=self.system.now,
            stopping=lambda: self.facts.stop is not None,
            retire=self.retire,
            became_current=lambda: self._set_ready(self._should_be_ready()),
            say=self._say,
            ready_timeout=config.ready_timeout,
            notify=config.notify,
        )

    def retire(self, proc: Proc) -> None:
        """Stop one generation in the background: SIGTERM (after -r), SIGKILL after the grace
        period, while the loop goes on serving everything else."""
        self.generations.retiring.append(proc)
        grace = self.config.grace_period
        deadline = None if grace is None else self.system.now() + grace
        targets = self._procs(lambda: [proc] if proc.running else [])

        def killing(reason: str) -> None:
            self._say(WARNING, "sigkill", f"old child {proc.pid} still running after the grace period:"
                      " SIGKILL", pid=proc.pid, reason=reason)

        signum = self._stop_signal_to_send(signal.SIGTERM)
        if signum:
            self._say(INFO, "stop_forwarded", f"sending {signal_name(signum)} to child {proc.pid}",
                      pid=proc.pid, signal=signal_name(signum))
        self._background(terminate(self.system.now, targets, signum, deadline, before_kill=killing))

    # --- stop ----------------------------------------------------------------------------

    def _stop_targets(self) -> List[Proc]:
        """The generations the stop signal goes to (old ones already got theirs)."""
        return [proc for proc in self.generations.running() if proc not in self.generations.retiring]

    def _stop_delay(self) -> Steps[None]:
        """The child keeps serving for a while (stopdelay.py: fixed, or until traffic stops)."""
        from graceinit.stopdelay import StopDelay  # only when a stop begins

        assert self.record is not None
        current = self.generations.current
        delay = StopDelay(self.config, self.system, self.report, self.facts, self.budget,
                          self._stop_targets, current.pid if current else 0)
        yield from delay.run(self.record)

    def _forward_and_grace(self) -> Steps[None]:
        """Forward the stop signal, wait the grace period, SIGKILL what is left."""
        facts, record = self.facts, self.record
        assert facts.stop is not None and record is not None
        started = self.system.now()
        grace = self.config.grace_period
        deadline = self.budget.cap(None if grace is None else started + grace, facts.stop.at)
        signum = self._stop_signal_to_send(facts.stop.signum)
        if self.ledger is not None:
            self.ledger.forwarded()
        for proc in self._stop_targets():
            if signum:
                self._say(INFO, "stop_forwarded", f"sending {signal_name(signum)} to child {proc.pid}",
                          pid=proc.pid, signal=signal_name(signum))
        record.forwarded = True
        record.ended_by = "signal"

        def killing(reason: str) -> None:
            if reason == "escalation":
                self._say(WARNING, "sigkill", f"{signal_name(facts.stops[-1].signum)} a third time:"
                          " SIGKILL now", reason="third stop signal")
            else:
                self._say(WARNING, "sigkill", "grace period over and the child is still running: SIGKILL",
                          reason="grace period over")
            record.ended_by = "sigkill"
            if self.ledger is not None:
                self.ledger.sigkill(reason)

        # The first stop signal started the sequence; a second one may have cut the delay.
        used = 2 if record.stop_delay_ended == "hurried" else 1
        escalation = _StopSignalsAgain(facts, self._stop_signal_to_send, used)
        targets = self._procs(self._stop_targets)
        outcome = yield from terminate(self.system.now, targets, signum, deadline, escalation, killing)
        if outcome != EXITED:
            self._procs(self.generations.running).kill()  # old generations go too
        record.spent("grace", self.system.now() - started)

    def _stop_signal_to_send(self, signum: int) -> int:
        """After -r; 0 when rewritten to nothing."""
        return self.config.rewrite.get(signum, signum)

    # --- after the child -----------------------------------------------------------------

    def _stop_leftovers(self) -> Steps[None]:
        """SIGTERM whatever still runs under us, SIGKILL it after --leftover-grace, and wait
        for it: tini and dumb-init leave it to be SIGKILLed by the kernel mid-write."""
        pids = self.system.leftovers()
        if not pids:
            return None
        started = self.system.now()
        grace = self.config.leftover_grace
        self._say(INFO, "leftovers", f"{len(pids)} leftover process(es) {pids}: SIGTERM, SIGKILL after"
                  f" {grace:g}s", pids=pids, seconds=grace)
        targets = Pids(self.system, pids)

        def killing(reason: str) -> None:
            lingering = sorted(targets.lingering)
            self._say(WARNING, "leftovers_killed", f"leftover process(es) {lingering} still running after"
                      f" {grace:g}s: SIGKILL", pids=lingering)
            if self.record is not None:
                self.record.leftovers_killed += len(lingering)

        yield from terminate(self.system.now, targets, signal.SIGTERM, started + grace, before_kill=killing)
        if self.record is not None:
            self.record.leftovers_terminated += len(pids)
            self.record.spent("leftovers", self.system.now() - started)
        return None

    # --- hooks ---------------------------------------------------------------------------

    def _run_phase_hooks(self, phase: str, phase_hooks: Any, record_as: str) -> Steps[None]:
        started = self.system.now()
        for argv in hooks.commands(phase_hooks):
            status = yield from self._run_hook(phase, argv)
            if status != 0 and self.record is not None:
                self.record.failed_hooks.append(show(argv))
        if self.record is not None:
            self.record.spent(record_as, self.system.now() - started)

    def _run_hook(self, phase: str, argv: Argv) -> Steps[int]:
        """Run one hook to its end or its timeout; returns its exit status."""
        current = self.generations.current
        post = phase == "post"
        environ = hooks.environ_for(
            self.environ,
            phase,
            current.pid if current else None,
            exit_code=self.exit_status() if post else None,
            exit_signal=self._child_death_signal() if post else None,
        )
        return (yield from hooks.run(self.system, self.facts, self.report, phase, argv, environ,
                                     self.config.hook_timeout))

    # --- signals and statuses ------------------------------------------------------------

    def forward(self, signum: int) -> None:
        """A signal that is not ours to act on goes to the serving generations."""
        target = self.config.rewrite.get(signum, signum)
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

    def _procs(self, procs: Callable[[], Sequence[Proc]]) -> Procs:
        return Procs(self.system, procs, not self.config.single_child)

    def _child_death_signal(self) -> Optional[str]:
        current = self.generations.current
        if current is None or current.wait_status is None:
            return None
        signum = death_signal(current.wait_status)
        return signal_name(signum) if signum else None

    def exit_status(self) -> int:
        """graceinit's exit status: the child's (or why there is none), after -e."""
        current = self.generations.current
        if current is not None and current.wait_status is not None:
            status = exit_status(current.wait_status)
        else:
            status = self.status if self.status is not None else 0
        return self.config.remap_exit.get(status, status)

    def _termination_report(self, code: int) -> None:
        stop = self.facts.stop
        if stop is None:
            return
        if self.record is None:  # stopped before the child ran
            self.record = StopRecord(signal_name(stop.signum), stop.at, self.config.termination_budget)
            self.record.ended_by = "not started"
        from graceinit.log import dropped_total

        fields = self.record.fields(code, self.system.now(), dropped_total())
        fields.update(self._ledger_fields())
        self._say(NOTICE, "termination_report", termination_message(fields), **fields)

    def _open_ledger(self) -> Optional[Ledger]:
        """The ledger starts at the stop signal: nothing is read before it (ledger.py)."""
        try:
            from graceinit.ledger import Ledger

            ledger = Ledger(self.system)
            ledger.start()
            return ledger
        except Exception:
            internal_error(self.report, "the ledger failed to start: the termination report goes without losses")
            return None

    def _ledger_fields(self) -> Dict[str, Any]:
        """The loss fields for the termination report; non-zero ones are one warning first."""
        if self.ledger is None or self.record is None:
            return {}
        try:
            from graceinit import ledger

            self.ledger.end()
            fields = self.ledger.fields()
            record = self.record
            context = ledger.Context(record.phases.get("stop_delay", 0.0), record.stop_delay_ended,
                                     self.config.stop_delay_auto)
            message = ledger.warning(fields, context, self.ledger.killed_by)
        except Exception:
            internal_error(self.report, "the ledger failed: the termination report goes without losses")
            return {}
        if message:
            self._say(WARNING, "losses", message, **{k: v for k, v in fields.items() if k != "losses_by_phase"})
        return fields

    def _say(self, level: int, event: str, msg: str, **fields: Any) -> None:
        self.report.emit(level, event, msg, **fields)




class _StopSignalsAgain:
    """During the grace period: each further stop signal forwards the stop signal again; the
    third in all SIGKILLs."""

    def __init__(self, facts: Facts, rewrite: Callable[[int], int], used: int) -> None:
        self._facts = facts
        self._rewrite = rewrite
        self._seen = used

    def pending(self) -> bool:
        return self._facts.stop_count > self._seen

    def take(self) -> Optional[int]:
        self._seen += 1
        if self._seen >= 3:
            return signal.SIGKILL
        return self._rewrite(self._facts.stops[self._seen - 1].signum) or None
