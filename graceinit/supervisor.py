"""The one event loop, in tini's shape: wait, record, resume. It knows no phase.

`Supervisor.run` blocks in the kernel (`System.wait`) until an event or the nearest deadline
of a running step, so an idle graceinit costs nothing. Each event goes to the life cycle
(`Lifecycle.handle`), which records it as a fact and says whether a step may be waiting for
it (an ordinary signal is passed on then and there: that is what an init is for). Then every
step whose wait is over is resumed: the life cycle (lifecycle.py) and the steps it started
beside itself (old generations being stopped after a restart, a stop hook cut short).
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, List, Optional

    from graceinit.lifecycle import Lifecycle
    from graceinit.system import System
    from graceinit.waits import Steps, Wait

from graceinit.report import internal_error


class _Step:
    """A running generator of Waits, and what it waits for now."""

    __slots__ = ("steps", "wait", "started", "result")

    def __init__(self, steps: Steps[Any]) -> None:
        self.steps = steps
        self.wait: Optional[Wait] = None
        self.started = False
        self.result: Any = None

    def advance(self, now: float) -> bool:
        """Resume while its wait is over; True once it has finished. A bug in what it waits
        for is raised inside the step, where its own recovery is (Lifecycle.steps)."""
        while True:
            try:
                if not self.started:
                    self.wait = next(self.steps)
                    self.started = True
                    continue
                assert self.wait is not None
                try:
                    done = self.wait.done()
                except Exception as error:
                    self.wait = self.steps.throw(error)
                    continue
                if not done and (self.wait.deadline is None or now < self.wait.deadline):
                    return False
                self.wait = self.steps.send(done)
            except StopIteration as finished:
                self.result = finished.value
                return True


class Supervisor:
    def __init__(self, system: System, lifecycle: Lifecycle) -> None:
        self._system = system
        self._lifecycle = lifecycle
        self._beside: List[_Step] = []

    def run(self) -> int:
        """Run the container's life; returns graceinit's exit status."""
        lifecycle, system = self._lifecycle, self._system
        main = _Step(lifecycle.steps())
        ours = lifecycle.ours()
        deadline: Optional[float] = None
        # What arrived while graceinit started (a stop signal during a slow --stdout FIFO
        # open) is read before the life cycle acts: a stopped container never starts the app.
        changed = False
        for event in system.wait(0.0, ours):
            changed = self._handle(event) or changed
        while True:
            now = system.now()
            if changed or (deadline is not None and now >= deadline) or not main.started:
                if main.advance(now):  # a failure in it is the fallback's (Lifecycle.steps)
                    return int(main.result)
                self._advance_beside(now)
                deadlines = [step.wait.deadline for step in (main, *self._beside)
                             if step.wait is not None and step.wait.deadline is not None]
                deadline = min(deadlines) if deadlines else None
            # else: only orphans were reaped, or signals passed on: nothing the steps wait for
            # can have changed.
            timeout = None if deadline is None else max(0.0, deadline - now)
            changed = False
            for event in system.wait(timeout, ours):
                changed = self._handle(event) or changed

    def _advance_beside(self, now: float) -> None:
        started = self._lifecycle.beside
        while started:
            self._beside.append(_Step(started.pop(0)))
        for step in list(self._beside):
            try:
                finished = step.advance(now)
            except Exception:
                internal_error(self._lifecycle.report, "internal error in a step beside the life cycle"
                               " (an old generation, a stop hook cut short); carrying on")
                finished = True
            if finished:
                self._beside.remove(step)

    def _handle(self, event: Any) -> bool:
        try:
            return self._lifecycle.handle(event)
        except Exception:
            internal_error(self._lifecycle.report, f"internal error while handling {event}; carrying on")
            return True
