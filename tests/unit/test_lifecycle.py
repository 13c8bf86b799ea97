"""The rebuilt stop sequence (issue 8) and its promises under faults (issue 10), replayed
against the one fake system (tests/helpers/fakes.py) with a recording reporter."""

from __future__ import annotations

import errno
import signal
from typing import Any, List, Tuple

import pytest

from graceinit.config import Config, Hooks
from graceinit.events import Signal
from graceinit.supervisor import Supervisor
from helpers.fakes import Behaviour, FakeSystem, RecordingReporter

TERM, INT, KILL, CONT, USR1 = signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGCONT, signal.SIGUSR1


def cfg(**kw: Any) -> Config:
    return Config(command=("app",), **kw)


def run(config: Config, system: FakeSystem) -> Tuple[int, RecordingReporter]:
    report = RecordingReporter()
    status = Supervisor(config, system, {b"PATH": b"/bin"}, report).run()
    return status, report


def hooks(*names: str) -> Hooks:
    return Hooks(commands=tuple((name,) for name in names))


# --- escalation is part of the sequence ----------------------------------------------------


def test_two_stop_signals_in_one_wake_up_hurry_the_delay() -> None:
    # The repro: `--stop-delay 10`, then `kill -TERM; kill -INT` back to back.
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(1.0, Signal(TERM))
    system.at(1.0, Signal(INT))
    status, report = run(cfg(stop_delay=10.0), system)
    assert system.actions("send_group") == [(1.0, ("app", TERM))]
    assert status == 128 + TERM
    assert report.named("termination_report")[0]["stop_delay_ended"] == "hurried"


def test_three_stop_signals_in_one_wake_up_kill_at_once() -> None:
    system = FakeSystem({"app": Behaviour()})  # ignores TERM
    for signum in (TERM, TERM, TERM):
        system.at(1.0, Signal(signum))
    status, report = run(cfg(stop_delay=10.0), system)
    assert system.actions("send_group") == [(1.0, ("app", TERM)), (1.0, ("app", KILL))]
    assert status == 128 + KILL
    assert report.named("termination_report")[0]["ended_by"] == "sigkill"


def test_second_stop_signal_during_stop_hooks_skips_the_delay() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1}), "stop": Behaviour(runs=2.0)})
    system.at(1.0, Signal(TERM))
    system.at(1.5, Signal(TERM))
    run(cfg(stop_hooks=hooks("stop"), stop_delay=30.0), system)
    assert system.actions("send_group") == [(3.0, ("app", TERM))]  # when the hook is done


# --- the PID-1 promise ----------------------------------------------------------------------


def test_a_bug_before_the_stop_signal_still_ends_in_forward_grace_kill_and_post_hooks(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    system = FakeSystem({"app": Behaviour(), "post": Behaviour(runs=0.1)})  # app ignores TERM
    system.at(1.0, Signal(TERM))

    def broken(self: Any) -> bool:
        raise RuntimeError("bug in the running phase")

    monkeypatch.setattr("graceinit.lifecycle.Lifecycle._ready_changed", broken)
    status, report = run(cfg(grace_period=2.0, post_hooks=hooks("post")), system)
    assert status == 128 + KILL
    assert system.actions("send_group") == [(1.0, ("app", TERM)), (3.0, ("app", KILL))]
    assert [name for _, name in system.actions("spawn")] == ["app", "post"]
    assert report.named("internal_error")


def test_a_ready_file_that_cannot_be_written_is_a_warning_and_the_sequence_goes_on() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.2}), "post": Behaviour(runs=0.1)})
    system.ready_error = OSError(errno.ENOSPC, "No space left on device")
    system.at(1.0, Signal(TERM))
    status, report = run(cfg(ready_file="/tmp/ready", stop_delay=1.0, post_hooks=hooks("post")), system)
    assert status == 128 + TERM
    assert system.actions("send_group") == [(2.0, ("app", TERM))]
    assert report.named("ready_file_error")
    assert not report.named("internal_error")


def test_a_stop_hook_that_cannot_start_is_a_warning_and_the_sequence_goes_on() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.2}), "stop": Behaviour(runs=-1)})
    system.at(1.0, Signal(TERM))
    status, report = run(cfg(stop_hooks=hooks("stop")), system)
    assert status == 128 + TERM
    assert system.actions("send_group") == [(1.0, ("app", TERM))]
    assert report.named("termination_report")[0]["failed_hooks"] == ["stop"]


def test_a_stopped_child_is_continued_after_the_stop_signal() -> None:
    # Issue 10 item 9: SIGSTOPped app + SIGTERM to graceinit, unlimited grace: it must end.
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.stopped_pids.add(100)
    system.at(1.0, Signal(TERM))
    status, _ = run(cfg(), system)
    assert status == 128 + TERM
    assert system.actions("resume") == [(1.0, "app")]


def test_daemons_a_post_hook_started_are_stopped_before_exit() -> None:
    # Issue 10 item 12: not PID 1, a post hook daemonises something; it must not outlive us.
    system = FakeSystem({"app": Behaviour(runs=1.0), "post": Behaviour(runs=0.1)})

    def leaves_a_daemon(system: FakeSystem, proc: Any) -> None:
        system.leftover_pids.append(700)

    system.on_start["post"] = leaves_a_daemon
    run(cfg(post_hooks=hooks("post"), leftover_grace=2.0), system)
    assert (pytest.approx(1.1), ("700", TERM)) in system.actions("send")


def test_leftovers_forked_while_being_ended_are_ended_too() -> None:
    # Issue 18 item 5: the listed leftover forks as it dies; not PID 1, the child would escape.
    system = FakeSystem({"app": Behaviour(runs=1.0)})
    system.leftover_pids = [500]
    system.forks_when_signalled = {500: 501, 501: 502}
    run(cfg(leftover_grace=2.0), system)
    sent = [(pid, signum) for _, (pid, signum) in system.actions("send") if signum != CONT]
    assert sent == [("500", TERM), ("501", TERM), ("502", TERM)]
    assert system.leftovers() == []


def test_leftovers_that_never_die_are_given_up_on_within_the_bound_and_reported() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.leftover_pids = [500, 600]
    system.unkillable = {600}
    system.at(1.0, Signal(TERM))
    status, report = run(cfg(leftover_grace=2.0), system)
    assert status == 143
    kills = [(at, pid) for at, (pid, signum) in system.actions("send") if signum == KILL]
    assert kills == [(pytest.approx(3.1), "600")]
    [survived] = report.named("leftovers_survived")
    assert survived["pids"] == [600]
    [fields] = report.named("termination_report")
    assert fields["leftovers_survived"] == 1 and fields["leftovers_killed"] == 1
    assert fields["leftovers_terminated"] == 2
    assert fields["leftovers_s"] == pytest.approx(2.0 + 5.0)  # --leftover-grace + KILL_WAIT


def test_the_log_says_the_delay_the_budget_leaves_not_the_one_asked_for() -> None:
    # Issue 10 item 16: --termination-budget 4 --stop-delay 10 must not say "for 10s".
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(1.0, Signal(TERM))
    _, report = run(cfg(stop_delay=10.0, termination_budget=4.0, leftover_grace=1.0), system)
    [delay] = report.named("stop_delay")
    assert delay["seconds"] == 3.0
    assert system.actions("send_group")[0] == (4.0, ("app", TERM))
    assert report.named("termination_report")[0]["stop_delay_ended"] == "budget"


def test_signals_during_a_post_hook_go_to_the_hook() -> None:
    system = FakeSystem({"app": Behaviour(runs=1.0), "post": Behaviour(runs=1.0)})
    system.at(1.5, Signal(USR1))
    run(cfg(post_hooks=hooks("post")), system)
    assert system.actions("send_group") == [(1.5, ("post", USR1))]


# --- the termination report -----------------------------------------------------------------


def test_termination_report_fields() -> None:
    system = FakeSystem({
        "app": Behaviour(on_signal={TERM: 0.5}),
        "stop": Behaviour(runs=0.2),
        "post": Behaviour(runs=0.1, code=3),
    })
    system.leftover_pids = [500]
    system.at(1.0, Signal(TERM))
    status, report = run(cfg(stop_hooks=hooks("stop"), stop_delay=2.0, post_hooks=hooks("post"),
                             termination_budget=60.0, hook_timeout=10.0), system)
    [fields] = report.named("termination_report")
    assert fields["signal"] == "SIGTERM" and fields["status"] == status == 143
    assert fields["ended_by"] == "signal"
    assert fields["stop_hooks_s"] == pytest.approx(0.2)
    assert fields["stop_delay_s"] == pytest.approx(2.0) and fields["stop_delay_ended"] == "elapsed"
    assert fields["grace_s"] == pytest.approx(0.5)
    assert fields["leftovers_s"] == pytest.approx(0.1) and fields["leftovers_terminated"] == 1
    assert fields["leftovers_killed"] == 0
    assert fields["post_hooks_s"] == pytest.approx(0.1) and fields["failed_hooks"] == ["post"]
    assert fields["budget_s"] == 60.0
    assert fields["total_s"] == pytest.approx(2.9)


def test_no_termination_report_when_the_child_just_exits() -> None:
    system = FakeSystem({"app": Behaviour(runs=1.0)})
    _, report = run(cfg(), system)
    assert not report.named("termination_report")


def test_termination_report_when_stopped_before_the_child_started() -> None:
    system = FakeSystem({"pre": Behaviour(on_signal={TERM: 0.1})})
    system.at(0.5, Signal(TERM))
    status, report = run(cfg(pre_hooks=hooks("pre")), system)
    assert status == 143
    assert report.named("termination_report")[0]["ended_by"] == "not started"


def test_every_event_has_a_stable_name() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.5}), "post": Behaviour(runs=0.1)})
    system.at(1.0, Signal(TERM))
    _, report = run(cfg(stop_delay=1.0, post_hooks=hooks("post")), system)
    names: List[str] = [event for _, event, _, _ in report.events]
    assert names == ["child_started", "stop_signal", "stop_delay", "stop_delay_ended", "stop_forwarded",
                     "child_exited",
                     "hook_started", "hook_finished", "exiting", "termination_report"]
