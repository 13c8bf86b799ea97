"""The stop delay: the child keeps serving after the stop signal, before it is forwarded.

A fixed time (--stop-delay 5), or with --stop-delay auto until requests stop arriving
(drain.py decides from samples of the app's traffic, traffic.py takes them). Either ends
early on a second stop signal ("hurried") or once the child has exited ("child exited"), and
never outlasts --termination-budget ("budget"). The life cycle runs it as one step,
`yield from StopDelay(...).run()`, when a delay was asked for (--stop-delay above 0, or
auto; without one there is no delay and nothing to report); it is imported only then.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, Callable, List, Optional

    from graceinit.budget import Budget
    from graceinit.config import Config
    from graceinit.facts import Facts
    from graceinit.report import Reporter, StopRecord
    from graceinit.proc import Proc
    from graceinit.waits import Steps

from graceinit.log import DEBUG, INFO, WARNING
from graceinit.report import internal_error
from graceinit.waits import Wait



def shown(seconds: float) -> str:
    """A duration for the text log: to 0.1 s from a second on. The delay is measured from the
    moment its phase starts, a few milliseconds after the stop signal that the budget counts
    from, and "2.99s" for a budget that leaves 3 s would read as a bug. JSON keeps the exact
    value."""
    return f"{round(seconds, 1 if seconds >= 1 else 2):g}s"

class StopDelay:
    """One stop delay, from the first stop signal to the moment the signal is forwarded."""

    def __init__(
        self,
        config: Config,
        system: Any,
        report: Reporter,
        facts: Facts,
        budget: Budget,
        targets: Callable[[], List[Proc]],
        child_pid: int,
    ) -> None:
        self.config, self.system, self.report, self.facts, self.budget = config, system, report, facts, budget
        self._targets = targets  # the generations the stop signal will go to
        self._child_pid = child_pid  # whose traffic --stop-delay auto watches

    def run(self, record: StopRecord, started: Optional[float] = None) -> Steps[None]:
        """Keep the child serving: a fixed time, or with --stop-delay auto until requests stop
        arriving. Forward early on a second stop signal or the child's exit. `started`: when
        the delay began (before this module was imported), else now."""
        config, facts = self.config, self.facts
        assert facts.stop is not None
        if started is None:
            started = self.system.now()
        auto = config.stop_delay_auto
        wanted = config.wanted_stop_delay
        deadline = self.budget.cap(started + wanted, facts.stop.at)
        assert deadline is not None
        seconds = max(0.0, deadline - started)
        reason = "elapsed"
        if facts.hurried:
            reason = "hurried"
        elif seconds <= 0:
            reason = "budget"
        else:
            cut = f" (cut from {wanted:g}s by --termination-budget)" if seconds < wanted else ""
            if auto:
                self._say(INFO, "stop_delay", f"stop delay auto: the child keeps serving until requests stop"
                          f" arriving, at most {shown(seconds)}{cut}", seconds=round(seconds, 3), mode="auto")
                reason = yield from self._drain(deadline, record)
            else:
                self._say(INFO, "stop_delay", f"stop delay: the child keeps serving for {shown(seconds)}{cut}",
                          seconds=round(seconds, 3))
                done = yield Wait(self._delay_cut_short, deadline)
                reason = self._why_cut_short() if done else "elapsed"
            if reason in ("elapsed", "max") and seconds < wanted:
                reason = "budget"
        record.stop_delay_ended = reason
        record.spent("stop_delay", self.system.now() - started)
        self._say(INFO, "stop_delay_ended", f"stop delay over after {shown(self.system.now() - started)}"
                  f" ({reason})", seconds=round(self.system.now() - started, 3), reason=reason)

    def _delay_cut_short(self) -> bool:
        return self.facts.hurried or not self._targets()

    def _why_cut_short(self) -> str:
        return "hurried" if self._targets() else "child exited"

    def _drain(self, deadline: float, record: StopRecord) -> Steps[str]:
        """--stop-delay auto: sample the app's traffic only inside this window, and forward
        once it has gone quiet (drain.py decides), at the latest at `deadline`. Never fails
        open: no way to see the traffic, or a bug anywhere here (an import that fails, a
        message that does not parse), means waiting the whole maximum."""
        config, system = self.config, self.system
        try:
            from graceinit.drain import TICK, Drain, Unavailable

            try:
                watch = system.traffic_watch(self._child_pid, config.drain_ignore)
            except Unavailable as error:
                self._say(WARNING, "drain_unavailable", f"--stop-delay auto: {error}; waiting the whole"
                          f" {shown(deadline - system.now())} instead", reason=str(error))
                watch = None
        except Exception:  # not the kernel refusing: a bug, or a broken environment
            internal_error(self.report, f"--stop-delay auto: cannot watch the traffic (internal error); waiting the"
                           f" whole {shown(deadline - system.now())} instead")
            watch = None
        if watch is None:
            done = yield Wait(self._delay_cut_short, deadline)
            return self._why_cut_short() if done else "max"
        self._say(INFO, "drain_watching", f"stop delay auto: watching {watch.describe()}", watching=watch.describe())
        started = system.now()
        detector = Drain(start=started, min_s=config.stop_delay_min, max_s=deadline - started)
        reason: Optional[str] = None
        try:
            while reason is None:
                try:
                    reason = detector.observe(watch.sample(system.now(), full=detector.wants_full()))
                    # never sooner than a tick from now: a sample that could not be read
                    # does not move the detector's clock
                    until = min(max(detector.next_sample_at(), system.now() + TICK), deadline)
                except Exception:  # a bug must neither cut the wait short nor make it endless
                    internal_error(self.report, "--stop-delay auto: internal error; waiting for the max instead")
                    until = deadline
                if reason is None and (yield Wait(self._delay_cut_short, until)):
                    reason = self._why_cut_short()
                elif reason is None and system.now() >= deadline:
                    reason = "max"
        finally:
            watch.close()
        try:
            self._explain(detector, reason, record)
        except Exception:  # the explanation is a courtesy: never a reason to stop differently
            internal_error(self.report, "--stop-delay auto: internal error while reporting the drain")
        return reason

    def _explain(self, detector: Any, reason: str, record: StopRecord) -> None:
        """Why it ended as it did: the sources that kept it going, those taken for probes,
        ignored peers that went on sending (a --drain-ignore too wide)."""
        probes = [f"{peer} every {period:.1f} s" for peer, period in detector.probes().items()]
        record.drain_probes = probes
        record.drain_ignored_requests = detector.ignored
        if probes:
            self._say(INFO, "drain_probes", f"stop delay auto: taken for probes, not waited for: {', '.join(probes)}",
                      probes=probes)
        if reason == "max":
            holdouts = [holdout.text() for holdout in detector.holdouts()[:5]]
            record.drain_holdouts = holdouts
            if holdouts:
                self._say(WARNING, "drain_holdouts", f"stop delay auto: waited the max: still sending:"
                          f" {'; '.join(holdouts)}", holdouts=holdouts)
            else:  # an idle service: nothing to fix, so no warning
                self._say(INFO, "drain_idle", "stop delay auto: waited the max: no request since the stop"
                          " signal, so nothing showed the traffic had moved elsewhere")
        late = detector.ignored_after()
        if late:
            peers = ", ".join(f"{peer} (+{seconds:.1f} s)" for peer, seconds in late[:5])
            self._say(WARNING, "drain_ignored_sending", f"stop delay auto: ignored peers went on sending after the"
                      f" counted ones stopped: {peers}; does --drain-ignore cover real clients?",
                      peers=[peer for peer, _ in late[:5]], ignored_requests=detector.ignored)
        windows = detector.quiet_windows()
        shown = "; ".join(f"{peer}: {moments} moments, silent {silent:g}s of {window:g}s"
                          for peer, (moments, silent, window) in list(windows.items())[:10])
        self._say(DEBUG, "drain_sampled", f"stop delay auto: {detector.samples} samples ({detector.complete} complete,"
                  f" {detector.unreadable} unreadable) of {detector.sources_seen} source(s) cost"
                  f" {detector.sampling_s * 1000:.0f} ms, sampling stalled {detector.stalled_s * 1000:.0f} ms; {shown}",
                  samples=detector.samples, complete=detector.complete, unreadable=detector.unreadable,
                  sources=detector.sources_seen, sampling_ms=round(detector.sampling_s * 1000, 1),
                  stalled_ms=round(detector.stalled_s * 1000, 1))

    def _say(self, level: int, event: str, msg: str, **fields: Any) -> None:
        self.report.emit(level, event, msg, **fields)
