"""The drain detector (--stop-delay auto) replayed against traffic traces written as data.

A trace is a list of requests: (time, peer, connection). A connection named "new" is one
request on its own connection (connection-per-request: the server closes it, so it lingers
in TIME_WAIT); any other name is a kept-alive connection carrying many requests. `replay`
turns the trace into the samples the kernel would give at each moment the detector asks
for one, from the stop signal (t=0) on, and returns when and why the wait ended.
"""

from __future__ import annotations

import ipaddress
import random
from typing import Dict, List, Optional, Sequence, Tuple

import pytest

from graceinit.drain import QUIET_FLOOR, Conn, Drain, TrafficSample

Request = Tuple[float, str, str]  # (time, peer, connection name or "new")

SAMPLE_COST = 0.002


def samples_at(trace: Sequence[Request], at: float, lost: float = 0.0, seed: int = 0) -> TrafficSample:
    """What one inet_diag dump would show at `at`: kept-alive connections with their data
    segment counts, closed ones in TIME_WAIT (a `lost` fraction of those never shows up:
    closed by the client, no TIME_WAIT on the server)."""
    conns: Dict[int, Conn] = {}
    keep: Dict[Tuple[str, str], List[float]] = {}
    drop = random.Random(seed)
    for index, (when, peer, name) in enumerate(trace):
        if when > at:
            break
        if name == "new":
            if drop.random() >= lost:
                conns[10_000 + index] = Conn(peer, None, when)
        else:
            keep.setdefault((peer, name), []).append(when)
    for number, ((peer, name), times) in enumerate(sorted(keep.items())):
        conns[number] = Conn(peer, len(times), times[-1])
    return TrafficSample(at=at, cost_s=SAMPLE_COST, conns=conns)


def replay(trace: Sequence[Request], *, min_s: float = 0.0, max_s: float = 30.0,
           lost: float = 0.0, ignore: Sequence[str] = ()) -> Tuple[float, str]:
    """Run the detector over the trace from t=0; returns (time it ended, reason)."""
    networks = [ipaddress.ip_network(cidr) for cidr in ignore]
    trace = sorted(r for r in trace if not any(ipaddress.ip_address(r[1]) in net for net in networks))
    drain = Drain(start=0.0, min_s=min_s, max_s=max_s)
    at = 0.0
    for _ in range(100_000):
        reason = drain.observe(samples_at(trace, at, lost))
        if reason is not None:
            return at, reason
        at = drain.next_sample_at()
    raise AssertionError("the detector never ended")


def steady(peer: str, rate: float, start: float, end: float, conns: Sequence[str] = ("new",)) -> List[Request]:
    """Requests at a steady rate, spread round-robin over the given connections."""
    count = int((end - start) * rate)
    return [(start + i / rate, peer, conns[i % len(conns)]) for i in range(count)]


def poisson(peer: str, rate: float, start: float, end: float, seed: int, conn: str = "new") -> List[Request]:
    rng = random.Random(seed)
    at, out = start, []
    while True:
        at += rng.expovariate(rate)
        if at >= end:
            return out
        out.append((at, peer, conn))


def last_request(trace: Sequence[Request]) -> float:
    return max(when for when, _, _ in trace)


POOL = tuple(f"pool{i}" for i in range(8))  # an L7 proxy's kept-alive upstream connections


def test_step_stop_on_a_proxys_keepalive_pool_ends_soon_after_the_last_request():
    # No connection opens or closes: only the pool's data counters stop moving.
    trace = steady("10.1.0.9", 300, -5.0, 3.0, POOL)
    ended, reason = replay(trace)
    assert reason == "quiet"
    assert QUIET_FLOOR <= ended - last_request(trace) <= QUIET_FLOOR + 0.15


def test_step_stop_of_connection_per_request_traffic_ends_soon_after_the_last_request():
    trace = steady("10.1.0.9", 300, -5.0, 3.0)
    ended, reason = replay(trace, lost=0.12)
    assert reason == "quiet"
    assert QUIET_FLOOR <= ended - last_request(trace) <= QUIET_FLOOR + 0.15


def test_staggered_nodes_wait_for_the_last_one():
    trace: List[Request] = []
    for node, removed in enumerate((1.0, 1.8, 2.6, 3.4)):
        trace += steady(f"10.2.0.{node + 1}", 75, -2.0, removed)
    ended, reason = replay(sorted(trace))
    assert reason == "quiet"
    assert 3.4 + QUIET_FLOOR <= ended <= 3.4 + QUIET_FLOOR + 0.2


@pytest.mark.parametrize("seed", range(20))
def test_poisson_at_5_per_second_never_ends_while_requests_still_come(seed):
    trace = poisson("10.3.0.1", 5.0, -3.0, 8.0, seed)
    ended, reason = replay(trace)
    assert ended > last_request(trace), f"ended at {ended:.2f}s, requests came until {last_request(trace):.2f}s"
    # and only after several mean gaps (0.2 s each) of silence
    assert ended - last_request(trace) >= 5 * 0.2


def test_poisson_at_20_per_second_ends_within_a_couple_of_seconds():
    trace = poisson("10.3.0.1", 20.0, -3.0, 8.0, seed=3)
    ended, reason = replay(trace)
    assert reason == "quiet"
    assert 0.5 < ended - last_request(trace) < 2.5


def test_a_fast_path_gone_early_and_a_slow_path_still_sending_waits_for_the_slow_one():
    trace = sorted(steady("10.4.0.1", 300, -2.0, 1.0, POOL) + poisson("10.4.0.2", 3.0, -2.0, 5.0, seed=7))
    ended, _ = replay(trace, max_s=20.0)
    assert ended > last_request(trace)  # ("max": 15 arrivals cannot prove a 3 req/s source stopped)


def test_a_300ms_stall_of_a_fast_source_does_not_end_the_wait():
    trace = steady("10.5.0.1", 300, -2.0, 1.0, POOL) + steady("10.5.0.1", 300, 1.3, 3.0, POOL)
    ended, reason = replay(sorted(trace))
    assert reason == "quiet"
    assert ended > 3.0


PROBE = "10.6.0.1"  # the node, sending an HTTP readiness probe every second


def test_probes_keep_it_waiting_unless_their_peer_is_ignored():
    probes = steady(PROBE, 1.0, -10.0, 30.0)
    trace = sorted(steady("10.6.0.2", 200, -2.0, 2.0) + probes)
    assert replay(trace, max_s=20.0) == (20.0, "max")
    ended, reason = replay(trace, max_s=20.0, ignore=[f"{PROBE}/32"])
    assert reason == "quiet"
    assert 2.0 + QUIET_FLOOR <= ended <= 2.0 + QUIET_FLOOR + 0.15


def test_an_idle_service_proves_nothing_and_waits_for_the_max():
    assert replay([], max_s=12.0) == (12.0, "max")
    # traffic that stopped before the stop signal is no evidence either
    assert replay(steady("10.7.0.1", 100, -5.0, -1.0, POOL), max_s=12.0) == (12.0, "max")


def test_keepalive_clients_pinned_by_conntrack_that_keep_sending_run_to_the_max():
    trace = steady("10.8.0.1", 50, -2.0, 40.0, ("a", "b")) + steady("10.8.0.2", 20, -2.0, 40.0, ("c",))
    assert replay(sorted(trace), max_s=15.0) == (15.0, "max")


def test_the_minimum_is_a_floor():
    trace = steady("10.9.0.1", 300, -2.0, 1.0, POOL)
    ended, reason = replay(trace, min_s=4.0)
    assert reason == "quiet"
    assert 4.0 <= ended <= 4.1


def test_an_unreadable_sample_never_ends_the_wait():
    drain = Drain(start=0.0, min_s=0.0, max_s=10.0)
    trace = steady("10.10.0.1", 100, -1.0, 0.5, POOL)
    assert drain.observe(samples_at(trace, 0.0)) is None
    assert drain.observe(samples_at(trace, 0.3)) is None
    for _ in range(50):
        assert drain.observe(None) is None
    assert drain.observe(samples_at(trace, 2.0)) is None  # quiet, to be confirmed
    assert drain.observe(samples_at(trace, 2.05)) == "quiet"


def test_the_tick_stretches_when_samples_are_expensive():
    drain = Drain(start=0.0, min_s=0.0, max_s=10.0)
    drain.observe(TrafficSample(at=0.0, cost_s=0.001, conns={}))
    assert drain.next_sample_at() == pytest.approx(0.05)
    drain.observe(TrafficSample(at=0.05, cost_s=0.012, conns={}))
    assert drain.next_sample_at() - 0.05 >= 0.012 / 0.05  # under 5 % of a core
    assert drain.next_sample_at() <= 10.0


# --- the supervisor's side: the wait, a second SIGTERM, a kernel that refuses -------------


class RecordedWatch:
    """A TrafficWatch replaying a trace on the fake system's clock."""

    def __init__(self, system, trace: Sequence[Request]) -> None:
        shifted = [(when + system.stop_at, peer, conn) for when, peer, conn in trace]
        self.trace, self.closed = sorted(shifted), False

    def sample(self, now: float) -> Optional[TrafficSample]:
        return samples_at(self.trace, now)

    def describe(self) -> str:
        return "a recorded trace"

    def close(self) -> None:
        self.closed = True


from graceinit.drain import Unavailable  # noqa: E402
from graceinit.events import Exited, Signal  # noqa: E402
from helpers.fakes import TERM, Behaviour, FakeSystem, cfg, exited, run  # noqa: E402


class DrainingSystem(FakeSystem):
    """The fake system of the supervisor's tests, plus a recorded trace of the app's
    traffic (times relative to the stop signal), or a kernel that refuses."""

    def __init__(self, trace: Optional[Sequence[Request]], stop_at: float) -> None:
        super().__init__({"app": Behaviour(on_signal={TERM: 0.1})})
        self.trace, self.stop_at = trace, stop_at
        self.watches: List[RecordedWatch] = []
        self.at(stop_at, Signal(TERM))

    def traffic_watch(self, root_pid: int, ignore: Sequence[str]) -> RecordedWatch:
        if self.trace is None:
            raise Unavailable("cannot open a netlink sock_diag socket: Operation not permitted")
        self.watches.append(RecordedWatch(self, self.trace))
        return self.watches[-1]


AUTO = dict(stop_delay=20.0, stop_delay_auto=True, stop_delay_max=20.0)


def test_auto_forwards_the_stop_signal_once_requests_stop():
    system = DrainingSystem(steady("10.1.0.9", 300, -5.0, 3.0, POOL), stop_at=1.0)
    run(cfg(**AUTO), system)
    [(forwarded, _)] = system.actions("send_group")
    assert 1.0 + 3.0 + QUIET_FLOOR <= forwarded <= 1.0 + 3.0 + QUIET_FLOOR + 0.15
    assert system.watches[0].closed


def test_auto_with_traffic_that_never_stops_forwards_at_the_max_within_the_budget():
    system = DrainingSystem(steady("10.1.0.9", 50, -5.0, 60.0, POOL), stop_at=1.0)
    run(cfg(**AUTO), system)
    assert system.actions("send_group") == [(pytest.approx(21.0), ("app", TERM))]
    system = DrainingSystem(steady("10.1.0.9", 50, -5.0, 60.0, POOL), stop_at=1.0)
    run(cfg(**AUTO, termination_budget=12.0, leftover_grace=2.0), system)
    assert system.actions("send_group")[0] == (pytest.approx(11.0), ("app", TERM))


def test_a_second_stop_signal_ends_the_drain_at_once():
    system = DrainingSystem(steady("10.1.0.9", 50, -5.0, 60.0, POOL), stop_at=1.0)
    system.at(2.5, Signal(TERM))
    run(cfg(**AUTO), system)
    assert system.actions("send_group")[0] == (2.5, ("app", TERM))


def test_the_child_exiting_ends_the_drain():
    system = DrainingSystem(steady("10.1.0.9", 50, -5.0, 60.0, POOL), stop_at=1.0)
    system.at(3.0, Exited(100, exited(0)))
    assert run(cfg(**AUTO), system) == 0
    assert system.actions("send_group") == []
    assert system.clock < 3.5


def test_a_kernel_that_refuses_means_a_fixed_delay_of_the_max_never_failing_open(capfd):
    system = DrainingSystem(None, stop_at=1.0)
    run(cfg(**AUTO), system)
    assert system.actions("send_group") == [(pytest.approx(21.0), ("app", TERM))]
    warnings = [line for line in capfd.readouterr().err.splitlines() if "--stop-delay auto" in line]
    assert len(warnings) == 1 and "Operation not permitted" in warnings[0]


def test_one_overdue_sample_after_a_stall_of_everything_does_not_end_the_wait():
    # The machine froze for 0.8 s (clients, proxy and graceinit alike); graceinit's first
    # sample after it comes before the clients have sent again.
    trace = steady("10.11.0.1", 300, -2.0, 1.0, POOL) + steady("10.11.0.1", 300, 1.83, 4.0, POOL)
    drain = Drain(start=0.0, min_s=0.0, max_s=30.0)
    at, ended = 0.0, None
    while ended is None and at < 30:
        ended = drain.observe(samples_at(sorted(trace), at))
        if ended is None:
            at = drain.next_sample_at()
            if 1.0 < at < 1.8:
                at = 1.8  # frozen: the next sample comes overdue
    assert ended == "quiet" and at > 4.0, f"ended ({ended}) at {at:.2f}s while requests came until 4.0s"


def test_a_sampler_that_breaks_falls_back_to_the_max(capfd):
    system = DrainingSystem(steady("10.1.0.9", 300, -5.0, 3.0, POOL), stop_at=1.0)
    broken = RecordedWatch(system, [])
    broken.sample = lambda now: 1 / 0  # type: ignore[assignment]
    system.traffic_watch = lambda root_pid, ignore: broken  # type: ignore[assignment]
    run(cfg(**AUTO), system)
    assert system.actions("send_group") == [(pytest.approx(21.0), ("app", TERM))]
    assert "internal error" in capfd.readouterr().err
