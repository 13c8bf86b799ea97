"""Structured events: the one reporter the supervisor is given, and the termination report.

Every step of the life cycle is reported as an event with a stable name and fields (listed in
docs/events.md, checked by tests/unit/test_events_doc.py). Log pipelines key on those names,
so they are an interface. The real reporter
writes through log.py (text or JSON); unit tests give the supervisor one that records.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # typing costs every container start: annotations only
    from typing import Any, Dict, List, Optional

from graceinit import log
from graceinit.log import ERROR

if TYPE_CHECKING:
    from typing import Protocol
else:
    Protocol = object  # at run time the protocols are plain documentation



class Reporter(Protocol):
    def emit(self, level: int, event: str, msg: str, **fields: Any) -> None: ...

    def enabled(self, level: int) -> bool: ...

    def dropped(self) -> int:
        """How many log lines could not be written (the termination report says so)."""


def internal_error(report: Reporter, message: str) -> None:
    """A bug in graceinit, reported with the traceback of the exception being handled."""
    import traceback

    report.emit(ERROR, "internal_error", message, traceback=traceback.format_exc().rstrip())


class LogReporter:
    """Events to graceinit's stderr, as text or JSON (--log-format)."""

    def emit(self, level: int, event: str, msg: str, **fields: Any) -> None:
        log.emit(level, event, msg, **fields)

    def enabled(self, level: int) -> bool:
        return log.enabled(level)

    def dropped(self) -> int:
        return log.dropped_total()


class StopRecord:
    """What the termination report tells: when each phase of the stop started and ended."""

    def __init__(self, signal: str, at: float, budget_s: Optional[float]) -> None:
        self.signal = signal
        self.at = at
        self.budget_s = budget_s
        self.phases: Dict[str, float] = {}  # phase -> seconds spent
        self.stop_delay_ended = "none"  # no delay was asked for; else why it ended
        self.forwarded = False
        self.ended_by = "exit"
        self.leftovers_terminated = 0
        self.leftovers_killed = 0
        self.survivors: List[int] = []  # leftovers still alive when graceinit gave up on them
        self.failed_hooks: List[str] = []
        # --stop-delay auto (stopdelay.py): what kept it going at the max, what was taken for
        # probes, how many requests came from ignored peers and ports; None: no drain ran
        self.drain_holdouts: Optional[List[str]] = None
        self.drain_probes: Optional[List[str]] = None
        self.drain_ignored_requests: Optional[int] = None

    def spent(self, phase: str, seconds: float) -> None:
        self.phases[phase] = self.phases.get(phase, 0.0) + max(0.0, seconds)

    def fields(self, status: int, now: float, dropped: int) -> Dict[str, Any]:
        fields: Dict[str, Any] = {
            "signal": self.signal,
            "status": status,
            "ended_by": self.ended_by,
            "total_s": round(now - self.at, 3),
        }
        for phase in ("stop_hooks", "stop_delay", "grace", "leftovers", "post_hooks"):
            fields[f"{phase}_s"] = round(self.phases.get(phase, 0.0), 3)
        fields["stop_delay_ended"] = self.stop_delay_ended
        fields["leftovers_terminated"] = self.leftovers_terminated
        fields["leftovers_killed"] = self.leftovers_killed
        fields["leftovers_survived"] = len(self.survivors)
        fields["failed_hooks"] = list(self.failed_hooks)
        if self.drain_ignored_requests is not None:
            fields["drain_holdouts"] = list(self.drain_holdouts or ())
            fields["drain_probes"] = list(self.drain_probes or ())
            fields["drain_ignored_requests"] = self.drain_ignored_requests
        if self.budget_s is not None:
            fields["budget_s"] = self.budget_s
        if dropped:
            fields["log_lines_dropped"] = dropped
        return fields


def termination_message(fields: Dict[str, Any]) -> str:
    """The report as one text line."""
    delay = f"stop delay {fields['stop_delay_s']:g}s"
    if fields["stop_delay_ended"] != "none":
        delay += f" ({fields['stop_delay_ended']})"
    parts = [
        f"termination report: {fields['signal']} -> exit {fields['status']} in {fields['total_s']:g}s,"
        f" ended by {fields['ended_by']};",
        f"stop hooks {fields['stop_hooks_s']:g}s, {delay}, grace {fields['grace_s']:g}s,"
        f" leftovers {fields['leftovers_s']:g}s, post hooks {fields['post_hooks_s']:g}s;",
        f"leftovers terminated {fields['leftovers_terminated']}, killed {fields['leftovers_killed']}"
        + (f", survived {fields['leftovers_survived']};" if fields.get("leftovers_survived") else ";"),
        f"failed hooks: {', '.join(fields['failed_hooks']) or 'none'}",
    ]
    if fields.get("drain_holdouts"):
        parts[-1] += f"; drain held by {', '.join(fields['drain_holdouts'])}"
    if fields.get("drain_ignored_requests"):
        parts[-1] += f"; {fields['drain_ignored_requests']} ignored requests"
    if "budget_s" in fields:
        parts[-1] += f"; budget {fields['budget_s']:g}s"
    if "log_lines_dropped" in fields:
        parts[-1] += f"; {fields['log_lines_dropped']} log lines dropped"
    if "losses" in fields:  # the ledger's (ledger.py): only a stop that reached the child has one
        from graceinit.ledger import summary

        parts[-1] += f"; {summary(fields)}"
    return " ".join(parts)
