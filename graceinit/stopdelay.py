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
                          f" arriving, at most {round(seconds, 2):g}s{cut}", seconds=round(seconds, 3), mode="auto")
                reason = yield from self._drain(deadline)
            else:
                self._say(INFO, "stop_delay", f"stop delay: the child keeps serving for {round(seconds, 2):g}s{cut}",
                          seconds=round(seconds, 3))
                done = yield Wait(self._delay_cut_short, deadline)
                reason = self._why_cut_short() if done else "elapsed"
            if reason in ("elapsed", "max") and seconds < wanted:
                reason = "budget"
        record.stop_delay_ended = reason
        record.spent("stop_delay", self.system.now() - started)
        self._say(INFO, "stop_delay_ended", f"stop delay over after {round(self.system.now() - started, 2):g}s"
                  f" ({reason})", seconds=round(self.system.now() - started, 3), reason=reason)

    def _delay_cut_short(self) -> bool:
        return self.facts.hurried or not self._targets()

    def _why_cut_short(self) -> str:
        return "hurried" if self._targets() else "child exited"

    def _drain(self, deadline: float) -> Steps[str]:
        """--stop-delay auto: sample the app's traffic only inside this window, and forward
        once it has gone quiet (drain.py decides), at the latest at `deadline`. Never fails
        open: no way to see the traffic, or a bug here, means waiting the whole maximum."""
        from graceinit.drain import Drain, Unavailable

        config, system = self.config, self.system
        try:
            watch = system.traffic_watch(self._child_pid, config.drain_ignore)
        except Unavailable as error:
            self._say(WARNING, "drain_unavailable", f"--stop-delay auto: {error}; waiting the whole"
                      f" {round(deadline - system.now(), 2):g}s instead", reason=str(error))
            done = yield Wait(self._delay_cut_short, deadline)
            return self._why_cut_short() if done else "max"
        self._say(INFO, "drain_watching", f"stop delay auto: watching {watch.describe()}", watching=watch.describe())
        started = system.now()
        detector = Drain(start=started, min_s=config.stop_delay_min, max_s=deadline - started)
        reason: Optional[str] = None
        try:
            while reason is None:
                try:
                    reason = detector.observe(watch.sample(system.now()))
                    until = min(detector.next_sample_at(), deadline)
                except Exception:  # a bug must neither cut the wait short nor make it endless
                    internal_error(self.report, "--stop-delay auto: internal error; waiting for the max instead")
                    until = deadline
                if reason is None and (yield Wait(self._delay_cut_short, until)):
                    reason = self._why_cut_short()
                elif reason is None and system.now() >= deadline:
                    reason = "max"
        finally:
            watch.close()
        self._say(DEBUG, "drain_sampled", f"stop delay auto: {detector.samples} samples of"
                  f" {detector.sources_seen} source(s) cost {detector.sampling_s * 1000:.0f} ms",
                  samples=detector.samples, sources=detector.sources_seen,
                  sampling_ms=round(detector.sampling_s * 1000, 1))
        return reason

    def _say(self, level: int, event: str, msg: str, **fields: Any) -> None:
        self.report.emit(level, event, msg, **fields)
