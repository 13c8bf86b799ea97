"""When have requests stopped arriving? The pure detector behind `--stop-delay auto`.

No I/O and no clock of its own: it is fed `TrafficSample`s (traffic.py reads them from the
kernel; tests write them as data) and says when the wait is over.

The interface (stopdelay.py drives it):

    watch = system.traffic_watch(pid, ignore)    # traffic.TrafficWatch; raises Unavailable
    drain = Drain(start=now, min_s=..., max_s=...)
    loop: reason = drain.observe(watch.sample(now, full=drain.wants_full()))
          ... until reason ("quiet" or "max"); sleep until drain.next_sample_at()
    drain.holdouts(), drain.probes(), drain.ignored   # why it ended at the max, for the report
    drain.samples, drain.sources_seen, drain.sampling_s

A sample is a list of `Arrival`s, not of segments: one arrival per request the kernel can
tell apart (a connection that carried data and closed, however short; a new connection
found open; a kept-alive connection whose data counter moved since the last look), each
stamped with when its data came. The first sample also carries the pod's history from
before the stop signal (the connections the server closed in the last minute, still in
TIME_WAIT with their close times; the last data on the open ones).

The rule, from measured traffic shapes (see docs/drain.md):

- A *source* is a peer address. Its arrivals less than MERGE_S apart are one *moment*: a
  burst of 20 simultaneous requests is one piece of evidence about the source's rhythm,
  not twenty (counting them as twenty made bursts look like a fast source that had stopped).
- Each source gets its own quiet window: never less than QUIET_FLOOR, at least
  K_LONGEST_GAP times the longest gap between its recent moments (a bursty or stalling
  source), and K_MEAN_GAPS mean gaps, the mean taken cautiously: over its recent moments
  and over everything seen of it (history and silence included), with about 2 sigma fewer
  moments than seen. So a source proves it stopped only with about 17 moments seen: at
  20 moments/s or more (300 req/s: ~0.4 s) that is quick; a 10 req/s source that stopped
  1 s after the stop signal, with no history, cannot prove it and waits for the max.
- *Probes*: a source whose every request is a connection of its own, on a strict clock
  (at least PROBE_BEATS beats, every gap within PROBE_JITTER of the period, a period
  between PROBE_PERIOD), is taken for a health check and does not keep the wait going.
  A Poisson client does not pass (see tests/unit/test_drain.py).
- The wait ends ("quiet") once every other source is past its window, with one source at
  least having sent since the stop signal (an idle service proves nothing: the platform may
  not have started removing it), no connection left unattributed (`pending`), at two
  samples in a row, the second one `complete` (it saw every open connection).
- Anything the sampler could not read or attribute (`None`, `lost`) never ends the wait.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

# Quiet window for a source, in its own mean gaps between moments: P(a Poisson gap is
# longer) = e^-8, about 3e-4 per gap (and the gap is taken long: see _Source.window).
K_MEAN_GAPS = 8.0
# ... and at least this many times the longest gap between its recent moments.
K_LONGEST_GAP = 2.0
# ... and never shorter than this: client stalls of ~300 ms are common under load (a 0.2 s
# window lost requests in the research, 0.5 s did not).
QUIET_FLOOR = 0.45
# Arrivals of one source closer than this are one moment (a burst is one piece of evidence).
MERGE_S = 0.01
# The rate and the longest gap are taken over a source's latest moments: this many, and
# all of those in the last LOOKBACK_S.
RECENT_MOMENTS = 16
LOOKBACK_S = 10.0
# Moments kept per source (history at 300 req/s for 60 s merges to ~3,000).
KEEP_MOMENTS = 4096
# Probes: this many arrivals at least, on a clock: each within max(PROBE_JITTER_S,
# PROBE_JITTER of the period) of its beat, or late by up to a quarter period (at most
# PROBE_LATE of them), at most PROBE_MISSED beats missed in a row (see _Source.period).
PROBE_BEATS = 5
PROBE_JITTER = 0.05
PROBE_JITTER_S = 0.1
PROBE_PERIOD = (0.5, 30.0)
PROBE_LATE = 0.2
PROBE_MISSED = 4  # beats in a row; and half of all beats at most
# Quiet must hold at two samples this far apart at least (see Drain.observe).
CONFIRM_S = 0.1
# Sampling: every TICK seconds, stretched so that sampling costs at most CPU_SHARE of a core
# (dumps have a budget of their own: traffic.DUMP_SHARE; the event thread costs ~0.3 %).
TICK = 0.02
CPU_SHARE = 0.01


class Unavailable(Exception):
    """The app's traffic cannot be watched here (no netlink, refused, no TCP listener):
    the caller falls back to a fixed delay of the max."""


class Arrival(NamedTuple):
    """One request, as the kernel can tell it apart."""

    peer: str  # the remote address: the source
    at: float  # when its data came (monotonic; may be before the stop signal: history)
    fresh: bool  # the first request of its connection (a new connection), not a later one
    ignored: bool = False  # from a --drain-ignore peer or port: counted for the report only


class TrafficSample(NamedTuple):
    at: float  # monotonic time of the sample
    cost_s: float  # what taking it cost (CPU seconds), to stretch the tick
    arrivals: Sequence[Arrival] = ()
    pending: int = 0  # connections opened that the sampler could not attribute yet
    complete: bool = True  # it saw every open connection of the app (a full dump)
    lost: bool = False  # events were lost (a full receive buffer): something arrived
    history_from: Optional[float] = None  # first sample: closed connections seen since then
    dump_s: float = 0.0  # the part of cost_s spent on a dump, which the sampler budgets itself


def kept_alive_arrivals(peer: str, since: float, last: float, requests: int, ignored: bool = False) -> List[Arrival]:
    """The arrivals of `requests` requests on one kept-alive connection between two looks
    (since the previous look, the latest at `last`): the kernel gives their number, not
    their times, so they are spread evenly up to `last`, no closer than MERGE_S (no more
    evidence than a stream at that spacing could give: a burst of 20 pipelined requests
    within one 20 ms look still counts as two moments at most)."""
    count = max(1, min(requests, int((last - since) / MERGE_S)))
    return [Arrival(peer, last - (last - since) * index / count, False, ignored) for index in range(count)]


class Holdout(NamedTuple):
    """A source that kept the wait going, for the warning and the report."""

    peer: str
    requests: int  # since the stop signal
    rhythm: str  # "periodic every 1.0 s", "about 3.2/s", ...
    periodic: bool

    def text(self) -> str:
        hint = f": a probe? --drain-ignore {self.peer}" if self.periodic else ""
        return f"{self.peer} ({self.requests} requests, {self.rhythm}{hint})"


class _Source:
    """What one peer sent: its moments (history included), merged MERGE_S apart. What only
    depends on the moments is computed once per change, not once per sample: a busy
    source has thousands."""

    __slots__ = ("moments", "counts", "fresh_only", "requests", "origin", "close_gap", "_shape", "_probe")

    def __init__(self, origin: float) -> None:
        self.moments: List[float] = []
        self.counts: List[int] = []  # arrivals merged into each moment
        self.fresh_only = True  # every request came on a connection of its own
        self.requests = 0  # since the stop signal
        self.origin = origin  # since when it has been watched
        self.close_gap = False  # two moments closer than a probe's would be, or a merged one
        self._shape: Optional[Tuple[float, float, int]] = None  # (recent span, longest gap, recent moments)
        self._probe: Optional[Tuple[Optional[float]]] = None

    def add(self, arrival: Arrival, start: float) -> None:
        if not arrival.fresh:
            self.fresh_only = False
        if arrival.at >= start:
            self.requests += 1
        moments, at = self.moments, arrival.at
        index = bisect_left(moments, at)
        self._shape = self._probe = None
        for near in (index - 1, index):
            if 0 <= near < len(moments) and abs(moments[near] - at) < MERGE_S:
                self.counts[near] += 1
                self.close_gap = True
                return
        for near in (index - 1, index):
            if 0 <= near < len(moments) and abs(moments[near] - at) < PROBE_PERIOD[0] / 2:
                self.close_gap = True
        moments.insert(index, at)
        self.counts.insert(index, 1)
        if len(moments) > KEEP_MOMENTS:
            del moments[: KEEP_MOMENTS // 4], self.counts[: KEEP_MOMENTS // 4]
        self.origin = min(self.origin, at)

    @property
    def last(self) -> float:
        return self.moments[-1]

    def _recent(self) -> Tuple[float, float, int]:
        """(span of the recent moments and the gap before them, the longest gap among them,
        how many): the latest RECENT_MOMENTS moments and all of the last LOOKBACK_S."""
        if self._shape is None:
            moments = self.moments
            last = moments[-1]
            first = max(0, min(len(moments) - RECENT_MOMENTS, bisect_left(moments, last - LOOKBACK_S)))
            longest = max((moments[i + 1] - moments[i] for i in range(first, len(moments) - 1)), default=0.0)
            before = moments[first - 1] if first > 0 else self.origin
            if first == 0:  # watched from before its first moment: that wait is a gap too
                longest = max(longest, moments[0] - self.origin)
            self._shape = (last - before, longest, len(moments) - first)
        return self._shape

    def window(self, now: float, start: float) -> float:
        """How long this source must be silent before it counts as stopped."""
        span, longest, recent = self._recent()
        # Few moments say little about a rate: take the mean gap the evidence still allows
        # (n - 2 sqrt(n) moments, about 2 sigma fewer), not the likeliest one. Over the whole
        # time watched, silence included, a slow source's few bunched moments cannot pass
        # for a fast one's: it never proves it stopped with fewer moments than its silence
        # is long.
        mean_gap = max(0.0, span) / _fewer(recent)
        if self.moments[-1] >= start:  # sent since the stop signal: all it was watched counts
            mean_gap = max(mean_gap, max(0.0, now - self.origin) / _fewer(len(self.moments)))
        return max(QUIET_FLOOR, K_MEAN_GAPS * mean_gap, K_LONGEST_GAP * longest)

    def period(self) -> Optional[float]:
        """The period of a strict clock the moments keep, if they keep one (probes): one
        moment per beat at most, each within PROBE_JITTER of its beat or late by up to a
        quarter period (a probe can be delayed by a loaded node, never be early), at most
        PROBE_LATE of them late, at most PROBE_MISSED beats missed in a row."""
        moments = self.moments
        if len(moments) < 3 or self.close_gap:
            return None
        gaps = sorted(b - a for a, b in zip(moments, moments[1:]))
        period = gaps[len(gaps) // 2]
        if not PROBE_PERIOD[0] <= period <= PROBE_PERIOD[1]:
            return None
        beats = [round((m - moments[0]) / period) for m in moments]
        # Missed beats: a probe connection that the client closed first leaves no TIME_WAIT
        # in the history (kubelet and server race to close).
        steps = [b - a for a, b in zip(beats, beats[1:])]
        if (any(not 1 <= step <= PROBE_MISSED + 1 for step in steps) or 2 * len(beats) < beats[-1] + 1
                or steps.count(1) < PROBE_BEATS - 1):
            return None
        # the clock by least squares over the beats (a period taken from one gap drifts)
        n = len(moments)
        mean_beat, mean_at = sum(beats) / n, sum(moments) / n
        spread = sum((b - mean_beat) ** 2 for b in beats)
        period = sum((b - mean_beat) * (m - mean_at) for b, m in zip(beats, moments)) / spread
        jitter = max(PROBE_JITTER_S, PROBE_JITTER * period)
        offsets = sorted(m - mean_at - (b - mean_beat) * period for b, m in zip(beats, moments))
        zero = offsets[len(offsets) // 4]  # on time: most beats are; the late ones are the rest
        late = 0
        for offset in offsets:
            offset -= zero
            if offset < -jitter or offset > period / 4:
                return None
            late += offset > jitter
        return period if late <= PROBE_LATE * (n - PROBE_BEATS) else None  # (few beats: none late)

    def probe_period(self) -> Optional[float]:
        if self._probe is None:
            probe = self.fresh_only and len(self.moments) >= PROBE_BEATS and not self.close_gap
            self._probe = (self.period() if probe else None,)
        return self._probe[0]

    def rhythm(self, now: float) -> Tuple[str, bool]:
        period = self.period()
        if period is not None:
            return f"periodic every {period:.1f} s", True
        span = max(now - self.origin, 1e-3)
        return f"about {len(self.moments) / span:.1f} moments/s, last {now - self.last:.1f} s ago", False


def _fewer(count: int) -> float:
    return max(count - 2.0 * count ** 0.5, 0.5)


class Drain:
    """Feed it samples; it says when requests have stopped ("quiet") or time is up ("max")."""

    def __init__(self, *, start: float, min_s: float, max_s: float) -> None:
        self.start = start
        self.min_s = min_s
        self.max_s = max_s
        self._sources: Dict[str, _Source] = {}
        self._ignored: Dict[str, _Source] = {}
        self._last_at = start
        self._last_cost = 0.0
        self._lost_at: Optional[float] = None  # the latest sample that lost events
        self._quiet_since: Optional[float] = None  # the first of the samples in a row found quiet
        # for the report
        self.samples = 0
        self.unreadable = 0
        self.sampling_s = 0.0
        self.ignored = 0  # requests from ignored peers and ports since the stop signal
        self.last_request_at: Optional[float] = None
        self.reason: Optional[str] = None

    @property
    def sources_seen(self) -> int:
        return len(self._sources)

    def observe(self, sample: Optional[TrafficSample]) -> Optional[str]:
        """Take one sample (None: it could not be read, which proves nothing). Returns
        "quiet" or "max" once the wait is over, else None."""
        if sample is None:
            self.unreadable += 1
            self._quiet_since = None
            return self._end_at(self._last_at, quiet=False)
        self.samples += 1
        self.sampling_s += sample.cost_s
        self._last_at = max(self._last_at, sample.at)
        self._last_cost = sample.cost_s - sample.dump_s
        for arrival in sample.arrivals:
            at = min(arrival.at, sample.at)
            table = self._ignored if arrival.ignored else self._sources
            source = table.get(arrival.peer)
            if source is None:
                source = table[arrival.peer] = _Source(min(at, self.start))
            source.add(arrival._replace(at=at), self.start)
            if arrival.ignored:
                self.ignored += at >= self.start
            elif at >= self.start and (self.last_request_at is None or at > self.last_request_at):
                self.last_request_at = at
        if sample.lost:
            self._lost_at = sample.at
        # Quiet must hold at samples CONFIRM_S apart, the last a complete one: after a stall
        # of the whole machine (or of graceinit) the first sample comes overdue, before the
        # clients have caught up; and a connection opened meanwhile must have been seen.
        # A pending connection (opened, not yet seen) does not restart the count: the next
        # sample is asked to be complete, and that finds it (and its requests) or clears it.
        quiet = self._all_quiet(sample.at)
        if not quiet:
            self._quiet_since = None
        elif self._quiet_since is None:
            self._quiet_since = sample.at
        confirmed = (quiet and sample.pending == 0 and sample.complete
                     and sample.at - self._quiet_since >= CONFIRM_S)
        return self._end_at(sample.at, quiet=confirmed)

    def wants_full(self) -> bool:
        """Should the next sample look at every open connection (to confirm quiet)?"""
        return self._quiet_since is not None and self._last_at + TICK - self._quiet_since >= CONFIRM_S

    def next_sample_at(self) -> float:
        """When to take the next sample: every TICK, less often when a sample is expensive."""
        return min(self._last_at + max(TICK, self._last_cost / CPU_SHARE), self.start + self.max_s)

    def quiet_windows(self) -> Dict[str, Tuple[int, float, float]]:
        """Each source's moments, silence and quiet window at the last sample (for -vv)."""
        now = self._last_at
        return {peer: (len(source.moments), round(now - source.last, 3), round(source.window(now, self.start), 3))
                for peer, source in self._sources.items()}

    def probes(self) -> Dict[str, float]:
        """The sources taken for probes, with their periods."""
        found = {}
        for peer, source in self._sources.items():
            period = source.probe_period()
            if period is not None:
                found[peer] = period
        return found

    def holdouts(self) -> List[Holdout]:
        """The sources still sending when the wait ended (latest first): why it was not quiet."""
        now, out = self._last_at, []
        for peer, source in self._sources.items():
            if source.probe_period() is not None or not source.requests:
                continue
            if now - source.last < source.window(now, self.start):
                rhythm, periodic = source.rhythm(now)
                out.append((source.last, Holdout(peer, source.requests, rhythm, periodic)))
        return [holdout for _, holdout in sorted(out, key=lambda pair: -pair[0])]

    def ignored_after(self) -> List[Tuple[str, float]]:
        """Ignored peers that sent after the last counted request: (peer, seconds later)."""
        last = self.last_request_at
        if last is None:
            return []
        return sorted(((peer, source.last - last) for peer, source in self._ignored.items()
                       if source.last > last + QUIET_FLOOR), key=lambda pair: -pair[1])

    # --- the rule ------------------------------------------------------------------------

    def _all_quiet(self, at: float) -> bool:
        counted = False
        longest = QUIET_FLOOR
        for source in self._sources.values():
            if source.probe_period() is not None:
                continue
            window = source.window(at, self.start)
            if at - source.last < window:
                return False
            longest = max(longest, window)
            counted = counted or source.last >= self.start
        if self._lost_at is not None and at - self._lost_at < longest:
            return False  # events were lost: something arrived, from anyone
        return counted  # nothing arrived since the stop signal: an idle service proves nothing

    def _end_at(self, at: float, *, quiet: bool) -> Optional[str]:
        if at >= self.start + self.max_s:
            self.reason = "max"
        elif quiet and at >= self.start + self.min_s:
            self.reason = "quiet"
        return self.reason
