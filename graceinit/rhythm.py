"""Do a source's moments keep a clock? Pure arithmetic for drain.py.

A kubelet probe is driven by a ticker: once per period, on its beat or late (a loaded node,
a slow answer), never early, once per beat, and now and then missing from what the kernel
shows (a probe connection the client closed first leaves no TIME_WAIT behind). A burst
every 3 s or an upload every 2.5 s keeps a clock too, one level up: its *episodes* (moments
closer than EPISODE_GAP) start on beats. A real client that is merely slow does not: a
Poisson client's moments fall anywhere in a period, two in one beat as often as not.

`clock()` fits a period and a phase to the moments and sorts each moment into one of:
on its beat (within the jitter), late (later in its beat interval: a delayed tick), or
extra (a second moment in one beat interval: what a ticker never sends). It returns the
fit only when the moments are clearly on a clock (ON_SHARE, EXTRA_SHARE, COVERAGE) and
better than chance would line them up (CHANCE). A Poisson client with a minute of history
passes 2 or 3 times in a thousand at 0.05 to 0.2 requests/s (a few moments a minute can
line up) and never from 0.5/s on (tests/unit/test_rhythm.py measures it); drain.py asks more
before it ignores a source (a period of whole seconds, every request a connection of its
own, nothing between beats).
"""

from __future__ import annotations

from math import exp, gcd, lgamma, log
from typing import List, NamedTuple, Optional, Sequence

# A beat's moment is on time within max(JITTER_S, JITTER of the period): a loose tolerance,
# for clocks whose moments wander (an upload's end moves with its transfer time, a loaded
# server answers a probe late) ...
JITTER = 0.02
JITTER_S = 0.1
# ... and a tight one, max(TIGHT_S, TIGHT of the period). A kubelet's ticker does not drift,
# and a TIME_WAIT's close time is read to a jiffy: a 1 s probe's close moments sat within
# 5 ms of their grid on an idle node, and within 12 ms with both cores busy and 320 req/s
# (measured with the benchmark's probe client and gunicorn). The chance that a moment falls
# on a beat by luck is 2 * tolerance / period, so four tight beats of a 10 s probe prove
# what five loose ones did.
TIGHT = 0.0025
TIGHT_S = 0.025
# On a clock: at least this share of the moments on their beats (the rest late or extra),
ON_SHARE = 0.6
# ... at most this share extra (a ticker sends one per beat; a caught-up tick is the exception),
EXTRA_SHARE = 0.1
# ... and at least this many on their beats,
MIN_ON = 4
# ... with a moment in at least this share of the beat intervals they span from the time
# every moment is seen (`complete_from`: the stop signal, for drain.py), and in this share
# before it: a probe connection that the client closed first leaves no TIME_WAIT, so most
# of a probe's beats can be missing from the history (the kubelet and the app race to close;
# on a quiet machine the client won 80 % of a minute's races). A tight fit asks no share of
# the beats before: within its tolerance chance is what the binomial says (a Poisson client
# passed 0 times in 18,000 fits at drain.py's odds), while the loose one lets slow clients line up.
COVERAGE = 0.5
COVERAGE_BEFORE = 0.2
# ... and lined up better than chance would: moments that fall anywhere (a Poisson client)
# land within the jitter of a beat with p = 2 * jitter / period each; the chance of as many
# on time, not counting the two moments that set the phase and the period, times the
# periods tried, must be below this.
CHANCE = 0.01
# A kubelet's period is whole seconds (periodSeconds), and so are a cloud load balancer's:
# a fitted period within this of whole seconds (a 1 % chance for a period fitted to noise)
# counts as given, not fitted: only the phase was chosen to fit.
WHOLE_SECONDS = 0.005
# ... within this for a tight fit: moments a few ms off their beats fit a period to a tenth
# of a millisecond over a minute.
TIGHT_WHOLE_SECONDS = 0.002
MIN_ON_WHOLE = 3  # ... and three beats on time can be enough (MIN_ON otherwise)
# Moments of a source closer than this are one episode (a burst, an upload's segments).
EPISODE_GAP = 0.5


class Clock(NamedTuple):
    period: float
    anchor: float  # the time of one beat
    on: int  # moments on their beat
    late: int  # moments later in their beat interval
    extra: int  # moments after the first of their beat interval
    last_extra: float  # when the latest extra moment came (-inf: none)
    beats_before: int  # beat intervals from the first moment's to the last's, before complete_from
    beats_after: int  # ... and from it on
    filled_before: int  # ... holding a moment (on time or late)
    filled_after: int
    on_after: int  # moments on their beat from complete_from on

    @property
    def filled(self) -> float:
        """The share of its beats that hold a moment."""
        return (self.filled_before + self.filled_after) / max(1, self.beats_before + self.beats_after)


def clock(moments: Sequence[float], shortest: float, longest: float,
          complete_from: float = float("-inf"), chance: float = CHANCE, whole_seconds: bool = False,
          tight: bool = False, only_whole: bool = False) -> Optional[Clock]:
    """The clock the sorted `moments` keep, with a period in [shortest, longest], if they
    clearly keep one (see CHANCE). Moments before `complete_from` may be missing now and then.
    `whole_seconds`: a period of whole seconds counts as given; `only_whole`: no other period
    will do. `tight`: on time within the tight tolerance (TIGHT_S), not the loose one."""
    whole_seconds = whole_seconds or only_whole
    n = len(moments)
    if n < (MIN_ON_WHOLE if whole_seconds else MIN_ON):
        return None
    gaps = sorted(b - a for a, b in zip(moments, moments[1:]))
    median = gaps[len(gaps) // 2]
    # Beats go missing, so the median gap may be two or three periods; the shortest
    # common gap is a guess too. Each guess is refined from the gaps it explains.
    guesses = {median, median / 2, median / 3, gaps[len(gaps) // 4]}
    if whole_seconds:
        # A whole-seconds clock whose history is mostly missing (a probe's connections that
        # the client closed first) shows gaps of 3, 4, 7 s: the period is what they share.
        shared = _shared_whole(gaps, tight)
        if shared:
            guesses.add(float(shared))
    best: Optional[Clock] = None
    for guess in guesses:
        if not 0.8 * shortest <= guess <= 1.2 * longest:
            continue
        fit = _fit(moments, _refined(gaps, guess, tight), tight, complete_from)
        if (fit is None or not shortest <= fit.period <= longest
                or not _kept(fit, n, len(guesses), chance, whole_seconds, only_whole, tight)):
            continue
        # Half the true period explains as many moments, with every other beat empty:
        # the clock that leaves fewest beats empty wins.
        if best is None or fit.filled > best.filled:
            best = fit
    return best


def _kept(fit: Clock, n: int, tries: int, chance: float, whole_seconds: bool, only_whole: bool, tight: bool) -> bool:
    fitted, fewest = 2, MIN_ON  # the phase and the period were chosen to fit
    p = min(1.0, 2 * _tolerance(fit.period, tight) / fit.period)
    whole = TIGHT_WHOLE_SECONDS if tight else WHOLE_SECONDS
    if whole_seconds and round(fit.period) >= 1 and abs(fit.period - round(fit.period)) <= whole:
        fitted, fewest = 1, MIN_ON_WHOLE
        # The second moment is not a free hit: it lands where the period comes out whole by
        # chance 2 * whole (any gap is some period), which the tight tolerance can undercut.
        p = max(p, 2 * whole)
    elif only_whole or tight:
        # A period fitted to the moments is chosen from a continuum, among as many periods
        # as the tolerance tells apart: the tighter it is, the more of them to pick from, and
        # the binomial would not count them. Only a given period earns the tight tolerance.
        return False
    return (fit.on >= max(fewest, ON_SHARE * n) and fit.extra <= EXTRA_SHARE * n
            and (tight or fit.filled_before >= COVERAGE_BEFORE * fit.beats_before)
            and fit.filled_after >= COVERAGE * fit.beats_after
            and tries * _at_least(fit.on - fitted, n - fitted, p) < chance)


def _at_least(hits: int, tries: int, p: float) -> float:
    """P(at least `hits` of `tries` events of probability p), in logs (a long history would
    overflow the binomial coefficients)."""
    if hits <= 0:
        return 1.0
    if hits > tries or p <= 0:
        return 0.0
    if p >= 1:
        return 1.0
    head = lgamma(tries + 1)
    return min(1.0, sum(exp(head - lgamma(k + 1) - lgamma(tries - k + 1) + k * log(p) + (tries - k) * log(1 - p))
                        for k in range(hits, tries + 1)))


def episodes(moments: Sequence[float], gap: float = EPISODE_GAP) -> List[float]:
    """When each episode began: runs of moments closer than `gap` are one."""
    starts: List[float] = []
    previous = None
    for at in moments:
        if previous is None or at - previous >= gap:
            starts.append(at)
        previous = at
    return starts


def _shared_whole(gaps: Sequence[float], tight: bool) -> int:
    """The greatest common divisor of the gaps that are whole seconds (0: fewer than two)."""
    whole = [round(gap) for gap in gaps if round(gap) >= 1 and abs(gap - round(gap)) <= _tolerance(gap, tight)]
    return gcd(*whole) if len(whole) >= 2 else 0


def _refined(gaps: Sequence[float], guess: float, tight: bool) -> float:
    """The period that the gaps close to a whole number of `guess` agree on (the median of
    gap / beats): one gap's jitter does not become the period's."""
    tolerance = _tolerance(guess, tight)
    each = []
    for gap in gaps:
        beats = round(gap / guess)
        if beats >= 1 and abs(gap - beats * guess) <= tolerance:
            each.append(gap / beats)
    if not each:
        return guess
    each.sort()
    return each[len(each) // 2]


def _tolerance(period: float, tight: bool) -> float:
    """How far from its beat a moment is still on time."""
    return max(TIGHT_S, TIGHT * period) if tight else max(JITTER_S, JITTER * period)


def _fit(moments: Sequence[float], period: float, tight: bool, complete_from: float = float("-inf")) -> Optional[Clock]:
    if period <= 0:
        return None
    tolerance = _tolerance(period, tight)
    # The phase: the moment with the most others on its grid (the densest beat line).
    best_anchor, best_count = moments[0], -1
    step = max(1, len(moments) // 64)  # enough anchors to find the line, O(n * 64)
    for anchor in moments[::step]:
        count = sum(1 for at in moments if abs(_wrapped(at - anchor, period)) <= tolerance)
        if count > best_count:
            best_anchor, best_count = anchor, count
    anchor = best_anchor
    # Refine period and phase by least squares over the moments on the grid: a period
    # taken from gaps alone drifts by a beat over a minute of history.
    for _ in range(2):
        on = [(round((at - anchor) / period), at) for at in moments
              if abs(_wrapped(at - anchor, period)) <= tolerance]
        if len(on) < 2:
            break
        mean_beat = sum(b for b, _ in on) / len(on)
        mean_at = sum(at for _, at in on) / len(on)
        spread = sum((b - mean_beat) ** 2 for b, _ in on)
        if spread <= 0:
            break
        period = sum((b - mean_beat) * (at - mean_at) for b, at in on) / spread
        if period <= 0:
            return None
        anchor = mean_at - mean_beat * period
        tolerance = _tolerance(period, tight)
    # Sort the moments: a beat interval runs from `tolerance` before a beat to `tolerance`
    # before the next; its first moment is on time or late, any later one is extra.
    on_count = late = extra = on_after = 0
    filled_before = filled_after = 0
    last_extra = float("-inf")
    previous_beat = None
    for at in moments:
        beat = (at - anchor + tolerance) // period
        offset = at - anchor - beat * period
        if beat == previous_beat:
            extra += 1
            last_extra = at
            continue
        previous_beat = beat
        before = anchor + beat * period - tolerance < complete_from
        if before and at >= complete_from and offset > tolerance:
            # Late, after complete_from, in a beat that began before it: that beat's own moment
            # may have come unseen before it (a connection that ended before the watch began),
            # so this one may be a second in its beat, a real request. It counts as one.
            extra += 1
            last_extra = at
            continue
        if before:
            filled_before += 1
        else:
            filled_after += 1
        if offset <= tolerance:
            on_count += 1
            on_after += at >= complete_from
        else:
            late += 1
    first_beat = (moments[0] - anchor + tolerance) // period
    last_beat = (moments[-1] - anchor + tolerance) // period
    # the first beat whose interval starts at complete_from or later
    split = first_beat if complete_from == float("-inf") else -((anchor - tolerance - complete_from) // period)
    split = max(first_beat, min(last_beat + 1, split))
    beats_before, beats_after = int(split - first_beat), int(last_beat + 1 - split)
    return Clock(period, anchor, on_count, late, extra, last_extra, beats_before, beats_after, filled_before,
                 filled_after, on_after)


def _wrapped(offset: float, period: float) -> float:
    """offset folded into [-period/2, period/2)."""
    return (offset + period / 2) % period - period / 2
