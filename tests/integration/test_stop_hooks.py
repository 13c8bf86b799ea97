"""Issue 3, stop sequence: pre/stop/post hooks, hook environment, hook timeouts, and a stop
signal arriving during a pre hook. Real graceinit CLI, real processes (see stop_helpers/)."""
import signal
import sys
import time
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))
from stop_helpers.fixtures import gi  # noqa: E402,F401  (fixture)
from stop_helpers.harness import sleeper_hook, sleeps_alive, unique_sleep  # noqa: E402
from helpers import wait_until  # noqa: E402


def is_sig(name):
    return lambda e: e["sig"] == name


@pytest.mark.timeout(20)
def test_pre_hook_runs_before_child_with_phase_pre(gi):
    run = gi.start(["--pre-hook", gi.hook("pre", "--sleep", "0.3")],
                   gi.child("--exit-after", "0"))
    assert run.wait(10) == 0, run.describe()
    hook = gi.wait_event("pre", "hook")
    end = gi.wait_event("pre", "hook-end")
    child = gi.wait_event("child", "start")
    assert hook["phase"] == "pre"
    assert hook["child_pid"] in (None, ""), "GRACEINIT_CHILD_PID must be empty before spawn"
    assert end["t"] <= child["t"], "child started while the pre hook was still running"


@pytest.mark.timeout(20)
def test_failing_pre_hook_skips_child_runs_post_hooks_and_exits_with_its_status(gi):
    run = gi.start(["--pre-hook", gi.hook("pre", "--exit", "7"),
                    "--pre-hook", gi.hook("pre2"),
                    "--post-hook", gi.hook("post")],
                   gi.child("--exit-after", "0.2"))
    rc = run.wait(10)
    assert not gi.events("child"), "child was started although the pre hook failed" + run.describe()
    assert not gi.events("pre2"), "later pre hooks must be skipped after a failure"
    posts = gi.events("post", "hook")
    assert len(posts) == 1, "post hook must still run" + run.describe()
    assert posts[0]["phase"] == "post"
    assert posts[0]["exit_code"] == "7"
    assert rc == 7, run.describe()


@pytest.mark.timeout(20)
def test_pre_hook_dir_runs_executables_in_name_order_and_skips_the_rest(gi):
    d = gi.tmp / "pre.d"
    d.mkdir()

    def script(name, mode=0o755):
        p = d / name
        p.write_text("#!/bin/sh\nexec %s\n" % gi.hook(name))
        p.chmod(mode)

    script("20-b")
    script("10-a")
    script("30-c")
    script("15-not-executable", 0o644)
    (d / "25-a-directory").mkdir()  # executable bit, but not a file
    run = gi.start(["--pre-hook-dir", d, "--pre-hook", gi.hook("cmd")],
                   gi.child("--exit-after", "0"))
    assert run.wait(10) == 0, run.describe()
    order = [e["who"] for e in gi.events() if e["ev"] in ("hook", "start")]
    assert order == ["10-a", "20-b", "30-c", "cmd", "child"], run.describe()
    assert {e["phase"] for e in gi.events(ev="hook")} == {"pre"}


@pytest.mark.timeout(20)
def test_stop_hook_runs_on_sigterm_with_phase_and_child_pid(gi):
    run = gi.start(["--stop-hook", gi.hook("stop")], gi.child())
    child = gi.wait_event("child", "start", run=run)
    assert not gi.events("stop"), "stop hook ran before any stop signal"
    t0 = run.signal(signal.SIGTERM)
    hook = gi.wait_event("stop", "hook", run=run)
    end = gi.wait_event("stop", "hook-end", run=run)
    term = gi.wait_event("child", "signal", run=run, pred=is_sig("SIGTERM"))
    assert run.wait(5) == 143, run.describe()
    assert hook["phase"] == "stop"
    assert hook["child_pid"] == str(child["pid"])
    assert t0 <= hook["t"]
    assert end["t"] <= term["t"], "SIGTERM reached the child before the stop hook finished"


@pytest.mark.timeout(20)
@pytest.mark.parametrize("how", ["exit-3", "killed-by-sigterm"])
def test_post_hook_sees_exit_code_and_exit_signal(gi, how):
    if how == "exit-3":
        child_args, expected_rc, expected_sig = ("--exit-after", "0.2", "--exit-code", "3"), 3, None
    else:
        child_args, expected_rc, expected_sig = (), 143, "SIGTERM"
    run = gi.start(["--post-hook", gi.hook("post")], gi.child(*child_args))
    child = gi.wait_event("child", "start", run=run)
    if how == "killed-by-sigterm":
        run.signal(signal.SIGTERM)
    assert run.wait(10) == expected_rc, run.describe()
    post = gi.wait_event("post", "hook")
    assert post["phase"] == "post"
    assert post["child_pid"] == str(child["pid"])
    assert post["exit_code"] == str(expected_rc)
    if expected_sig is None:
        assert post["exit_signal"] in (None, ""), "GRACEINIT_EXIT_SIGNAL set for a normal exit"
    else:
        assert post["exit_signal"] == expected_sig
    assert post["t"] >= gi.events("child")[-1]["t"]


@pytest.mark.timeout(25)
def test_hung_stop_hook_and_its_child_are_killed_at_hook_timeout(gi):
    m = unique_sleep()
    run = gi.start(["--hook-timeout", "1",
                    "--stop-hook", sleeper_hook(m),
                    "--stop-hook", gi.hook("stop2", "--sleep", "0.5")],
                   gi.child())
    gi.wait_event("child", "start", run=run)
    t0 = run.signal(signal.SIGTERM)
    wait_until(lambda: len(sleeps_alive(m)) == 2, 3, "the hung hook to start (2 sleeps)")
    stop2 = gi.wait_event("stop2", "hook", timeout=6, run=run)
    assert not sleeps_alive(m), "the hung hook's group was not killed at its timeout"
    assert 0.9 <= stop2["t"] - t0 <= 4.0, "next stop hook at %.2fs, hook timeout 1s" % (
        stop2["t"] - t0)
    term = gi.wait_event("child", "signal", timeout=4, run=run, pred=is_sig("SIGTERM"))
    assert term["t"] >= stop2["t"]
    assert run.wait(5) == 143, run.describe()


@pytest.mark.timeout(25)
def test_hung_post_hook_and_its_child_are_killed_at_hook_timeout(gi):
    m = unique_sleep()
    run = gi.start(["--hook-timeout", "1",
                    "--post-hook", sleeper_hook(m),
                    "--post-hook", gi.hook("post2", "--sleep", "0.5")],
                   gi.child("--exit-after", "0.1", "--exit-code", "5"))
    exit_ev = gi.wait_event("child", "exit", run=run)
    wait_until(lambda: len(sleeps_alive(m)) == 2, 3, "the hung hook to start (2 sleeps)")
    post2 = gi.wait_event("post2", "hook", timeout=6, run=run)
    assert not sleeps_alive(m), "the hung hook's group was not killed at its timeout"
    assert 0.9 <= post2["t"] - exit_ev["t"] <= 4.0
    assert post2["exit_code"] == "5"
    assert run.wait(5) == 5, "a failed post hook must not change the exit status" + run.describe()


@pytest.mark.timeout(25)
def test_hung_pre_hook_times_out_with_124_and_child_never_starts(gi):
    m = unique_sleep()
    run = gi.start(["--hook-timeout", "1",
                    "--pre-hook", sleeper_hook(m),
                    "--post-hook", gi.hook("post", "--sleep", "0.5")],
                   gi.child("--exit-after", "0"))
    t_hung = wait_until(lambda: len(sleeps_alive(m)) == 2 and time.monotonic(), 3,
                        lambda: "the hung pre hook to start (2 sleeps)" + run.describe(),
                        interval=0.005, max_interval=0.005)
    post = gi.wait_event("post", "hook", timeout=6, run=run)
    assert not sleeps_alive(m), "the hung pre hook's group was not killed at its timeout"
    assert post["exit_code"] == "124"
    assert 0.8 <= post["t"] - t_hung <= 4.0
    assert run.wait(5) == 124, run.describe()
    assert not gi.events("child"), "child started although the pre hook timed out"


@pytest.mark.timeout(20)
def test_stop_signal_during_pre_hook_reaches_hook_skips_child_and_exits_143(gi):
    # pre1 aborts cleanly on the signal (exit 0): the rest must be skipped all the same.
    run = gi.start(["--pre-hook", gi.hook("pre1", "--sleep", "10", "--signal-exit", "0"),
                    "--pre-hook", gi.hook("pre2"),
                    "--post-hook", gi.hook("post")],
                   gi.child("--exit-after", "0"))
    gi.wait_event("pre1", "hook", run=run)
    t0 = run.signal(signal.SIGTERM)
    got = gi.wait_event("pre1", "signal", timeout=3, run=run)
    assert got["sig"] == "SIGTERM"
    assert got["t"] - t0 < 1.0
    assert run.wait(5) == 143, run.describe()
    assert not gi.events("pre2"), "remaining pre hooks must be skipped"
    assert not gi.events("child"), "child must never start after a stop signal in a pre hook"
    post = gi.wait_event("post", "hook")
    assert post["exit_code"] == "143"
