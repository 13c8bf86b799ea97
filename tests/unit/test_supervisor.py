"""The stop sequence, replayed against a fake system with a fake clock.

Each test scripts what the world does (a signal at t=1.0, a child that exits 0.2 s after it
is sent SIGTERM, ...) and checks what the supervisor did and when. No process is started and
no time passes, so these pin the sequence's logic exactly; tests/integration checks that the
real system behaves the same.
"""

from __future__ import annotations

import signal
from typing import Callable

import pytest

from graceinit.config import Config, Hooks
from graceinit.events import Exited, Notified, Signal
from graceinit.proc import Proc
from graceinit.hooks import HOOK_TIMED_OUT
from graceinit.lifecycle import INTERNAL_ERROR
from helpers.fakes import Behaviour, FakeSystem, cfg, exited, run

TERM, INT, KILL, HUP, QUIT, USR1 = (
    signal.SIGTERM, signal.SIGINT, signal.SIGKILL, signal.SIGHUP, signal.SIGQUIT, signal.SIGUSR1,
)


def test_child_exit_status_passes_through() -> None:
    system = FakeSystem({"app": Behaviour(runs=1.0, code=3)})
    assert run(cfg(), system) == 3
    assert system.clock == pytest.approx(1.0)


def test_stop_sequence_order_and_timing() -> None:
    system = FakeSystem({
        "app": Behaviour(on_signal={TERM: 0.5}),
        "stop-hook": Behaviour(runs=0.2),
        "post-hook": Behaviour(runs=0.1),
    })
    system.at(1.0, Signal(TERM))
    status = run(cfg(stop_hooks=Hooks(commands=(("stop-hook",),)), stop_delay=2.0,
                     post_hooks=Hooks(commands=(("post-hook",),))), system)
    assert status == 128 + TERM
    spawns = system.actions("spawn")
    assert [name for _, name in spawns] == ["app", "stop-hook", "post-hook"]
    assert spawns[1][0] == pytest.approx(1.0)  # stop hook at once
    forwarded = system.actions("send_group")
    assert forwarded == [(pytest.approx(3.2), ("app", TERM))]  # after hook (0.2) + delay (2.0)
    assert spawns[2][0] == pytest.approx(3.7)  # post hook once the child is gone
    post_env = system.environs["post-hook"]
    assert post_env[b"GRACEINIT_PHASE"] == b"post"
    assert post_env[b"GRACEINIT_EXIT_CODE"] == b"143"
    assert post_env[b"GRACEINIT_EXIT_SIGNAL"] == b"SIGTERM"


def test_grace_period_escalates_to_sigkill_and_post_hook_runs() -> None:
    system = FakeSystem({"app": Behaviour(), "post": Behaviour(runs=0.1)})
    system.at(1.0, Signal(TERM))
    status = run(cfg(grace_period=5.0, post_hooks=Hooks(commands=(("post",),))), system)
    assert status == 137
    assert system.actions("send_group") == [(1.0, ("app", TERM)), (6.0, ("app", KILL))]
    assert system.environs["post"][b"GRACEINIT_EXIT_SIGNAL"] == b"SIGKILL"


def test_remap_applies_last_and_post_hook_sees_it() -> None:
    system = FakeSystem({"app": Behaviour(), "post": Behaviour(runs=0.1)})
    system.at(1.0, Signal(TERM))
    config = cfg(grace_period=1.0, remap_exit={137: 0}, post_hooks=Hooks(commands=(("post",),)))
    assert run(config, system) == 0
    assert system.environs["post"][b"GRACEINIT_EXIT_CODE"] == b"0"


def test_second_stop_signal_cuts_the_delay_short() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(1.0, Signal(TERM))
    system.at(2.0, Signal(TERM))
    run(cfg(stop_delay=10.0), system)
    assert system.actions("send_group") == [(2.0, ("app", TERM))]


def test_third_stop_signal_in_grace_period_kills() -> None:
    system = FakeSystem({"app": Behaviour()})
    system.at(1.0, Signal(INT))
    system.at(2.0, Signal(INT))
    system.at(3.0, Signal(INT))
    assert run(cfg(), system) == 137
    assert system.actions("send_group") == [(1.0, ("app", INT)), (2.0, ("app", INT)), (3.0, ("app", KILL))]


def test_child_exiting_during_delay_ends_it_at_once() -> None:
    system = FakeSystem({"app": Behaviour(runs=2.0, code=0)})
    system.at(1.0, Signal(TERM))
    assert run(cfg(stop_delay=30.0), system) == 0
    assert system.clock == pytest.approx(2.0)
    assert system.actions("send_group") == []


def test_other_signals_are_forwarded_during_the_delay() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(1.0, Signal(TERM))
    system.at(1.5, Signal(HUP))
    run(cfg(stop_delay=3.0), system)
    assert system.actions("send_group") == [(1.5, ("app", HUP)), (4.0, ("app", TERM))]


def test_rewrite_and_drop() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={QUIT: 0.1})})
    system.at(1.0, Signal(USR1))
    system.at(2.0, Signal(TERM))
    run(cfg(rewrite={TERM: QUIT, USR1: 0}), system)
    assert system.actions("send_group") == [(2.0, ("app", QUIT))]


def test_single_child_signals_the_pid_not_the_group() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(1.0, Signal(TERM))
    run(cfg(single_child=True), system)
    assert system.actions("send") == [(1.0, ("app", TERM))]


def test_stop_signal_during_pre_hook_skips_the_child() -> None:
    system = FakeSystem({"pre": Behaviour(on_signal={TERM: 0.2}), "post": Behaviour(runs=0.1)})
    system.at(0.5, Signal(TERM))
    config = cfg(pre_hooks=Hooks(commands=(("pre",),)), post_hooks=Hooks(commands=(("post",),)))
    assert run(config, system) == 143
    assert [name for _, name in system.actions("spawn")] == ["pre", "post"]
    assert system.actions("send_group") == [(0.5, ("pre", TERM))]


def test_failing_pre_hook_means_no_child_and_its_status() -> None:
    system = FakeSystem({"pre": Behaviour(runs=0.1, code=4), "post": Behaviour(runs=0.1)})
    config = cfg(pre_hooks=Hooks(commands=(("pre",),)), post_hooks=Hooks(commands=(("post",),)))
    assert run(config, system) == 4
    assert [name for _, name in system.actions("spawn")] == ["pre", "post"]


def test_hung_pre_hook_is_killed_at_its_timeout() -> None:
    system = FakeSystem({"pre": Behaviour()})
    assert run(cfg(pre_hooks=Hooks(commands=(("pre",),)), hook_timeout=3.0), system) == HOOK_TIMED_OUT
    assert system.actions("send_group") == [(3.0, ("pre", KILL))]


def test_signals_during_a_pre_hook_go_to_the_hook_not_to_the_child_later() -> None:
    # Issue 10 item 3 (this test replaced "forwarded once the child exists"): a signal that
    # arrives during a pre hook is the hook's; replaying it into a program that has not yet
    # installed its handlers would kill it (USR1's default action).
    system = FakeSystem({"pre": Behaviour(runs=1.0), "app": Behaviour(runs=5.0)})
    system.at(0.5, Signal(USR1))
    run(cfg(pre_hooks=Hooks(commands=(("pre",),))), system)
    assert system.actions("send_group") == [(0.5, ("pre", USR1))]


def test_budget_shortens_the_grace_period_to_leave_room_for_post_hooks() -> None:
    system = FakeSystem({"app": Behaviour(), "post": Behaviour(runs=0.1)})
    system.at(1.0, Signal(TERM))
    config = cfg(stop_delay=5.0, grace_period=60.0, termination_budget=30.0, hook_timeout=10.0,
                 leftover_grace=2.0, post_hooks=Hooks(commands=(("post",),)))
    run(config, system)
    # budget ends at 31; post hook (10) and leftovers (2) reserved: SIGKILL at 19, not 66
    assert system.actions("send_group") == [(6.0, ("app", TERM)), (19.0, ("app", KILL))]


def test_leftovers_get_term_then_kill_and_are_waited_for() -> None:
    system = FakeSystem({"app": Behaviour(runs=1.0), "post": Behaviour(runs=0.1)})
    system.leftover_pids = [500]
    config = cfg(leftover_grace=2.0, post_hooks=Hooks(commands=(("post",),)))
    run(config, system)
    assert (1.0, ("500", TERM)) in system.actions("send")
    assert system.actions("spawn")[-1] == (pytest.approx(1.1), "post")


def test_command_not_found_still_runs_post_hooks() -> None:
    system = FakeSystem({"app": Behaviour(runs=-1), "post": Behaviour(runs=0.1)})
    assert run(cfg(post_hooks=Hooks(commands=(("post",),))), system) == 127
    assert system.environs["post"][b"GRACEINIT_EXIT_CODE"] == b"127"


def test_a_bug_in_the_sequence_still_waits_for_the_child(
    monkeypatch: pytest.MonkeyPatch, capfd: pytest.CaptureFixture
) -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.5})})
    system.at(1.0, Signal(TERM))
    system.at(2.0, Signal(TERM))

    def broken(*args: object) -> None:
        raise RuntimeError("bug")

    monkeypatch.setattr("graceinit.hooks.commands", lambda hooks, files=(): broken() if hooks is STOP else [])
    STOP = Hooks(commands=(("x",),))
    status = run(cfg(stop_hooks=STOP), system)
    assert status == 143  # forwarding went on (2nd TERM), the child's status is kept
    assert status != INTERNAL_ERROR
    err = capfd.readouterr().err
    assert "RuntimeError: bug" in err and "Traceback" in err  # logged with its traceback


# --- restarts -------------------------------------------------------------------------------


def notifies_ready_after(seconds: float) -> Callable[[FakeSystem, Proc], None]:
    def schedule(system: FakeSystem, proc: Proc) -> None:
        system.at(system.clock + seconds, Notified(proc.pid, {"READY": "1"}))
    return schedule


def test_restart_stops_the_old_child_only_once_the_new_one_is_ready() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.5})})
    system.on_start["app"] = notifies_ready_after(1.0)
    system.at(5.0, Signal(HUP))
    system.at(20.0, Signal(TERM))
    status = run(cfg(notify=True, restart_signal=HUP), system)
    old, new = system.started
    assert status == 143
    sends = system.actions("send_group")
    assert sends[0] == (6.0, ("app", TERM)) and old.wait_status is not None  # at READY, not before
    assert system.actions("spawn") == [(0.0, "app"), (5.0, "app")]
    assert (20.0, ("app", TERM)) in sends  # the new one at the stop signal
    assert old.pid != new.pid


def test_restart_that_never_gets_ready_keeps_the_old_child() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.on_start["app"] = lambda system, proc: (
        notifies_ready_after(0.5)(system, proc) if proc.pid == 100 else None
    )
    system.at(5.0, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(notify=True, restart_signal=HUP, ready_timeout=10.0), system)
    old, new = system.started
    # the new one is stopped at its ready timeout; the old one only at the stop signal
    assert new.wait_status is not None
    assert system.actions("send_group")[0] == (15.0, ("app", TERM))
    assert (30.0, ("app", TERM)) in system.actions("send_group")
    assert old.pid == 100


def test_restart_without_notify_counts_staying_up_as_ready() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.at(5.0, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(restart_signal=HUP, ready_timeout=2.0), system)
    assert system.actions("send_group")[0] == (7.0, ("app", TERM))


def test_new_child_that_exits_leaves_the_old_one_serving() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.on_start["app"] = lambda system, proc: (
        system.at(system.clock + 0.5, Exited(proc.pid, exited(1))) if proc.pid == 101 else None
    )
    system.at(5.0, Signal(HUP))
    system.at(10.0, Signal(TERM))
    assert run(cfg(restart_signal=HUP, ready_timeout=2.0), system) == 143
    assert system.actions("send_group") == [(10.0, ("app", TERM))]


def test_restart_signal_during_a_restart_is_queued() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.on_start["app"] = notifies_ready_after(1.0)
    system.at(5.0, Signal(HUP))
    system.at(5.5, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(notify=True, restart_signal=HUP), system)
    assert [t for t, _ in system.actions("spawn")] == [0.0, 5.0, 6.0]


def test_stop_signal_during_a_restart_stops_both_children() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.5})})
    system.on_start["app"] = lambda system, proc: (
        notifies_ready_after(0.5)(system, proc) if proc.pid == 100 else None
    )
    system.at(5.0, Signal(HUP))
    system.at(6.0, Signal(TERM))
    status = run(cfg(notify=True, restart_signal=HUP, grace_period=3.0), system)
    assert status == 143
    old, new = system.started
    assert old.wait_status is not None and new.wait_status is not None
    assert system.actions("send_group") == [(6.0, ("app", TERM)), (6.0, ("app", TERM))]


def test_ready_message_from_a_grandchild_counts_for_its_generation() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})

    def worker_notifies(system: FakeSystem, proc: Proc) -> None:
        system.parents[900 + proc.pid] = proc.pid
        system.at(system.clock + 1.0, Notified(900 + proc.pid, {"READY": "1"}))

    system.on_start["app"] = worker_notifies
    system.at(5.0, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(notify=True, restart_signal=HUP), system)
    assert system.actions("send_group")[0] == (6.0, ("app", TERM))


def test_old_generation_is_killed_after_the_grace_period_in_the_background() -> None:
    system = FakeSystem({"app": Behaviour()})  # ignores SIGTERM
    system.on_start["app"] = notifies_ready_after(1.0)
    system.at(5.0, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(notify=True, restart_signal=HUP, grace_period=4.0), system)
    sends = system.actions("send_group")
    assert sends[:2] == [(6.0, ("app", TERM)), (10.0, ("app", KILL))]


def test_ready_from_a_sender_already_gone_goes_to_the_generation_waiting_for_it() -> None:
    system = FakeSystem({"app": Behaviour(on_signal={TERM: 0.1})})
    system.on_start["app"] = lambda system, proc: system.at(
        system.clock + 1.0, Notified(5000 + proc.pid, {"READY": "1"})  # unknown, gone sender
    )
    system.at(5.0, Signal(HUP))
    system.at(30.0, Signal(TERM))
    run(cfg(notify=True, restart_signal=HUP), system)
    assert system.actions("send_group")[0] == (6.0, ("app", TERM))
