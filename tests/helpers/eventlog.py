"""The read side of the JSONL event log (events.py) for the stop and restart harnesses:
filter the records, and wait (bounded, helpers/waiting.py) for one to appear.

events.py itself stays stdlib-only with no package imports (the test programs load it as a
plain module); this module is for the test process only.
"""
from __future__ import annotations

from typing import Callable, Optional

from .events import read_all
from .launch import Supervised
from .waiting import WaitTimeout, wait_until

Event = dict


class EventLog:
    """The event log at `log` (a path), written by the programs a test started."""

    wait_timeout = 5.0  # wait_event's default

    def __init__(self, log: str):
        self.log = log

    def events(self, who: Optional[str] = None, ev: Optional[str] = None,
               pid: Optional[int] = None) -> list:
        return [e for e in read_all(self.log)
                if (who is None or e["who"] == who) and (ev is None or e["ev"] == ev)
                and (pid is None or e["pid"] == pid)]

    def signals(self, who: str) -> list:
        return self.events(who, "signal")

    def wait_event(self, who: str, ev: str, timeout: Optional[float] = None,
                   run: Optional[Supervised] = None, pid: Optional[int] = None,
                   pred: Optional[Callable[[Event], bool]] = None, count: int = 1) -> Event:
        """Wait (bounded) until `count` events `ev` from `who` (and `pid`, matching `pred`)
        exist; returns the count-th one. Fails early if `run` (graceinit) has exited
        meanwhile and the event is still missing."""
        timeout = self.wait_timeout if timeout is None else timeout

        def nth() -> Optional[Event]:
            found = [e for e in self.events(who, ev, pid) if pred is None or pred(e)]
            return found[count - 1] if len(found) >= count else None

        def settled():
            event = nth()
            if event is not None:
                return ("event", event)
            if run is not None and run.exited():
                event = nth()  # written just before the exit we saw
                return ("event", event) if event is not None else ("exited", None)
            return None

        def missing(why: str) -> str:
            return "%s/%s event #%d%s%s%s" % (
                who, ev, count, " (pid %s)" % pid if pid is not None else "", why,
                run.describe() if run is not None else "\n" + self.describe())

        outcome, event = wait_until(settled, timeout, lambda: missing(""),
                                    interval=0.005, max_interval=0.02)
        if outcome == "exited":
            raise WaitTimeout("no " + missing(" (graceinit exited first)"))
        return event

    def describe(self, last: Optional[int] = None) -> str:
        """The log (its last `last` records), indented, for failure messages."""
        events = self.events()
        if last is not None:
            events = events[-last:]
        return "\n".join("    " + str(e) for e in events)
