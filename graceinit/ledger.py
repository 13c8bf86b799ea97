"""The pod's own ledger: did the kernel turn clients away while the app stopped, and when?

graceinit is PID 1 in the pod's network namespace, and the kernel counts TCP per namespace
(/proc/net/snmp, /proc/net/netstat). The life cycle reads those counters through `System`
at the stop's boundaries, never before the stop signal, and the deltas between boundaries
become the termination report's loss fields. Nothing here does I/O of its own: the reads
are the `System`'s, so unit tests replay recorded counter histories (tests/helpers/fakes.py).

    stop signal --[stop_delay]--> forward --[grace]--> the app's exit --[after_exit]--> report

(the app exiting before the forward leaves the grace phase empty). The fields, all counts of
the whole namespace, not of the app's sockets alone:

- refused: resets the kernel sent that no abort below accounts for, Δ`Tcp: OutRsts` -
  Δ(`TCPAbortOnClose` + `TCPAbortOnData` + `TCPAbortOnLinger` + `TCPAbortOnMemory`).
  Mostly SYNs to a port nothing listens on any more. Also: connections the kernel had
  completed but the app never accepted when its listener closed, and segments on
  connections that no longer exist (a client sending on a keep-alive connection the app
  has closed).
- aborted: connections the kernel reset on a local socket's close, Δ(`TCPAbortOnClose` +
  `TCPAbortOnData` + `TCPAbortOnLinger` + `TCPAbortOnMemory`): closed with a request
  unread, data arriving after the close, SO_LINGER 0, orphans killed. Also the resets of
  the namespace's other sockets: the app's own outgoing connections, clients in the pod.
  Those the SIGKILL itself caused (unread requests at SIGKILL) are counted once, in
  open_at_sigkill.
- dropped: Δ`TcpExt: ListenDrops` (which includes `ListenOverflows`): handshake packets a
  listener discarded, mostly at a full accept queue. Clients retransmit (after 1 s, then
  3 s): a drop is a delay, and a loss only when the retry finds no listener (then it counts
  as refused as well).
- open_at_sigkill: connections a client opened to the app (accepted sockets that a process of
  graceinit's tree holds, on a listener's port or one outside the ephemeral port range),
  established, with a request in flight when SIGKILL went out: data waiting unread, data
  received and nothing ever sent, or data received after the last data sent. Idle
  keep-alive connections are not counted: killing them loses nothing. The app's own
  outgoing connections are left out by their ephemeral local port.

Where a number cannot be trusted, the fields say why instead: /proc/net unreadable, or a
network namespace shared with listeners no process of graceinit's tree holds (hostNetwork,
or another container of the pod: a sidecar's traffic would be counted as the app's), found
at the report, when the app's own listeners are gone.

Cost: at the stop signal, the forward and the app's exit the life cycle itself reads the
counters (one System call: two small reads of /proc, netstat.py); this module is imported
only when first needed (at SIGKILL or the report), and the netlink dumps (traffic.py) come
only then, off the forward's path.
"""

from __future__ import annotations

TYPE_CHECKING = False
if TYPE_CHECKING:  # annotations only
    from typing import Any, Dict, Mapping, Optional, Tuple

    from graceinit.system import System

# Boundaries, in the order of the stop.
STOP, FORWARD, EXIT, END = "stop", "forward", "exit", "end"
PHASES = ("stop_delay", "grace", "after_exit")  # between STOP..FORWARD, FORWARD..EXIT, EXIT..END
KINDS = ("refused", "aborted", "dropped")  # what the counters give, per phase

OUT_RSTS = "Tcp:OutRsts"
ABORTS = ("TcpExt:TCPAbortOnClose", "TcpExt:TCPAbortOnData", "TcpExt:TCPAbortOnLinger",
          "TcpExt:TCPAbortOnMemory")
LISTEN_DROPS = "TcpExt:ListenDrops"
COUNTERS = (OUT_RSTS, *ABORTS, LISTEN_DROPS)  # what System.net_counters must give

_PHASE_WORDS = {"stop_delay": "before the forward", "grace": "during the grace period",
                "after_exit": "after the app's exit"}


class Ledger:
    """Counter snapshots at the stop's boundaries, and what SIGKILL found open. Every method
    is safe to call from the stop sequence: a read that fails or a bug makes the ledger say
    "unknown", never an exception."""

    def __init__(self, system: System, read: Mapping[str, Any]) -> None:
        """`read`: what the life cycle read at the boundaries so far (`read_counters`), by
        boundary. It reads them itself, so that nothing is imported on the stop's path."""
        self._system = system
        self._snapshots: Dict[str, Dict[str, int]] = {}
        self.unknown: Optional[str] = None  # why the counters cannot be trusted
        self.open_at_sigkill: Optional[int] = 0  # None: the count at SIGKILL failed
        self._unread_at_sigkill = 0
        self._sigkill_error = ""
        self.killed_by: Optional[str] = None
        for boundary in (STOP, FORWARD, EXIT):
            if boundary in read:
                self._take(boundary, read[boundary])

    def end(self) -> None:
        """At the report: whose namespace this is, then the last snapshot (the report follows
        it at once). Asked here, off the stop's path: the app's listeners are gone, and any
        left that no process of graceinit's tree holds belong to someone else (the node's,
        with hostNetwork; a sidecar's)."""
        if self.unknown is None:
            try:
                others = self._system.foreign_listeners()
            except Exception as error:
                others = 0
                self.unknown = f"cannot tell whether the network namespace is the app's own ({_reason(error)})"
            if others:
                self.unknown = (f"the network namespace is shared: {others} listening socket(s) held by"
                                " processes outside graceinit's tree (hostNetwork, or a sidecar)")
        self.mark(END)

    def mark(self, boundary: str) -> None:
        """Snapshot the counters at a boundary now (the first snapshot of each one counts)."""
        self._take(boundary, read_counters(self._system))

    def _take(self, boundary: str, counters: Any) -> None:
        if self.unknown is not None or boundary in self._snapshots:
            return
        try:
            if isinstance(counters, Exception):
                raise counters
            self._snapshots[boundary] = {name: int(counters[name]) for name in COUNTERS}
        except OSError as error:
            self.unknown = f"the TCP counters are unreadable ({_reason(error)})"
        except Exception as error:
            self.unknown = f"the TCP counters cannot be read ({_reason(error)})"

    def sigkill(self, by: str) -> None:
        """Just before SIGKILL: count the app's connections with a request in flight."""
        self.killed_by = by
        try:
            self.open_at_sigkill, self._unread_at_sigkill = self._system.open_connections()
        except Exception as error:
            self.open_at_sigkill = None
            self._sigkill_error = _reason(error)

    # --- what it tells ---------------------------------------------------------------------

    def by_phase(self) -> Optional[Dict[str, Dict[str, int]]]:
        """{phase: {kind: count}}, or None when the counters cannot be trusted."""
        snaps = self._snapshots
        if self.unknown is not None or STOP not in snaps or END not in snaps:
            return None
        # A boundary not reached (no forward: the app exited during the stop delay) is the
        # next one's: its phase is empty.
        exit_ = snaps.get(EXIT, snaps[END])
        forward = snaps.get(FORWARD, exit_)
        edges = {"stop_delay": (snaps[STOP], forward), "grace": (forward, exit_), "after_exit": (exit_, snaps[END])}
        phases = {}
        for phase, (before, after) in edges.items():
            delta = {name: max(0, after[name] - before[name]) for name in COUNTERS}
            aborted = sum(delta[name] for name in ABORTS)
            phases[phase] = {
                "refused": max(0, delta[OUT_RSTS] - aborted),
                "aborted": aborted,
                "dropped": delta[LISTEN_DROPS],
            }
        # The unread requests SIGKILL reset are in open_at_sigkill: not twice.
        grace = phases["grace"]
        grace["aborted"] = max(0, grace["aborted"] - self._unread_at_sigkill)
        return phases

    def fields(self) -> Dict[str, Any]:
        """The termination report's loss fields (README: "The ledger")."""
        phases = self.by_phase()
        fields: Dict[str, Any] = {}
        for kind in KINDS:
            fields[kind] = None if phases is None else sum(counts[kind] for counts in phases.values())
        fields["open_at_sigkill"] = self.open_at_sigkill
        fields["losses_by_phase"] = phases
        counts = [value for value in fields.values() if isinstance(value, int)]
        if any(counts):
            fields["losses"] = "some"
        elif phases is None or self.open_at_sigkill is None:
            fields["losses"] = "unknown"
        else:
            fields["losses"] = "none"
        why = None
        if phases is None:
            why = self.unknown or "the TCP counters were not read at every boundary"
        elif self.open_at_sigkill is None:
            why = f"the connections open at SIGKILL could not be counted ({self._sigkill_error})"
        fields["losses_unknown"] = why
        return fields


def read_counters(system: System) -> Any:
    """The counters now, or what stopped them being read (the life cycle does the same at
    the stop signal, the forward and the app's exit, without importing this module)."""
    try:
        return system.net_counters()
    except Exception as error:
        return error


def summary(fields: Mapping[str, Any]) -> str:
    """The report's words for the loss fields: "losses: none", or what and when."""
    if fields["losses"] == "none":
        return "losses: none"
    parts = []
    phases = fields.get("losses_by_phase")
    if phases is None:
        parts.append(f"unknown ({fields['losses_unknown']})")
    else:
        for kind in KINDS:
            total, when, _ = _counted(phases, kind, PHASES)
            parts.append(f"{kind} {total}{when and f' ({when})'}")
    opened = fields["open_at_sigkill"]
    parts.append(f"open at SIGKILL {'unknown' if opened is None else opened}")
    return "losses: " + ", ".join(parts)


class Context:
    """What the warning needs of the rest of the stop, to name a likely cause."""

    __slots__ = ("stop_delay_s", "stop_delay_ended", "auto")

    def __init__(self, stop_delay_s: float, stop_delay_ended: Optional[str], auto: bool) -> None:
        self.stop_delay_s = stop_delay_s
        self.stop_delay_ended = stop_delay_ended
        self.auto = auto


def warning(fields: Mapping[str, Any], context: Context, killed_by: Optional[str]) -> Optional[str]:
    """One line naming each non-zero loss field and its likely cause, or None."""
    phases = fields.get("losses_by_phase") or {}
    clauses = []
    early, _, _ = _counted(phases, "refused", ("stop_delay",))
    if early:
        clauses.append(f"{early} connection(s) refused while the app should still have served: nothing"
                       " listened on their port (a stop hook closed it, or clients use a port the app does"
                       " not serve)")
    late, when, one = _counted(phases, "refused", ("grace", "after_exit"))
    if late:
        split = "" if one else f" ({when})"  # one phase: the clause says when
        clauses.append(f"{late} connection(s) refused after the app closed its listener{split}: {_delay_cause(context)}")
    aborted, when, one = _counted(phases, "aborted", PHASES)
    if aborted:
        cause = ("the app closed connections with requests unread or unanswered (it does not finish"
                 " in-flight requests), or clients reset theirs")
        if when == _PHASE_WORDS["stop_delay"]:
            cause = "connections reset while the app still served: the app's or its clients' doing"
        clauses.append(f"{aborted} connection(s) aborted {_when(when, one)}: {cause}")
    dropped, when, one = _counted(phases, "dropped", PHASES)
    if dropped:
        clauses.append(f"{dropped} SYN(s) dropped at a full accept queue {_when(when, one)}:"
                       " the app accepted too slowly (clients retry after 1 s or more)")
    opened = fields.get("open_at_sigkill")
    if opened:
        cause = "a third stop signal" if killed_by == "escalation" else "raise --grace-period"
        clauses.append(f"{opened} connection(s) open at SIGKILL with a request in flight: {cause}")
    return "; ".join(clauses) if clauses else None


def _counted(phases: Mapping[str, Mapping[str, int]], kind: str, which: Tuple[str, ...]) -> Tuple[int, str, bool]:
    """The total of `kind` over `which` phases, when, and whether in one phase only: "during
    the grace period", or "12 during the grace period, 29 after the app's exit"."""
    counts = [(phase, phases[phase][kind]) for phase in which if phases.get(phase, {}).get(kind)]
    if len(counts) == 1:
        return counts[0][1], _PHASE_WORDS[counts[0][0]], True
    words = ", ".join(f"{count} {_PHASE_WORDS[phase]}" for phase, count in counts)
    return sum(count for _, count in counts), words, False


def _when(words: str, one: bool) -> str:
    return words if one else f"({words})"


def _delay_cause(context: Context) -> str:
    ended = context.stop_delay_ended
    seconds = f"{round(context.stop_delay_s, 2):g} s"
    if ended in (None, "none"):  # "none": no delay was asked for
        return "there was no stop delay: set --stop-delay (or --stop-delay auto)"
    if ended == "hurried":
        return f"a second stop signal cut the stop delay short (ended: hurried at {seconds})"
    if ended == "budget":
        return f"--termination-budget cut the stop delay short (ended: budget at {seconds})"
    if ended == "child exited":
        return f"the app exited on its own during the stop delay (at {seconds})"
    if context.auto:
        return f"the stop delay ended before traffic stopped (ended: {ended} at {seconds})"
    return (f"the stop delay ended before traffic stopped (ended: {ended} at {seconds}): lengthen it"
            " or use --stop-delay auto")


def _reason(error: BaseException) -> str:
    if isinstance(error, OSError) and error.strerror:
        return f"{error.filename}: {error.strerror}" if error.filename else error.strerror
    return str(error) or type(error).__name__
