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
- *Clocks* (rhythm.py): a source too slow for that whose episodes (bursts, uploads) start
  on a strict clock is quiet after CLOCK_PERIODS_FEW missed beats (CLOCK_PERIODS once
  CLOCK_BEATS_SURE were seen), and never sooner than a beat after its longest silence.
- *Probes*: a source whose every request is a connection of its own, one per beat of a
  clock with a period of whole seconds in PROBE_PERIOD (late now and then, never early,
  nothing between its beats since the stop signal; on time within rhythm's tight tolerance,
  or failing that its loose one), lined up beyond chance (PROBE_CHANCE) with a beat on time
  since the stop signal, or beyond HISTORY_CHANCE on its history alone, is taken for a
  health check and does not keep the wait going. A Poisson client does not pass
  (tests/unit/test_drain.py and test_rhythm.py measure how rarely).
- The wait ends ("quiet") once every other source is past its window, with one source at
  least having sent since the stop signal (an idle service proves nothing), at a
  `complete` sample (it saw every open connection) with nothing `pending` (a connection
  opened that no look accounted for). Time while sampling stalled (a sample that came late:
  graceinit, or the whole machine, did not run) is not silence: the clients may not have
  run either.
- Anything the sampler could not read or attribute (`None`, `lost`) never ends the wait:
  something may have arrived, from anyone.
"""

from __future__ import annotations

from bisect import bisect_left
from typing import Dict, List, NamedTuple, Optional, Sequence, Tuple

from graceinit.rhythm import EPISODE_GAP, EXTRA_SHARE, MIN_ON_WHOLE, Clock, clock, episodes

# Quiet window for a source, in its own mean gaps between moments: P(a Poisson gap is
# longer) = e^-8, about 3e-4 per gap (and the gap is taken long: see _Source.window).
K_MEAN_GAPS = 8.0
# ... and at least this many times the longest gap between its recent moments.
# Three, not two: on an overloaded machine (load 2.7 on 2 cores) a benchmark's clients stalled
# 0.31 s, then 0.63 s: twice the first ended the wait 0.36 s before the traffic stopped.
K_LONGEST_GAP = 3.0
# ... and never shorter than this: a client or proxy that stalls without having stalled
# before. The research lost requests to a first stall of 290 ms with a 0.2 s window and none
# with 0.5 s; a stall seen in the last LOOKBACK_S triples into the window (K_LONGEST_GAP).
QUIET_FLOOR = 0.4
# Arrivals of one source closer than this are one moment (a burst is one piece of evidence).
MERGE_S = 0.01
# The rate and the longest gap are taken over a source's latest moments: this many, and
# all of those in the last LOOKBACK_S.
RECENT_MOMENTS = 16
LOOKBACK_S = 10.0
# Moments kept per source (history at 300 req/s for 60 s merges to ~3,000).
KEEP_MOMENTS = 4096
# Probes: periods a kubelet can have (periodSeconds >= 1; a minute of history shows a few
# beats of a 30 s probe at most), the clock checked by rhythm.clock.
PROBE_PERIOD = (0.9, 30.0)
# A source whose episodes (bursts, uploads) keep a clock is quiet after this many periods
# without one (CLOCK_BEATS_SURE beats seen: fewer, CLOCK_PERIODS_FEW).
CLOCK_PERIODS = 2.0
CLOCK_PERIODS_FEW = 3.0
CLOCK_BEATS_SURE = 6
# A clock (a probe's, or episodes') counts once one of its beats came on time after the stop
# signal, or on the history alone when chance would line it up this rarely (rhythm.CHANCE):
# drain.py fits again at every new moment, and each fit is one more chance to be fooled.
HISTORY_CHANCE = 1e-4
# A probe's beats are tried on time within rhythm's tight tolerance, then its loose one (a
# probe answered late under load): a 10 s probe's history rarely holds five beats, since the
# kubelet wins the race to close about half of them and leaves no TIME_WAIT here. Its period
# is whole seconds (a kubelet's periodSeconds; a cloud load balancer's interval): a period
# fitted to a slow client's moments, free to be anything, was most of the false probes.
PROBE_TOLERANCES = (True, False)
# ... and with a beat on time after it: a probe's (ignored: its evidence must be strong),
# and episodes' (a wait cut to a few of its periods).
PROBE_CHANCE = 0.001
CLOCK_CHANCE = 0.05
# ... with a moment in this share of its beats at least (bursts and uploads miss none; a slow
# client fitted to a clock misses most).
EPISODE_FILLED = 0.75
# Clocks are fitted to a source's latest moments (a probe's) or episodes: enough to see a
# minute of a 1 s probe, few enough to cost little per fit.
CLOCK_FIT = 128
EPISODE_FIT = 64
# Only sources slow enough to need it are checked for a clock of episodes.
CLOCK_CHECK_ABOVE = 2.0  # seconds of window
CLOCK_MOMENTS = 512
# A sample that comes later than asked for by more than this shows a stall (graceinit's, or
# the whole machine's): the time beyond it does not count as silence.
OVERDUE_S = 0.05
# wants_full: the next sample is asked for a dump when quiet is due by then, or this soon
# after (a dump one sample too early cannot be repeated at once: see traffic.FULL_EVERY).
DUE_SLACK = 0.005
# With more sources than this, a sample stops at the first one still sending.
DUE_SOURCES = 256
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

    __slots__ = ("moments", "counts", "fresh_only", "requests", "origin", "observed_from", "close", "_shape", "_probe",
                 "_episodes", "parts")

    def __init__(self, origin: float, parts: bool = False) -> None:
        self.moments: List[float] = []
        self.counts: List[int] = []  # arrivals merged into each moment
        self.fresh_only = True  # every request came on a connection of its own
        self.requests = 0  # since the stop signal
        self.origin = origin  # since when it has been watched
        # Its moments are a record from here on: the history of a kept-alive connection is its
        # last data alone (what it carried before went unseen), so neither the gaps between
        # such moments nor the time before the stop signal say anything of its rhythm.
        self.observed_from = float("-inf")
        self.close = 0  # moments that came closer to another than a probe's could
        self._shape: Optional[Tuple[float, float, int]] = None  # (recent span, longest gap, recent moments)
        self._probe: Optional[Tuple[Optional[Clock]]] = None
        self._episodes: Optional[Tuple[Optional[Clock]]] = None
        # A peer's requests on connections of their own and those on kept-alive ones, apart:
        # a mesh sidecar (127.0.0.6) sends the kubelet's probes on new connections and the
        # real requests on its kept-alive pool, from one address (see `counted`).
        # Each part is watched from its own first arrival, as a peer is (not from the peer's:
        # a probe's history a minute back is no silence of the pool's).
        self.parts: Optional[List[Optional[_Source]]] = [None, None] if parts else None

    def add(self, arrival: Arrival, start: float) -> None:
        if self.parts is not None:
            kind = 0 if arrival.fresh else 1
            part = self.parts[kind]
            if part is None:
                part = self.parts[kind] = _Source(min(arrival.at, start))
            part.add(arrival, start)
        if not arrival.fresh:
            self.fresh_only = False
            if arrival.at < start:
                self.observed_from = start
        if arrival.at >= start:
            self.requests += 1
        moments, at = self.moments, arrival.at
        index = bisect_left(moments, at)
        self._shape = self._probe = self._episodes = None
        for near in (index - 1, index):
            if 0 <= near < len(moments) and abs(moments[near] - at) < MERGE_S:
                self.counts[near] += 1
                self.close += 1
                return
        for near in (index - 1, index):
            if 0 <= near < len(moments) and abs(moments[near] - at) < PROBE_PERIOD[0] / 2:
                self.close += 1
                break
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
            seen = bisect_left(moments, self.observed_from)
            if len(moments) - seen < RECENT_MOMENTS:
                seen = 0  # too little seen live to judge by: the history's gaps, however long, count
            first = max(first, seen)
            longest = max((moments[i + 1] - moments[i] for i in range(first, len(moments) - 1)), default=0.0)
            before = moments[first - 1] if first > 0 else self.origin
            if seen:
                before = max(before, self.observed_from)
            elif first == 0:  # watched from before its first moment: that wait is a gap too
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
            # From its first moment on; for a kept-alive source (whose history undercounts what
            # came before the stop signal), also from the stop signal on: either is a rate it
            # at least had, and the faster one is still no guess.
            whole = max(0.0, now - self.origin) / _fewer(len(self.moments))
            live = len(self.moments) - bisect_left(self.moments, self.observed_from)
            if self.observed_from > self.origin and live >= RECENT_MOMENTS:
                whole = min(whole, max(0.0, now - self.observed_from) / _fewer(live))
            mean_gap = max(mean_gap, whole)
        window = max(QUIET_FLOOR, K_MEAN_GAPS * mean_gap, K_LONGEST_GAP * longest)
        if window > CLOCK_CHECK_ABOVE:
            # Bursts or uploads on a clock: too few moments to prove a rate, but a clock
            # that misses two or three beats in a row has stopped. Never sooner than one
            # beat after the longest silence it kept: beats it skips are its rhythm too (a
            # burst's SYNs dropped and retried 1 s later made a 1 s clock of a 3 s one).
            beat = self.episode_clock(start)
            if beat is not None:
                periods = CLOCK_PERIODS if beat.on >= CLOCK_BEATS_SURE else CLOCK_PERIODS_FEW
                clocked = max(periods * beat.period, self.longest_gap() + beat.period)
                window = max(QUIET_FLOOR, min(window, clocked))
        return window

    def longest_gap(self) -> float:
        """The longest silence between two of its moments in the last LOOKBACK_S."""
        return self._recent()[1]

    def episode_clock(self, start: float) -> Optional[Clock]:
        """The clock the source's episodes (bursts, uploads) start on, if they keep one."""
        if self._episodes is None:
            found = None
            if len(self.moments) <= CLOCK_MOMENTS:
                found = _confirmed(episodes(self.moments)[-EPISODE_FIT:], 2 * EPISODE_GAP, start, CLOCK_CHANCE)
                if found is not None and (found.extra or found.filled < EPISODE_FILLED):
                    found = None  # a second episode within a beat, or beats missed: not a clock's
            self._episodes = (found,)
        return self._episodes[0]

    def probe_clock(self, start: float) -> Optional[Clock]:
        """The clock of a probe, if this source is one: every request on a connection of its
        own, one per beat of a clock (late now and then, never early), and nothing more
        since the stop signal."""
        if self._probe is None:
            found = None
            n = len(self.moments)
            if self.fresh_only and n >= MIN_ON_WHOLE and self.close <= EXTRA_SHARE * n + 1:
                found = _confirmed(self.moments[-CLOCK_FIT:], PROBE_PERIOD[0], start, PROBE_CHANCE, PROBE_TOLERANCES,
                                   only_whole=True)
                if found is not None and found.last_extra >= start:
                    found = None  # a request between its beats since the stop signal: waited for
            self._probe = (found,)
        return self._probe[0]

    def sidecar_probe(self, start: float) -> Optional[Clock]:
        """The clock of a sidecar's probes: this peer's requests on connections of their own,
        if they are a probe's with nothing between its beats, history included (a slow real
        client on connections of its own hides there), beside a pool seen live long enough to
        judge by alone (one moment of history says nothing of its rate)."""
        if self.parts is None or self.fresh_only:
            return None
        fresh, kept = self.parts
        if fresh is None or kept is None:
            return None
        beat = fresh.probe_clock(start)
        if beat is None or beat.extra or len(kept.moments) - bisect_left(kept.moments, start) < RECENT_MOMENTS:
            return None
        return beat

    def counted(self, start: float) -> Optional["_Source"]:
        """What of this peer keeps the wait going: nothing if it is a probe; its kept-alive
        requests alone beside a sidecar's probes; else all of it."""
        if self.probe_clock(start) is not None:
            return None
        if self.sidecar_probe(start) is not None:
            return self.parts[1]  # type: ignore[index]
        return self

    def rhythm(self, now: float, start: float) -> Tuple[str, bool]:
        beat = clock(self.moments[-CLOCK_FIT:], *PROBE_PERIOD, start)
        if beat is not None:
            return f"periodic every {beat.period:.1f} s", True
        span = max(now - self.origin, 1e-3)
        return f"about {len(self.moments) / span:.1f} moments/s, last {now - self.last:.1f} s ago", False


def _confirmed(moments: Sequence[float], shortest: float, start: float, chance: float,
               tightness: Sequence[bool] = (False,), only_whole: bool = False) -> Optional[Clock]:
    """The clock the moments keep, if chance would line them up that well less often than
    `chance` and one of its beats came on time since `start`, or the history alone makes it
    all but certain (HISTORY_CHANCE). Each tolerance in `tightness` (rhythm's tight one, the
    loose one) is one more try, so each gets its share of the chance."""
    share = 1.0 / len(tightness)
    for tight in tightness:
        for odds in (chance, HISTORY_CHANCE):
            found = clock(moments, shortest, PROBE_PERIOD[1], start, chance=odds * share, whole_seconds=True,
                          tight=tight, only_whole=only_whole)
            if found is not None and (found.on_after or odds == HISTORY_CHANCE):
                return found
    return None


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
        self._asked_at = start  # when the next sample was asked for
        self._lost_at: Optional[float] = None  # the latest sample that lost events
        self._was_quiet = False  # the previous sample found quiet
        # Stalls: sampling came late (graceinit, or the whole machine, did not run). Silence
        # during a stall proves nothing (the clients may not have run either): ends of the
        # stalls, and the stalled time up to each, to take it out of every silence.
        self._stall_ends: List[float] = []
        self._stalled: List[float] = []
        self._due: Optional[float] = None  # when every source will have been silent long enough
        # for the report
        self.samples = 0
        self.complete = 0  # samples that saw every open connection (a dump)
        self.unreadable = 0
        self.sampling_s = 0.0
        self.ignored = 0  # requests from ignored peers and ports since the stop signal
        self.last_request_at: Optional[float] = None
        self.reason: Optional[str] = None

    @property
    def stalled_s(self) -> float:
        """How long sampling stalled in all (time that did not count as silence)."""
        return self._stalled[-1] if self._stalled else 0.0

    @property
    def sources_seen(self) -> int:
        return len(self._sources)

    def observe(self, sample: Optional[TrafficSample]) -> Optional[str]:
        """Take one sample (None: it could not be read, which proves nothing). Returns
        "quiet" or "max" once the wait is over, else None."""
        if sample is None:  # what it had read is gone with it: as if events were lost
            self.unreadable += 1
            self._was_quiet = False
            self._due = None
            self._lost_at = max(self._lost_at or self.start, self._asked_at)
            return self._end_at(self._last_at, quiet=False)
        self.samples += 1
        self.complete += sample.complete
        self.sampling_s += sample.cost_s
        stalled = sample.at - self._asked_at - OVERDUE_S
        if stalled > 0:
            self._stall_ends.append(sample.at)
            self._stalled.append((self._stalled[-1] if self._stalled else 0.0) + stalled)
        self._last_at = max(self._last_at, sample.at)
        self._last_cost = sample.cost_s - sample.dump_s
        for arrival in sample.arrivals:
            at = min(arrival.at, sample.at)
            table = self._ignored if arrival.ignored else self._sources
            source = table.get(arrival.peer)
            if source is None:
                source = table[arrival.peer] = _Source(min(at, self.start), parts=not arrival.ignored)
            source.add(arrival._replace(at=at), self.start)
            if arrival.ignored:
                self.ignored += at >= self.start
            elif at >= self.start and (self.last_request_at is None or at > self.last_request_at):
                self.last_request_at = at
        if sample.lost:
            self._lost_at = sample.at
        # Quiet counts at a complete sample (it saw every open connection: one opened
        # meanwhile would have been found) with nothing pending.
        quiet = self._all_quiet(sample.at)
        confirmed = quiet and sample.pending == 0 and sample.complete
        self._was_quiet = quiet
        reason = self._end_at(sample.at, quiet=confirmed)
        self._asked_at = self.next_sample_at()
        return reason

    def wants_full(self) -> bool:
        """Should the next sample look at every open connection? Yes when it may find quiet:
        the dump that confirms quiet is taken by the sample that finds it, not one later."""
        upcoming = self.next_sample_at()
        if upcoming < self.start + self.min_s:
            return False  # quiet cannot end the wait yet: no dump to confirm it
        return self._was_quiet or (self._due is not None and self._due <= upcoming + DUE_SLACK)

    def next_sample_at(self) -> float:
        """When to take the next sample: every TICK, less often when a sample is expensive."""
        return min(self._last_at + max(TICK, self._last_cost / CPU_SHARE), self.start + self.max_s)

    def quiet_windows(self) -> Dict[str, Tuple[int, float, float]]:
        """Each source's moments, silence and quiet window at the last sample (for -vv)."""
        now = self._last_at
        out = {}
        for peer, whole in self._sources.items():
            source = whole.counted(self.start) or whole
            out[peer] = (len(source.moments), round(now - source.last, 3), round(source.window(now, self.start), 3))
        return out

    def probes(self) -> Dict[str, float]:
        """The sources taken for probes, with their periods."""
        found = {}
        for peer, source in self._sources.items():
            beat = source.probe_clock(self.start)
            if beat is None:
                beat = source.sidecar_probe(self.start)
            if beat is not None:
                found[peer] = beat.period
        return found

    def holdouts(self) -> List[Holdout]:
        """The sources still sending when the wait ended (latest first): why it was not quiet."""
        now, out = self._last_at, []
        for peer, whole in self._sources.items():
            source = whole.counted(self.start)
            if source is None or not source.requests:
                continue
            if now - source.last < source.window(now, self.start):
                rhythm, periodic = source.rhythm(now, self.start)
                out.append((source.last, Holdout(peer, source.requests, rhythm, periodic)))
        return [holdout for _, holdout in sorted(out, key=lambda pair: -pair[0])]

    def ignored_after(self) -> List[Tuple[str, float]]:
        """Ignored peers that sent after the last counted request: (peer, seconds later)."""
        last = self.last_request_at
        if last is None:
            return []
        return sorted(((peer, source.last - last) for peer, source in self._ignored.items()
                       if source.last > last + QUIET_FLOOR / 2), key=lambda pair: -pair[1])

    # --- the rule ------------------------------------------------------------------------

    def _all_quiet(self, at: float) -> bool:
        """Is every source past its window (probes aside), one of them having sent since
        the stop signal? Also notes when that will be (`_due`), for `wants_full`."""
        counted = False
        longest = QUIET_FLOOR
        due = at
        many = len(self._sources) > DUE_SOURCES
        for whole in self._sources.values():
            source = whole.counted(self.start)
            if source is None:
                continue
            window = source.window(at, self.start)
            due = max(due, source.last + window + self._stalled_since(source.last))
            if many and due > at:
                self._due = None  # not worth a look at every source each sample
                return False
            longest = max(longest, window)
            counted = counted or source.last >= self.start
        if self._lost_at is not None:  # events were lost: something arrived, from anyone
            due = max(due, self._lost_at + longest + self._stalled_since(self._lost_at))
        self._due = due if counted else None
        # nothing arrived since the stop signal: an idle service proves nothing
        return counted and due <= at

    def _stalled_since(self, since: float) -> float:
        """How long sampling stalled after `since` (stalls that ended after it, whole)."""
        ends = self._stall_ends
        if not ends or ends[-1] <= since:
            return 0.0
        first = bisect_left(ends, since)
        return self._stalled[-1] - (self._stalled[first - 1] if first else 0.0)

    def _end_at(self, at: float, *, quiet: bool) -> Optional[str]:
        if at >= self.start + self.max_s:
            self.reason = "max"
        elif quiet and at >= self.start + self.min_s:
            self.reason = "quiet"
        return self.reason
