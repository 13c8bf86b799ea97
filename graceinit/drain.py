"""When have requests stopped arriving? The pure detector behind `--stop-delay auto`.

No I/O and no clock of its own: it is fed `TrafficSample`s (traffic.py reads them from the
kernel; tests write them as data) and says when the wait is over.

The rule, from measurements of real traffic shapes:

- A request is data arriving on a connection to the app's ports (the `data_segs_in` counter
  of an established connection moving), or a new connection. Counting handshakes alone is
  blind to an L7 proxy's pooled keep-alive connections, which just stop carrying requests.
- A *source* is a peer address. Each source gets its own quiet window, scaled to its own
  rate: K mean gaps between its arrivals, the gap estimated cautiously (from its recent
  arrivals, and from all of them over the whole wait, silence included, whichever is
  longer, with about 2 sigma fewer arrivals than seen), at least twice the longest gap
  seen recently (a bursty or stalling source), never less than QUIET_FLOOR (a fast
  source's 300 ms stall must not end the wait). A 5 req/s Poisson source waits about 3.5 s;
  one at 2 req/s or less cannot prove within 30 s that it stopped, and waits for the max.
- The wait ends ("quiet") once every source that sent something since the stop signal is
  past its window. A service from which nothing arrives proves nothing (the platform may
  not have started removing it yet): it waits for the max. So does a source that never
  stops, such as a keep-alive client pinned to this pod by conntrack: safe, not fast.
- The first sample is a baseline: its counters are cumulative since each connection opened.
"""

from __future__ import annotations

from typing import Dict, List, Mapping, NamedTuple, Optional, Tuple

# Quiet window for a source, in its own mean gaps between requests: P(a Poisson gap is
# longer) = e^-8, about 3e-4 per gap (and the gap is taken long: see _Source.window).
K_MEAN_GAPS = 8.0
# ... and at least this many times the longest gap between its arrivals seen recently.
K_LONGEST_GAP = 2.0
# ... and never shorter than this: client stalls of ~300 ms are common under load (a 0.2 s
# window lost requests in the research, 0.5 s did not).
QUIET_FLOOR = 0.45
# How many of a source's latest arrivals its rate is estimated from: recent enough to follow
# a rate that changes, enough to be stable.
RECENT_ARRIVALS = 16
# Sampling: every TICK seconds, stretched so that sampling costs at most CPU_SHARE of a core.
TICK = 0.05
CPU_SHARE = 0.03


class Unavailable(Exception):
    """The app's traffic cannot be watched here (no netlink, refused, no TCP listener):
    the caller falls back to a fixed delay of the max."""


class Conn(NamedTuple):
    """One connection to the app's ports, as one sample saw it."""

    peer: str  # the remote address: the source
    segs_in: Optional[int]  # data segments received so far; None once closed (TIME_WAIT)
    last_recv_at: float  # when data last arrived (monotonic); for a closed one: when it closed


class TrafficSample(NamedTuple):
    """Every connection to the app's ports at one moment (ignored peers already left out)."""

    at: float  # monotonic time of the sample
    cost_s: float  # what taking it cost (wall seconds), to stretch the tick
    conns: Mapping[int, Conn]  # by a stable id of the connection (the kernel's socket cookie)


class _Source:
    """The arrivals seen from one peer since the stop signal."""

    __slots__ = ("events", "last_arrival", "total")

    def __init__(self) -> None:
        self.events: List[Tuple[float, int]] = []  # (latest arrival in a sample, how many)
        self.last_arrival = 0.0
        self.total = 0

    def add(self, at: float, count: int) -> None:
        self.events.append((at, count))
        self.total += count
        self.last_arrival = max(self.last_arrival, at)
        if len(self.events) > 4 * RECENT_ARRIVALS:
            del self.events[: 2 * RECENT_ARRIVALS]

    def window(self, origin: float, now: float) -> float:
        """How long this source must be silent before it counts as stopped."""
        counted = 0
        longest = 0.0
        later = self.events[-1][0]
        before = origin
        later_count = 1
        for index in range(len(self.events) - 1, -1, -1):
            at, count = self.events[index]
            # the gaps between the arrivals of one sample interval: samples come further
            # apart when they are expensive, and that must not read as a stalling source
            longest = max(longest, (later - at) / later_count)
            counted += count
            later, later_count = at, count
            if counted >= RECENT_ARRIVALS:
                before = self.events[index - 1][0] if index > 0 else origin
                break
        else:
            before = origin
        longest = max(longest, (later - before) / later_count)
        # Few arrivals say little about a rate: take the mean gap the evidence still allows
        # (n - 2 sqrt(n) arrivals, about 2 sigma fewer), not the likeliest one. And the rate
        # over the whole time watched, silence included, keeps a slow source's few bunched
        # arrivals from passing for a fast one: a source never proves it stopped with
        # fewer arrivals than its silence is long.
        recent_gap = max(0.0, self.events[-1][0] - before) / _fewer(counted)
        whole_gap = max(0.0, now - origin) / _fewer(self.total)
        mean_gap = max(recent_gap, whole_gap)
        return max(QUIET_FLOOR, K_MEAN_GAPS * mean_gap, K_LONGEST_GAP * longest)


def _fewer(count: int) -> float:
    return max(count - 2.0 * count ** 0.5, 0.5)


class Drain:
    """Feed it samples; it says when requests have stopped ("quiet") or time is up ("max")."""

    def __init__(self, *, start: float, min_s: float, max_s: float) -> None:
        self.start = start
        self.min_s = min_s
        self.max_s = max_s
        self._conns: Dict[int, Conn] = {}
        self._sources: Dict[str, _Source] = {}
        self._baseline: Optional[float] = None  # when the first sample was taken
        self._last_at = start
        self._last_cost = 0.0
        # for the report
        self.samples = 0
        self.unreadable = 0
        self.sampling_s = 0.0
        self.last_request_at: Optional[float] = None
        self.reason: Optional[str] = None
        self._quiet_once = False  # the previous sample already found every source quiet

    @property
    def sources_seen(self) -> int:
        return len(self._sources)

    def observe(self, sample: Optional[TrafficSample]) -> Optional[str]:
        """Take one sample (None: it could not be read, which proves nothing). Returns
        "quiet" or "max" once the wait is over, else None."""
        if sample is None:
            self.unreadable += 1
            return self._end_at(self._last_at, quiet=False)
        self.samples += 1
        self.sampling_s += sample.cost_s
        self._last_at = max(self._last_at, sample.at)
        self._last_cost = sample.cost_s
        if self._baseline is None:
            self._baseline = sample.at
            self._conns = dict(sample.conns)
            return self._end_at(sample.at, quiet=False)
        for key, conn in sample.conns.items():
            count, at = self._arrivals(self._conns.get(key), conn, sample.at)
            if count:
                source = self._sources.get(conn.peer)
                if source is None:
                    source = self._sources[conn.peer] = _Source()
                source.add(at, count)
                if self.last_request_at is None or at > self.last_request_at:
                    self.last_request_at = at
        self._conns = dict(sample.conns)
        # Quiet must hold at two samples in a row: after a stall of the whole machine (or of
        # graceinit) the first sample comes overdue, before the clients have caught up.
        quiet = self._all_quiet(sample.at)
        confirmed, self._quiet_once = quiet and self._quiet_once, quiet
        return self._end_at(sample.at, quiet=confirmed)

    def next_sample_at(self) -> float:
        """When to take the next sample: every TICK, less often when a sample is expensive."""
        return min(self._last_at + max(TICK, self._last_cost / CPU_SHARE), self.start + self.max_s)

    def quiet_windows(self) -> Dict[str, float]:
        """Each source's current quiet window (for the report at -vv)."""
        origin = self._baseline if self._baseline is not None else self.start
        return {peer: source.window(origin, self._last_at) for peer, source in self._sources.items()}

    # --- the rule ------------------------------------------------------------------------

    @staticmethod
    def _arrivals(before: Optional[Conn], now: Conn, at: float) -> Tuple[int, float]:
        """How many requests came on this connection since the last sample, and when the
        latest came."""
        if before is None:  # a new connection is a request, and carries what it received
            return max(1, now.segs_in or 0), min(now.last_recv_at, at)
        if now.segs_in is None:  # closed since: a request only if none was seen on it yet
            return (1, min(now.last_recv_at, at)) if before.segs_in == 0 else (0, at)
        if before.segs_in is None:  # a closed id back open: the kernel reused it
            return max(1, now.segs_in), min(now.last_recv_at, at)
        moved = now.segs_in - before.segs_in
        return (moved, min(now.last_recv_at, at)) if moved > 0 else (0, at)

    def _all_quiet(self, at: float) -> bool:
        if not self._sources:
            return False  # nothing arrived: an idle service proves nothing
        origin = self._baseline if self._baseline is not None else self.start
        return all(at - source.last_arrival >= source.window(origin, at) for source in self._sources.values())

    def _end_at(self, at: float, *, quiet: bool) -> Optional[str]:
        if at >= self.start + self.max_s:
            self.reason = "max"
        elif quiet and at >= self.start + self.min_s:
            self.reason = "quiet"
        return self.reason
