"""The one event loop: events become facts, and the life cycle is resumed.

`Supervisor.run` blocks in the kernel (`System.wait`) until an event or the nearest deadline
of a running step, so an idle graceinit costs nothing. Each event is handled by recording a
fact (facts.py); the only thing a handler does itself is pass an ordinary signal on, which is
what an init is for. Then every step whose wait is over is resumed: the life cycle
(lifecycle.py) and, beside it, old generations being stopped after a restart.

If the life cycle itself fails (a bug), `_fallback` keeps the PID-1 promise with as little
code as possible: a stop signal still ends in forward -> grace period -> SIGKILL -> post
hooks -> exit with the child's status.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, List, Optional

    from graceinit.waits import Steps

from graceinit import hooks
from graceinit.config import Config, exit_status, signal_name
from graceinit.events import Event, Exited, Notified, Signal, Stopped
from graceinit.facts import Facts, StopRequest
from graceinit.generations import Generations
from graceinit.hooks import HOOK_TIMED_OUT, show
from graceinit.lifecycle import INTERNAL_ERROR, Lifecycle
from graceinit.log import DEBUG, INFO, WARNING
from graceinit.report import LogReporter, Reporter, internal_error
from graceinit.signals import STOP_SIGNALS
from graceinit.spawn import Environ
from graceinit.system import System
from graceinit.terminate import Procs, terminate
from graceinit.waits import Wait

__all__ = ["Supervisor", "INTERNAL_ERROR", "HOOK_TIMED_OUT"]


class _Step:
    """A running generator of Waits, and what it waits for now."""

    __slots__ = ("steps", "wait", "started", "result")

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps
        self.wait: Optional[Wait] = None
        self.started = False
        self.result: Any = None

    def advance(self, now: float) -> bool:
        """Resume while its wait is over; True once it has finished."""
        while True:
            if self.started:
                assert self.wait is not None
                done = self.wait.done()
                if not done and (self.wait.deadline is None or now < self.wait.deadline):
                    return False
                resume: Optional[bool] = done
            else:
                resume = None
            try:
                self.wait = self.steps.send(resume) if self.started else next(self.steps)
            except StopIteration as finished:
                self.result = finished.value
                return True
            self.started = True


class Supervisor:
    def __init__(self, config: Config, system: System, environ: Environ,
                 report: Optional[Reporter] = None) -> None:
        self._config = config
        self._system = system
        self._report: Reporter = report if report is not None else LogReporter()
        self._facts = Facts()
        self._generations = Generations()
        self._background: List[_Step] = []
        self._lifecycle = Lifecycle(config, system, self._report, environ, self._facts,
                                    self._generations, self._start_background)

    # --- the loop ------------------------------------------------------------------------

    def run(self) -> int:
        """Run the container's life; returns graceinit's exit status."""
        self._warn_about_budget()
        main = _Step(self._lifecycle.run())
        in_fallback = False
        # Orphans' exits are reaped by the system without an event unless they are logged.
        ours = None if self._report.enabled(DEBUG) else self._facts.procs
        deadline: Optional[float] = None
        # What arrived while graceinit started (a stop signal during a slow --stdout FIFO
        # open) is read before the life cycle acts: a stopped container never starts the app.
        changed = False
        for event in self._system.wait(0.0, ours):
            changed = self._handle(event) or changed
        while True:
            now = self._system.now()
            if changed or (deadline is not None and now >= deadline) or not main.started:
                try:
                    if main.advance(now):
                        return int(main.result)
                except Exception:
                    if in_fallback:
                        raise  # startup.py SIGKILLs the child's group and exits 70
                    self._report_exception("internal error in the stop sequence; falling back to:"
                                           " forward, grace period, SIGKILL, post hooks")
                    main, in_fallback = _Step(self._fallback()), True
                    continue
                self._advance_background(now)
                deadlines = [step.wait.deadline for step in (main, *self._background)
                             if step.wait is not None and step.wait.deadline is not None]
                deadline = min(deadlines) if deadlines else None
            # else: only orphans were reaped, or signals passed on: nothing the steps wait for
            # can have changed.
            timeout = None if deadline is None else max(0.0, deadline - now)
            changed = False
            for event in self._system.wait(timeout, ours):
                changed = self._handle(event) or changed

    def _advance_background(self, now: float) -> None:
        for step in list(self._background):
            try:
                finished = step.advance(now)
            except Exception:
                self._report_exception("internal error while stopping an old generation; carrying on")
                finished = True
            if finished:
                self._background.remove(step)

    def _start_background(self, steps: Steps[Any]) -> None:
        step = _Step(steps)
        self._background.append(step)
        step.advance(self._system.now())

    def _report_exception(self, message: str) -> None:
        internal_error(self._report, message)

    # --- events: record facts ------------------------------------------------------------

    def _handle(self, event: Event) -> bool:
        """Record what happened; True when it is a fact the life cycle may be waiting for
        (an ordinary signal passed on is not: forwarding stays one short path)."""
        try:
            if isinstance(event, Signal):
                return self._on_signal(event.signum)
            if isinstance(event, Exited):
                return self._on_exited(event.pid, event.wait_status)
            if isinstance(event, Stopped):
                current = self._generations.current
                if current is not None and event.pid == current.pid and current.pgid:
                    self._report.emit(INFO, "child_suspended", f"child {event.pid} stopped from the"
                                      " terminal: following it", pid=event.pid)
                    self._system.suspend_with(current.pgid)
                return False
            if isinstance(event, Notified):
                self._on_notified(event.sender, event.fields)
            # Gone: a watched leftover died; the step waiting for it looks for itself.
        except Exception:
            self._report_exception(f"internal error while handling {event}; carrying on")
        return True

    def _on_signal(self, signum: int) -> bool:
        facts, phase = self._facts, self._lifecycle.phase
        if signum in STOP_SIGNALS:
            name = signal_name(signum)
            facts.stops.append(StopRequest(signum, facts.stop_count + 1, self._system.now()))
            self._report.emit(INFO, "stop_signal", f"{name} received {_PHASE_WORDS.get(phase, phase)}"
                              f" (stop signal #{facts.stop_count})", signal=name, count=facts.stop_count,
                              phase=phase)
            return True
        if signum == self._config.restart_signal:
            if phase not in ("running", "restart") or facts.stop is not None:
                self._report.emit(WARNING, "restart_ignored", f"restart signal ignored"
                                  f" {_PHASE_WORDS.get(phase, phase)}", phase=phase)
                return False
            if phase == "restart":
                self._report.emit(INFO, "restart_queued", "restart signal during a restart: one more"
                                  " restart queued")
            facts.restarts_requested += 1
            return True
        if facts.hook is not None and phase in ("pre hooks", "post hooks"):
            # The program has not started (or is gone): the hook running now gets it.
            self._system.send_group(facts.hook.pgid, signum)
        elif self._generations.current is None and phase in ("starting", "pre hooks"):
            facts.early_signals.append(signum)  # forwarded once the child exists
        else:
            self._lifecycle.forward(signum)
        return False

    def _on_exited(self, pid: int, wait_status: int) -> bool:
        proc = self._facts.procs.pop(pid, None)
        if proc is None:
            if self._report.enabled(DEBUG):  # a burst can be 10,000 orphans: format lazily
                self._report.emit(DEBUG, "orphan_reaped", f"reaped orphan {pid} (status"
                                  f" {exit_status(wait_status)})", pid=pid, status=exit_status(wait_status))
            return False
        proc.wait_status = wait_status
        generations = self._generations
        if proc is generations.current or proc is generations.candidate or proc in generations.retiring:
            status = exit_status(wait_status)
            what = generations.describe(proc)
            self._report.emit(INFO, "child_exited", f"{what} {pid} exited with status {status}",
                              pid=pid, status=status, generation=what.split()[0])
        return True

    def _on_notified(self, sender: Optional[int], fields: Any) -> None:
        generations, system = self._generations, self._system
        if sender is None:
            return
        generation = generations.of_sender(sender, system.ancestry(sender), system.exists(sender))
        if generation is None:
            self._report.emit(DEBUG, "notify_ignored", f"notify message from unknown pid {sender}"
                              f" ignored: {dict(fields)}", pid=sender)
            return
        if "STATUS" in fields:
            self._report.emit(INFO, "child_status", f"pid {generation.pid} status: {fields['STATUS']}",
                              pid=generation.pid, status_text=fields["STATUS"])
        if fields.get("READY") == "1" and generation.pid not in generations.ready:
            generations.ready.add(generation.pid)
            self._report.emit(INFO, "child_ready", f"pid {generation.pid} is ready", pid=generation.pid)
        # Named one by one: event names are an interface, listed in docs/events.md.
        if fields.get("RELOADING") == "1":
            self._report.emit(INFO, "child_reloading", f"pid {generation.pid}: reloading", pid=generation.pid)
        if fields.get("STOPPING") == "1":
            self._report.emit(INFO, "child_stopping", f"pid {generation.pid}: stopping", pid=generation.pid)

    # --- the safety net ------------------------------------------------------------------

    def _fallback(self) -> Steps[int]:
        """The life cycle failed. Wait for a stop signal or the child's exit; then forward,
        grace period, SIGKILL; post hooks where they can still run; the child's status."""
        config, facts, generations, system = self._config, self._facts, self._generations, self._system
        if generations.running() and facts.stop is None:
            yield Wait(lambda: facts.stop is not None or not generations.running())
        if generations.running() and facts.stop is not None:
            grace = config.grace_period
            deadline = self._lifecycle.budget.cap(None if grace is None else system.now() + grace,
                                                  facts.stop.at)
            signum = config.rewrite.get(facts.stop.signum, facts.stop.signum)
            self._report.emit(INFO, "stop_forwarded", f"sending {signal_name(signum or 0)} to the child",
                              signal=signal_name(signum or 0))
            targets = Procs(system, generations.running, not config.single_child)
            yield from terminate(system.now, targets, signum, deadline)
        if not self._lifecycle.post_hooks_started:
            try:
                post = hooks.commands(config.post_hooks)
            except Exception:
                post = []
            code = self._lifecycle.exit_status()
            for argv in post:
                try:
                    environ = hooks.environ_for(self._lifecycle.environ, "post", None, exit_code=code)
                    hook = system.spawn_hook(argv, environ)
                except Exception as error:
                    self._report.emit(WARNING, "hook_failed", f"post hook {show(argv)}: {error}")
                    continue
                facts.procs[hook.pid] = hook
                deadline = None if config.hook_timeout is None else system.now() + config.hook_timeout
                yield from terminate(system.now, Procs(system, lambda: [hook]), None, deadline)
        if generations.current is None and self._lifecycle.status is None:
            return INTERNAL_ERROR
        return self._lifecycle.exit_status()

    def kill_child(self) -> None:
        """SIGKILL every child generation and its group (startup.py's last resort)."""
        Procs(self._system, self._generations.running).kill()

    def _warn_about_budget(self) -> None:
        from graceinit.budget import fit_warning

        config = self._config
        if config.termination_budget is None:
            return
        stop_hooks = len(hooks.commands(config.stop_hooks)) * (config.hook_timeout or 0.0)
        delay = config.stop_delay_max if getattr(config, "stop_delay_auto", False) else config.stop_delay
        warning = fit_warning(self._lifecycle.budget, stop_hooks, delay, config.grace_period)
        if warning:
            self._report.emit(WARNING, "budget_warning", warning, budget_s=config.termination_budget)


_PHASE_WORDS = {
    "starting": "while graceinit starts",
    "pre hooks": "during the pre hooks",
    "running": "while the child runs",
    "restart": "during a restart",
    "stop hooks": "during the stop hooks",
    "stop delay": "during the stop delay",
    "grace period": "during the grace period",
    "cleanup": "while cleaning up leftovers",
    "post hooks": "during the post hooks",
}
