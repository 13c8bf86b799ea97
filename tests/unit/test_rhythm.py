"""rhythm.clock: a probe's ticker is found through late, missing and jittered beats; a
Poisson client of any rate is not taken for one (its false-clock rate is measured here)."""

from __future__ import annotations

import random
from typing import List

import pytest

from graceinit.rhythm import Clock, clock, episodes

PROBE = (0.9, 30.0)


def ticker(period: float, seed: int, *, late: float = 0.0, missing: float = 0.0, span: float = 68.0,
           late_by: float = 1.0) -> List[float]:
    """A kubelet-like ticker over `span` seconds: on its beat within a few ms, a `late` share
    of the beats later by 0.1 s up to `late_by` s (at most 70 % of a period), a `missing`
    share not seen at all."""
    rng = random.Random(seed)
    first, out = rng.uniform(0, period), []
    for beat in range(int(span / period)):
        if rng.random() < missing:
            continue
        at = first + beat * period + abs(rng.gauss(0, 0.003))
        if rng.random() < late:
            at += rng.uniform(0.1, max(0.1, min(late_by, 0.7 * period)))
        out.append(at)
    return sorted(out)


def poisson(rate: float, seed: int, span: float = 68.0) -> List[float]:
    rng = random.Random(seed)
    at, out = 0.0, []
    while True:
        at += rng.expovariate(rate)
        if at >= span:
            return out
        out.append(at)


@pytest.mark.parametrize("period", [1.0, 2.0, 5.0, 10.0])
def test_a_strict_clock_is_found_with_its_period(period):
    found = clock(ticker(period, 1), *PROBE)
    assert found is not None
    assert found.period == pytest.approx(period, abs=0.005)
    assert found.extra == 0 and found.late == 0


@pytest.mark.parametrize("period", [1.0, 2.0])
@pytest.mark.parametrize("seed", range(10))
def test_a_clock_is_found_through_late_and_missing_beats(period, seed):
    # a loaded node: 20 % of the beats late by up to a second, 25 % missing from the history
    found = clock(ticker(period, seed, late=0.2, missing=0.25), *PROBE)
    assert found is not None and found.period == pytest.approx(period, abs=0.01)


def test_half_the_period_is_not_taken_for_the_clock():
    # every moment also sits on a grid of half the period, with every other beat empty
    found = clock(ticker(2.0, 3, missing=0.1), *PROBE)
    assert found is not None and found.period == pytest.approx(2.0, abs=0.01)


def test_two_moments_in_one_beat_are_extra_and_many_of_them_are_no_clock():
    beats = ticker(1.0, 4, span=40.0)
    assert clock(beats, *PROBE).extra == 0  # type: ignore[union-attr]
    between = [at + 0.5 for at in beats[::3]]  # a real request in every third beat interval
    assert clock(sorted(beats + between), *PROBE) is None


@pytest.mark.parametrize("rate, most", [(0.05, 0.004), (0.1, 0.005), (0.2, 0.002), (0.5, 0.0), (1.0, 0.0),
                                        (2.0, 0.0), (5.0, 0.0)])
def test_a_poisson_client_is_almost_never_a_probes_clock(rate, most):
    # 1,000 clients each, a minute of history (where beats may be missing) and 8 s more, as
    # drain.py asks (a whole-seconds period: three beats on time may be enough): measured
    # 0.2-0.5 % from 0.05 to 0.2/s (a few moments a minute can line up), 0 from 0.5/s on.
    found = sum(clock(poisson(rate, seed), *PROBE, 60.0, whole_seconds=True) is not None for seed in range(1000))
    assert found / 1000 <= most


@pytest.mark.parametrize("rate", [0.05, 0.1, 0.2, 0.5, 1.0])
@pytest.mark.parametrize("kind", [{"tight": True, "whole_seconds": True}, {"only_whole": True}])
def test_a_poisson_client_is_all_but_never_a_probes_clock_of_whole_seconds(rate, kind):
    # drain.py's probes: a tight tolerance, then a loose one; a whole-seconds period either
    # way. Measured: 0 and 1 in 3,000 where any period (above) found 5 to 7.
    found = sum(clock(poisson(rate, seed), *PROBE, 60.0, **kind) is not None for seed in range(1000))
    assert found <= 1


def test_four_tight_beats_of_a_10s_clock_are_certain_and_four_loose_ones_are_not():
    history = [-52.63, -42.634, -22.627, -12.631]  # a few ms off their beats, as TIME_WAITs show them
    loose = [-52.63, -42.57, -22.69, -12.57]  # 60 ms off: a loaded node's
    assert clock(history, *PROBE, 0.0, chance=5e-5, whole_seconds=True, tight=True) is not None
    assert clock(history, *PROBE, 0.0, chance=5e-5, whole_seconds=True) is None
    assert clock(loose, *PROBE, 0.0, chance=5e-5, whole_seconds=True, tight=True) is None
    assert clock(history[:3], *PROBE, 0.0, chance=5e-5, whole_seconds=True, tight=True) is None  # three: not yet


def test_a_tight_clock_needs_no_share_of_its_beats_before_the_signal():
    # 12 of a minute's 60 beats of a 1 s probe before the signal (the client closed the
    # others first: no TIME_WAIT), every beat after it. The loose tolerance still asks for a
    # fifth of the beats before (COVERAGE_BEFORE): a slow client's moments line up within it
    # too often; within the tight one chance is what the binomial says.
    before = [-60.0 + 0.37 + beat for beat in range(60) if beat % 5 == 0]
    after = [0.37 + beat for beat in range(5)]
    moments = before[:-1] + after  # 11 of 60 before: under a fifth
    assert clock(moments, *PROBE, 0.0, chance=5e-4, only_whole=True, tight=True) is not None
    assert clock(moments, *PROBE, 0.0, chance=5e-4, only_whole=True) is None


def test_a_whole_seconds_period_is_what_the_gaps_share():
    # a 1 s probe's history with most beats missing: gaps of 3, 4, 7 s and so on, none of 1 s;
    # the median gap, its half and third would guess 4, 2 and 1.33 s
    history = [-58.63, -55.63, -51.63, -44.63, -40.63, -37.63, -33.63, -26.63, -22.63, -18.63, -15.63]
    found = clock(history, *PROBE, 0.0, chance=5e-5, only_whole=True, tight=True)
    assert found is not None and found.period == pytest.approx(1.0, abs=0.002)


def test_only_a_whole_seconds_period_is_a_tight_clock_or_an_only_whole_one():
    strict = ticker(2.5, 1)
    assert clock(strict, *PROBE) is not None  # an upload every 2.5 s keeps a clock ...
    assert clock(strict, *PROBE, tight=True, whole_seconds=True) is None  # ... but not a probe's
    assert clock(strict, *PROBE, only_whole=True) is None
    assert clock(ticker(3.0, 1), *PROBE, only_whole=True) is not None


def test_three_beats_on_a_whole_seconds_clock_are_a_probe_and_on_another_are_not():
    assert clock([-52.6, -42.6, -22.6], *PROBE, 0.0, whole_seconds=True) is not None
    assert clock([-52.6, -42.6, -22.6], *PROBE, 0.0) is None  # MIN_ON without whole seconds
    assert clock([-52.6, -42.23, -22.6 + 0.74], *PROBE, 0.0, whole_seconds=True) is None  # 10.37 s


def test_a_long_history_does_not_overflow_the_evidence():
    # math.comb(1100, k) * p**k overflowed a float (an exception: the drain waits the max)
    found = clock(ticker(1.0, 5, span=1100.0, late=0.3), *PROBE)
    assert found is not None and found.period == pytest.approx(1.0, abs=0.005)


def test_too_few_moments_are_no_clock():
    assert clock([0.0, 1.0, 2.0], *PROBE) is None


def test_episodes_start_where_a_gap_of_half_a_second_or_more_ends():
    burst = [0.0, 0.01, 0.2, 0.45]
    assert episodes(burst + [3.0, 3.3] + [6.0]) == [0.0, 3.0, 6.0]


def test_bursts_keep_a_clock_of_episodes():
    moments = sorted(at + offset for at in (0.2, 3.2, 6.2, 9.2) for offset in (0.0, 0.02, 0.05, 0.3))
    assert clock(episodes(moments), 1.0, 30.0) is None  # four beats: too few for a probe's evidence ...
    found = clock(episodes(moments), 1.0, 30.0, chance=0.05)  # ... enough for a clock that shortens a wait
    assert isinstance(found, Clock) and found.period == pytest.approx(3.0, abs=0.01) and found.on == 4
