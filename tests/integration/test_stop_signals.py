"""Issue 3, stop sequence: stop delay, grace period, repeated stop signals, other signals during
the sequence, and the whole sequence as real PID 1. Real graceinit CLI, real processes."""
import os
import signal
import sys
import time
from pathlib import Path

import psutil
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi, needs_pid1  # noqa: E402,F401  (fixtures)


def is_sig(name):
    return lambda e: e["sig"] == name


def alive(pid):
    try:
        return psutil.Process(pid).status() != psutil.STATUS_ZOMBIE
    except psutil.NoSuchProcess:
        return False


@pytest.mark.timeout(20)
def test_stop_delay_keeps_child_serving_then_forwards_rewritten_signal(gi):
    run = gi.start(["--stop-delay", "1.5", "-r", "TERM:USR1"], gi.child("--on", "USR1=exit:0"))
    child = gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    # Observation point 1.0 s into the 1.5 s delay: the child is still running, untouched.
    time.sleep(max(0.0, t0 + 1.0 - time.monotonic()))
    assert alive(child["pid"]), "child stopped during the stop delay"
    assert not gi.signals("child"), "child was signalled during the stop delay: %s" % (
        gi.signals("child"),)
    usr1 = gi.wait_event("child", "signal", timeout=4, run=run)
    assert usr1["sig"] == "SIGUSR1", "the rewritten signal (-r TERM:USR1) must be forwarded"
    assert 1.4 <= usr1["t"] - t0 <= 4.0, "forwarded %.2fs after SIGTERM, delay 1.5s" % (
        usr1["t"] - t0)
    assert run.wait(5) == 0, run.describe()
    assert [e["sig"] for e in gi.signals("child")] == ["SIGUSR1"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("pid1", [False, pytest.param(True, marks=[pytest.mark.pid1, needs_pid1])],
                         ids=["plain", "pid1"])
def test_a_named_stop_signal_gets_the_stop_delay_and_the_report(gi, pid1):
    # Issue 19 item 9: nginx's STOPSIGNAL SIGQUIT. Named with --stop-signals, it runs the
    # stop sequence (delay, forward, termination report) instead of killing the app at once.
    run = gi.start(["--stop-signals", "TERM,INT,QUIT", "--stop-delay", "1"],
                   gi.child("--on", "QUIT=exit:0"), pid1=pid1)
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGQUIT)
    quit_ = gi.wait_event("child", "signal", timeout=5, run=run)
    assert quit_["sig"] == "SIGQUIT" and 0.9 <= quit_["t"] - t0 <= 4.0, (
        "SIGQUIT forwarded %.2fs after it arrived, stop delay 1s" % (quit_["t"] - t0))
    assert run.wait(5) == 0, run.describe()
    assert "termination report: SIGQUIT -> exit 0" in run.stderr_text(), run.describe()


@pytest.mark.timeout(20)
def test_child_exiting_during_stop_delay_ends_the_sequence_at_once(gi):
    run = gi.start(["--stop-delay", "10", "--stop-hook", gi.hook("stop")],
                   gi.child("--on", "USR2=exit:0"))
    child = gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    gi.wait_event("stop", "hook-end", run=run)  # the stop hook is done: the delay is running
    assert alive(child["pid"]), "child stopped before the stop delay ended" + run.describe()
    t1 = time.monotonic()
    os.kill(child["pid"], signal.SIGUSR2)  # the child drains and exits 0
    rc = run.wait(5)
    assert run.t_exit - t1 < 2.0, "graceinit slept on for %.2fs after the child exited" % (
        run.t_exit - t1)
    assert rc == 0, "child exited normally with 0: graceinit exits with the child's code" + \
        run.describe()
    assert [e["sig"] for e in gi.signals("child")] == ["SIGUSR2"]


@pytest.mark.timeout(20)
@pytest.mark.parametrize("remap,expected", [([], 137), (["-e", "137:0"], 0)],
                         ids=["exit-137", "remapped-137-to-0"])
def test_grace_period_sigkills_child_ignoring_sigterm_and_post_hook_still_runs(gi, remap, expected):
    run = gi.start(["--grace-period", "1", "--post-hook", gi.hook("post")] + remap,
                   gi.child("--on", "TERM=log"))
    child = gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=3, run=run, pred=is_sig("SIGTERM"))
    assert term["t"] - t0 < 1.0, "no stop delay configured: SIGTERM is forwarded at once"
    rc = run.wait(6)
    post = gi.wait_event("post", "hook")
    assert not alive(child["pid"])
    assert 0.9 <= post["t"] - term["t"] <= 4.0, "SIGKILL %.2fs after forwarding, grace 1s" % (
        post["t"] - term["t"])
    assert post["exit_signal"] == "SIGKILL"
    assert post["exit_code"] == str(expected), "GRACEINIT_EXIT_CODE is the final, remapped status"
    assert rc == expected, run.describe()


@pytest.mark.timeout(20)
def test_second_stop_signal_during_delay_forwards_at_once(gi):
    run = gi.start(["--stop-delay", "8", "--stop-hook", gi.hook("stop")], gi.child())
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    gi.wait_event("stop", "hook-end", run=run)
    assert not gi.signals("child"), "SIGTERM forwarded before the 8s stop delay ended"
    t1 = run.signal(signal.SIGTERM)
    term = gi.wait_event("child", "signal", timeout=4, run=run)
    assert term["sig"] == "SIGTERM"
    assert term["t"] - t1 < 1.0, "second SIGTERM forwarded %.2fs later" % (term["t"] - t1)
    assert term["t"] - t0 < 5.0
    assert run.wait(5) == 143, run.describe()


@pytest.mark.timeout(20)
def test_third_stop_signal_during_grace_sigkills_at_once(gi):
    run = gi.start(["--grace-period", "30"], gi.child("--on", "TERM=log"))
    gi.wait_event("child", "start", run=run)
    run.signal(signal.SIGTERM)
    gi.wait_event("child", "signal", timeout=3, run=run, pred=is_sig("SIGTERM"))
    t1 = run.signal(signal.SIGTERM)
    second = gi.wait_event("child", "signal", timeout=3, run=run, pred=is_sig("SIGTERM"), count=2)
    assert second["t"] - t1 < 1.0, "second SIGTERM during grace is forwarded again"
    t2 = run.signal(signal.SIGTERM)
    rc = run.wait(5)
    assert run.t_exit - t2 < 1.5, "third SIGTERM must SIGKILL at once (took %.2fs)" % (
        run.t_exit - t2)
    assert rc == 137, run.describe()


@pytest.mark.timeout(20)
def test_other_signals_keep_being_forwarded_during_delay_and_grace(gi):
    run = gi.start(["--stop-delay", "1.5", "--grace-period", "1.5",
                    "--stop-hook", gi.hook("stop")],
                   gi.child("--on", "TERM=log"))
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    gi.wait_event("stop", "hook-end", run=run)
    # during the stop delay
    tu = run.signal(signal.SIGUSR1)
    usr1 = gi.wait_event("child", "signal", timeout=2, run=run, pred=is_sig("SIGUSR1"))
    assert usr1["t"] - tu < 0.5, "USR1 during the stop delay delivered %.2fs late" % (
        usr1["t"] - tu)
    term = gi.wait_event("child", "signal", timeout=4, run=run, pred=is_sig("SIGTERM"))
    assert term["t"] - t0 >= 1.4 and usr1["t"] < term["t"], "USR1 was not sent during the delay"
    # during the grace period
    th = run.signal(signal.SIGHUP)
    hup = gi.wait_event("child", "signal", timeout=2, run=run, pred=is_sig("SIGHUP"))
    assert hup["t"] - th < 0.5, "HUP during the grace period delivered %.2fs late" % (
        hup["t"] - th)
    assert run.wait(5) == 137, run.describe()
    assert hup["t"] < run.t_exit


@pytest.mark.pid1
@needs_pid1
@pytest.mark.timeout(30)
def test_pid1_sigterm_stop_hook_delay_forward_post_hook_exit_143(gi):
    run = gi.start(["--stop-hook", gi.hook("stop"), "--stop-delay", "1",
                    "--post-hook", gi.hook("post")],
                   gi.child(), pid1=True)
    child = gi.wait_event("child", "start", timeout=10, run=run)
    assert child["ppid"] == 1, "graceinit is not PID 1 in the new namespace"
    t0 = run.signal(signal.SIGTERM)
    stop = gi.wait_event("stop", "hook", run=run)
    assert stop["phase"] == "stop" and stop["child_pid"] == str(child["pid"])
    term = gi.wait_event("child", "signal", timeout=4, run=run)
    assert term["sig"] == "SIGTERM"
    assert term["t"] > gi.wait_event("stop", "hook-end")["t"]
    assert 0.9 <= term["t"] - t0 <= 4.0, "forwarded %.2fs after SIGTERM, delay 1s" % (
        term["t"] - t0)
    assert run.wait(5) == 143, run.describe()
    post = gi.wait_event("post", "hook")
    assert post["t"] > term["t"]
    assert post["exit_code"] == "143" and post["exit_signal"] == "SIGTERM"
